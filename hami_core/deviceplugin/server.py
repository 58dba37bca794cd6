"""The kubelet device-plugin gRPC server (API v1beta1): the plugin's only gRPC edge.

:class:`DevicePluginServicer` turns the kubelet's calls into calls on the
:class:`~hami_core.deviceplugin.allocating.Allocator` and the
:class:`~hami_core.deviceplugin.devices.DeviceState`, and their results into protobuf messages;
hami's exceptions become gRPC statuses whose message says why (``NOT_FOUND`` when no pod is being
allocated, ``INVALID_ARGUMENT`` for a malformed annotation, ``FAILED_PRECONDITION`` for requests the
plugin cannot serve, ``UNAVAILABLE`` when the API server failed); anything else is a bug, logged
with its traceback and reported as ``INTERNAL``. :class:`PluginServer` owns the
``grpc.Server`` on the plugin's unix socket and removes the socket when it stops. No decision is
made here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import grpc

from hami_core.deviceplugin import constants
from hami_core.deviceplugin.allocating import Allocator
from hami_core.deviceplugin.allocating import PreferenceRequest
from hami_core.deviceplugin.devices import DeviceState
from hami_core.deviceplugin.devices import VirtualDevice
from hami_core.deviceplugin.proto import deviceplugin_pb2
from hami_core.deviceplugin.proto import deviceplugin_pb2_grpc
from hami_core.deviceplugin.registration import PluginOptions
from hami_core.deviceplugin.unixgrpc import UnixGrpcServer
from hami_core.devices import ContainerAllocation
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import HamiError
from hami_core.errors import KubeError
from hami_core.errors import LockError
from hami_core.errors import NotFoundError

_log = logging.getLogger(__name__)

#: How often an idle ListAndWatch stream checks that its call is still alive.
STREAM_CHECK_SECONDS = 1.0
#: Worker threads per server: one per ListAndWatch stream plus the kubelet's unary calls.
MAX_WORKERS = 4
#: The longest unix socket path the kernel accepts (``sun_path`` is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107


def status_of(err: HamiError) -> grpc.StatusCode:
    """The gRPC status code a hami error is reported with."""
    if isinstance(err, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(err, KubeError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(err, CodecError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(err, LockError):
        return grpc.StatusCode.ABORTED
    if isinstance(err, BackendError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def _abort(context: grpc.ServicerContext, err: Exception) -> NoReturn:
    """End the call with ``err``'s status and message; anything but a hami error is a bug: INTERNAL."""
    if isinstance(err, HamiError):
        context.abort(status_of(err), str(err))
    _log.exception("device plugin call failed unexpectedly", exc_info=err)
    context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
    raise AssertionError("grpc's abort returned")  # abort always raises; this keeps the type checker honest


def _device(device: VirtualDevice) -> deviceplugin_pb2.Device:
    return deviceplugin_pb2.Device(
        ID=device.id, health=constants.HEALTHY if device.healthy else constants.UNHEALTHY
    )


def _container_response(allocation: ContainerAllocation) -> deviceplugin_pb2.ContainerAllocateResponse:
    return deviceplugin_pb2.ContainerAllocateResponse(
        envs=dict(allocation.envs),
        mounts=[
            deviceplugin_pb2.Mount(
                container_path=mount.container_path, host_path=mount.host_path, read_only=mount.read_only
            )
            for mount in allocation.mounts
        ],
        devices=[
            deviceplugin_pb2.DeviceSpec(
                container_path=spec.container_path, host_path=spec.host_path, permissions=spec.permissions
            )
            for spec in allocation.devices
        ],
        annotations=dict(allocation.annotations),
    )


