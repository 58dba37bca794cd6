"""Registering with the kubelet, and registering again whenever the kubelet comes back.

The plugin serves ``DevicePlugin`` on its own socket, then calls ``Registration.Register`` on
``<plugin dir>/kubelet.sock`` (``specs/kube-wire.md`` 3a). A restarting kubelet wipes every socket in
the directory and creates a new ``kubelet.sock``; it then knows nothing of the plugin. So
:class:`KubeletRegistration` watches ``kubelet.sock`` (by file identity, polled) and the plugin's own
socket: when the kubelet's socket is new, or the plugin's is gone, it has the server re-created if
needed and registers again; a failed ``Register`` is retried on the next poll. HAMi's NVIDIA plugin
does the same with fsnotify.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import attrs
import grpc

from hami_core.deviceplugin import constants
from hami_core.deviceplugin.proto import deviceplugin_pb2
from hami_core.deviceplugin.proto import deviceplugin_pb2_grpc
from hami_core.looping import Loop

_log = logging.getLogger(__name__)

#: Seconds between two looks at the sockets.
POLL_INTERVAL_SECONDS = 0.5
#: Our deadline on ``Register`` (the kubelet dials the plugin back before it answers).
REGISTER_TIMEOUT_SECONDS = 10.0


@attrs.frozen
class PluginOptions:
    """What the plugin tells the kubelet at registration (``DevicePluginOptions``)."""

    pre_start_required: bool = False
    get_preferred_allocation_available: bool = True


def socket_identity(path: Path) -> tuple[int, int, int] | None:
    """Device, inode and change time of ``path``; ``None`` when it does not exist.

    The change time tells a re-created socket from the old one when the inode number is reused.
    """
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino, found.st_ctime_ns)


def register(
    plugin_dir: Path, endpoint: str, resource_name: str, options: PluginOptions, timeout: float
) -> None:
    """Call ``Registration.Register`` on the kubelet in ``plugin_dir``.

    Raises:
        grpc.RpcError: the kubelet refused or could not be reached within ``timeout``.
    """
    with grpc.insecure_channel(f"unix://{plugin_dir / constants.KUBELET_SOCKET_NAME}") as channel:
        stub = deviceplugin_pb2_grpc.RegistrationStub(channel)  # type: ignore[no-untyped-call,unused-ignore]
        stub.Register(
            deviceplugin_pb2.RegisterRequest(
                version=constants.VERSION,
                endpoint=endpoint,
                resource_name=resource_name,
                options=deviceplugin_pb2.DevicePluginOptions(
                    pre_start_required=options.pre_start_required,
                    get_preferred_allocation_available=options.get_preferred_allocation_available,
                ),
            ),
            timeout=timeout,
        )


class KubeletRegistration:
    """Keeps one plugin registered with the kubelet of ``plugin_dir``, in a thread.

    Args:
        plugin_dir: the device-plugin directory (holds ``kubelet.sock``).
        endpoint: the plugin's socket file name in that directory.
        resource_name: the extended resource it serves.
        options: its options.
        recreate_server: serves the plugin on its socket again (after the kubelet wiped it).
        poll_interval: seconds between looks at the sockets.
        register_timeout: our deadline on each ``Register`` call.
    """

    def __init__(
        self,
        plugin_dir: Path,
        endpoint: str,
        resource_name: str,
        options: PluginOptions,
        recreate_server: Callable[[], None],
        *,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        register_timeout: float = REGISTER_TIMEOUT_SECONDS,
    ) -> None:
        self._plugin_dir = plugin_dir
        self._endpoint = endpoint
        self._resource_name = resource_name
        self._options = options
        self._recreate_server = recreate_server
        self._register_timeout = register_timeout
        self._registered_with: tuple[int, int, int] | None = None
        self._loop = Loop(
            f"kubelet-registration-{endpoint}",
            self._poll,
            interval=poll_interval,
            retry=poll_interval,
            max_retry=poll_interval,
            log=_log,
        )
        self._registrations = 0
        self._registered = threading.Condition()

    @property
    def registrations(self) -> int:
        """How many times the plugin registered successfully."""
        with self._registered:
            return self._registrations

    def wait_registered(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until the plugin has registered ``count`` times in total."""
        with self._registered:
            return self._registered.wait_for(lambda: self._registrations >= count, timeout)

    def start(self) -> None:
        """Register as soon as the kubelet is there, and keep watching."""
        self._loop.start()

    def stop(self) -> None:
        """Stop watching (an ongoing ``Register`` call finishes first)."""
        self._loop.stop()

    def _poll(self) -> None:
        """Register again when the kubelet's socket is new or the plugin's own socket went away."""
        kubelet_socket = self._plugin_dir / constants.KUBELET_SOCKET_NAME
        own_socket = self._plugin_dir / self._endpoint
        kubelet = socket_identity(kubelet_socket)
        own_missing = socket_identity(own_socket) is None
        if kubelet is None or (kubelet == self._registered_with and not own_missing):
            return
        if own_missing:
            _log.info("%s: socket %s is gone; serving it again", self._resource_name, own_socket)
            self._recreate_server()
        try:
            register(
                self._plugin_dir,
                self._endpoint,
                self._resource_name,
                self._options,
                self._register_timeout,
            )
        except grpc.RpcError as err:
            _log.warning(
                "%s: registering with the kubelet at %s failed (retrying): %s",
                self._resource_name,
                kubelet_socket,
                err.details() if isinstance(err, grpc.Call) else err,
            )
        else:
            self._registered_with = kubelet
            _log.info("%s: registered with the kubelet at %s", self._resource_name, kubelet_socket)
            with self._registered:
                self._registrations += 1
                self._registered.notify_all()
