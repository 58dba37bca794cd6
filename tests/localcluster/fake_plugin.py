"""A minimal kubelet device plugin for tests: serves v1beta1.DevicePlugin on a unix socket and registers.

It records every call it receives, so tests assert on what the simulated kubelet sent.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from hami_core.deviceplugin import constants
from hami_core.deviceplugin.proto import deviceplugin_pb2
from hami_core.deviceplugin.proto import deviceplugin_pb2_grpc
from hami_core.deviceplugin.unixgrpc import UnixGrpcServer


class FakePlugin(deviceplugin_pb2_grpc.DevicePluginServicer):
    """Devices by ID with a health flag; ``set_health`` pushes a new ListAndWatch message."""

    def __init__(
        self,
        plugin_dir: Path,
        resource: str = "example.com/dev",
        devices: dict[str, bool] | None = None,
        *,
        endpoint: str = "fake.sock",
        preferred: list[str] | None = None,
        pre_start: bool = False,
        allocate_error: str = "",
    ) -> None:
        self.plugin_dir = plugin_dir
        self.resource = resource
        self.endpoint = endpoint
        self.devices = dict(devices if devices is not None else {"dev-0": True, "dev-1": True})
        self.preferred = preferred
        self.pre_start = pre_start
        self.allocate_error = allocate_error
        self.allocate_calls: list[list[str]] = []
        self.preferred_calls: list[tuple[list[str], list[str], int]] = []
        self.pre_start_calls: list[list[str]] = []
        self._lock = threading.Lock()
        self._watchers: list[queue.Queue[dict[str, bool] | None]] = []
        self._grpc = UnixGrpcServer(
            self.plugin_dir / self.endpoint,
            lambda server: deviceplugin_pb2_grpc.add_DevicePluginServicer_to_server(self, server),  # type: ignore[no-untyped-call,unused-ignore]
        )

    # -- lifecycle

    def serve(self) -> None:
        self._grpc.start()

    def register(self, version: str = constants.VERSION) -> None:
        with grpc.insecure_channel(f"unix://{self.plugin_dir / constants.KUBELET_SOCKET_NAME}") as channel:
            stub = deviceplugin_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call,unused-ignore]
            stub.Register(
                deviceplugin_pb2.RegisterRequest(
                    version=version,
                    endpoint=self.endpoint,
                    resource_name=self.resource,
                    options=deviceplugin_pb2.DevicePluginOptions(
                        pre_start_required=self.pre_start,
                        get_preferred_allocation_available=self.preferred is not None,
                    ),
                ),
                timeout=10,
            )

    def stop(self) -> None:
        self._grpc.stop()

    def set_health(self, device: str, healthy: bool) -> None:
        with self._lock:
            self.devices[device] = healthy
            for watcher in self._watchers:
                watcher.put(dict(self.devices))

    # -- DevicePlugin service

    def GetDevicePluginOptions(self, request: object, context: grpc.ServicerContext) -> object:
        return deviceplugin_pb2.DevicePluginOptions(
            pre_start_required=self.pre_start, get_preferred_allocation_available=self.preferred is not None
        )

    def ListAndWatch(self, request: object, context: grpc.ServicerContext) -> Iterator[object]:
        updates: queue.Queue[dict[str, bool] | None] = queue.Queue()
        with self._lock:
            self._watchers.append(updates)
            updates.put(dict(self.devices))
        context.add_callback(lambda: updates.put(None))
        try:
            while (devices := updates.get()) is not None:
                yield deviceplugin_pb2.ListAndWatchResponse(
                    devices=[
                        deviceplugin_pb2.Device(
                            ID=device, health=constants.HEALTHY if ok else constants.UNHEALTHY
                        )
                        for device, ok in devices.items()
                    ]
                )
        finally:
            with self._lock:
                self._watchers.remove(updates)

    def GetPreferredAllocation(self, request: object, context: grpc.ServicerContext) -> object:
        container = request.container_requests[0]  # type: ignore[attr-defined]
        self.preferred_calls.append(
            (
                list(container.available_deviceIDs),
                list(container.must_include_deviceIDs),
                container.allocation_size,
            )
        )
        return deviceplugin_pb2.PreferredAllocationResponse(
            container_responses=[
                deviceplugin_pb2.ContainerPreferredAllocationResponse(deviceIDs=self.preferred or [])
            ]
        )

    def Allocate(self, request: object, context: grpc.ServicerContext) -> object:
        ids = list(request.container_requests[0].devices_ids)  # type: ignore[attr-defined]
        self.allocate_calls.append(ids)
        if self.allocate_error:
            context.abort(grpc.StatusCode.UNKNOWN, self.allocate_error)
        return deviceplugin_pb2.AllocateResponse(
            container_responses=[
                deviceplugin_pb2.ContainerAllocateResponse(
                    envs={"FAKE_DEVICES": ",".join(ids)},
                    mounts=[
                        deviceplugin_pb2.Mount(
                            container_path="/usr/lib/fake", host_path="/opt/fake", read_only=True
                        )
                    ],
                    devices=[
                        deviceplugin_pb2.DeviceSpec(
                            container_path=f"/dev/{i}", host_path=f"/dev/{i}", permissions="rw"
                        )
                        for i in ids
                    ],
                    annotations={"fake": "yes"},
                )
            ]
        )

    def PreStartContainer(self, request: object, context: grpc.ServicerContext) -> object:
        self.pre_start_calls.append(list(request.devices_ids))  # type: ignore[attr-defined]
        return deviceplugin_pb2.PreStartContainerResponse()