class DevicePluginServicer(deviceplugin_pb2_grpc.DevicePluginServicer):
    """The ``v1beta1.DevicePlugin`` service of one resource.

    Args:
        allocator: serves ``Allocate`` and ``GetPreferredAllocation``.
        state: the devices ``ListAndWatch`` streams.
        options: the options reported to the kubelet.
    """

    def __init__(self, allocator: Allocator, state: DeviceState, options: PluginOptions) -> None:
        self._allocator = allocator
        self._state = state
        self._options = options

    def GetDevicePluginOptions(
        self, request: deviceplugin_pb2.Empty, context: grpc.ServicerContext
    ) -> deviceplugin_pb2.DevicePluginOptions:
        return deviceplugin_pb2.DevicePluginOptions(
            pre_start_required=self._options.pre_start_required,
            get_preferred_allocation_available=self._options.get_preferred_allocation_available,
        )

    def ListAndWatch(
        self, request: deviceplugin_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[deviceplugin_pb2.ListAndWatchResponse]:
        version, devices = self._state.replicas()
        context.add_callback(self._state.wake)  # a cancelled call wakes its stream at once
        yield deviceplugin_pb2.ListAndWatchResponse(devices=[_device(d) for d in devices])
        while context.is_active() and not self._state.closed:
            changed = self._state.wait_for_change(version, STREAM_CHECK_SECONDS)
            if changed is None or not context.is_active():
                continue
            version, devices = changed
            yield deviceplugin_pb2.ListAndWatchResponse(devices=[_device(d) for d in devices])

    def GetPreferredAllocation(
        self, request: deviceplugin_pb2.PreferredAllocationRequest, context: grpc.ServicerContext
    ) -> deviceplugin_pb2.PreferredAllocationResponse:
        requests = [
            PreferenceRequest(
                available=tuple(container.available_deviceIDs),
                must_include=tuple(container.must_include_deviceIDs),
                size=container.allocation_size,
            )
            for container in request.container_requests
        ]
        try:
            preferred = self._allocator.preferred(requests)
        except Exception as err:  # the only gRPC edge: every failure becomes a status with a message
            _abort(context, err)
        return deviceplugin_pb2.PreferredAllocationResponse(
            container_responses=[
                deviceplugin_pb2.ContainerPreferredAllocationResponse(deviceIDs=ids) for ids in preferred
            ]
        )

    def Allocate(
        self, request: deviceplugin_pb2.AllocateRequest, context: grpc.ServicerContext
    ) -> deviceplugin_pb2.AllocateResponse:
        try:
            allocations = self._allocator.allocate(
                [list(container.devices_ids) for container in request.container_requests]
            )
        except Exception as err:  # the only gRPC edge: every failure becomes a status with a message
            _abort(context, err)
        return deviceplugin_pb2.AllocateResponse(
            container_responses=[_container_response(allocation) for allocation in allocations]
        )

    def PreStartContainer(
        self, request: deviceplugin_pb2.PreStartContainerRequest, context: grpc.ServicerContext
    ) -> deviceplugin_pb2.PreStartContainerResponse:
        return deviceplugin_pb2.PreStartContainerResponse()


class PluginServer:
    """A ``grpc.Server`` serving one servicer on a unix socket, re-creatable after the kubelet wiped it.

    Args:
        servicer: the device plugin service.
        socket_path: where to serve; the file is removed when the server stops.

    Raises:
        ValueError: the socket path is too long for a unix socket.
    """

    def __init__(self, servicer: DevicePluginServicer, socket_path: Path) -> None:
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            raise ValueError(f"unix socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes")
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._grpc = UnixGrpcServer(
            socket_path,
            lambda server: deviceplugin_pb2_grpc.add_DevicePluginServicer_to_server(servicer, server),  # type: ignore[no-untyped-call,unused-ignore]
            workers=MAX_WORKERS,
            name=f"plugin-{socket_path.name}",
        )

    def start(self) -> None:
        """Serve on the socket (replacing a stale file of the same name)."""
        with self._lock:
            self._stop_locked()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            self._grpc.start()
            _log.info("serving the device plugin API on %s", self.socket_path)

    def stop(self) -> None:
        """Cancel every call, stop serving and remove the socket."""
        with self._lock:
            self._stop_locked()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def _stop_locked(self) -> None:
        self._grpc.stop()
