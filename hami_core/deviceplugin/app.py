"""Composition of the device plugin process: one backend on one node.

:class:`DevicePlugin` wires the parts together: the backend discovers the node's devices into a
:class:`~hami_core.deviceplugin.devices.DeviceState`; a gRPC :class:`~hami_core.deviceplugin.server.PluginServer`
serves them on ``<plugin dir>/<backend>-<resource>.sock`` (``mock-gpu.sock``, as HAMi's
``nvidia-gpu.sock``); :class:`~hami_core.deviceplugin.registration.KubeletRegistration` keeps it
registered with the kubelet; :class:`~hami_core.deviceplugin.registering.RegisterLoop` keeps the node's
register annotation current; and a health thread polls the backend, feeding changes to both.
:func:`run` is what ``hami device-plugin`` calls. Several plugins may run in one process (the local
cluster's tests do), each with its own directory and node name.
"""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from pathlib import Path

import attrs

from hami_core import plugins
from hami_core.backend import DeviceBackend
from hami_core.config import HamiConfig
from hami_core.deviceplugin import registering
from hami_core.deviceplugin import registration
from hami_core.deviceplugin.allocating import Allocator
from hami_core.deviceplugin.devices import DeviceState
from hami_core.deviceplugin.registering import RegisterLoop
from hami_core.deviceplugin.registration import KubeletRegistration
from hami_core.deviceplugin.registration import PluginOptions
from hami_core.deviceplugin.server import DevicePluginServicer
from hami_core.deviceplugin.server import PluginServer
from hami_core.kube.client import KubeClient
from hami_core.kube.nodelock import NodeLock
from hami_core.looping import Loop

_log = logging.getLogger(__name__)


@attrs.frozen
class Timings:
    """How often the plugin's loops run, in seconds; tests shorten them.

    Args:
        register_interval: between register annotation passes after a success (HAMi: 30).
        retry_interval: before the next pass after a failed one (HAMi: 5).
        health_interval: between two health polls of the backend.
        kubelet_poll_interval: between two looks at ``kubelet.sock``.
    """

    register_interval: float = registering.REGISTER_INTERVAL_SECONDS
    retry_interval: float = registering.RETRY_INTERVAL_SECONDS
    health_interval: float = 5.0
    kubelet_poll_interval: float = registration.POLL_INTERVAL_SECONDS


def endpoint_name(backend: DeviceBackend) -> str:
    """The plugin's socket file name: ``<backend>-<resource name after the />.sock``, e.g. ``mock-gpu.sock``."""
    return f"{backend.name}-{backend.resource_names.count.rpartition('/')[2]}.sock"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DevicePlugin:
    """One backend's device plugin on one node.

    Args:
        backend: the backend whose devices to serve.
        node_name: the node the plugin runs on.
        plugin_dir: the kubelet's device-plugin directory.
        kube: the API client.
        lock_expiry: seconds after which a node lock counts as stale (the scheduler's lock timeout).
        timings: loop intervals.
        now: the clock (lock expiry, handshake times).
    """

    def __init__(
        self,
        backend: DeviceBackend,
        node_name: str,
        plugin_dir: Path,
        kube: KubeClient,
        *,
        lock_expiry: float = 300.0,
        timings: Timings = Timings(),
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.backend = backend
        self.node_name = node_name
        self.plugin_dir = Path(plugin_dir)
        self.options = PluginOptions()
        self._timings = timings
        self._now = now
        self._health = Loop(
            f"node {node_name}: {backend.name} health check",
            self._poll_health,
            interval=timings.health_interval,
            retry=timings.health_interval,
            max_retry=timings.health_interval,
            log=_log,
        )
        self._discovered = backend.discover(node_name)
        self.state = DeviceState(self._discovered)
        self.allocator = Allocator(
            kube, backend, node_name, self.state, NodeLock(kube, expiry=lock_expiry, clock=now)
        )
        self.server = PluginServer(
            DevicePluginServicer(self.allocator, self.state, self.options),
            self.plugin_dir / endpoint_name(backend),
        )
        self.registration = KubeletRegistration(
            self.plugin_dir,
            endpoint_name(backend),
            backend.resource_names.count,
            self.options,
            self.server.start,
            poll_interval=timings.kubelet_poll_interval,
        )
        self.register_loop = RegisterLoop(
            kube,
            backend,
            node_name,
            lambda: self.state.devices,
            now,
            self._clear_stale_lock,
            interval=timings.register_interval,
            retry_interval=timings.retry_interval,
        )

    def start(self) -> None:
        """Serve, register with the kubelet, publish the devices and start watching health."""
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self.server.start()
        self.registration.start()
        self.register_loop.start()
        self._health.start(after=self._timings.health_interval)

    def stop(self) -> None:
        """Stop every loop, end the streams, stop serving and remove the socket."""
        self._health.stop()
        self.registration.stop()
        self.register_loop.stop()
        self.state.close()
        self.server.stop()

    def check_health(self) -> bool:
        """Poll the backend's health once; a change is streamed to the kubelet and registered.

        Returns:
            Whether any device changed.
        """
        changed = self.state.set_health(self.backend.health(self._discovered))
        if changed:
            _log.info(
                "node %s: %s device health changed: %s",
                self.node_name,
                self.backend.name,
                {device.id: device.health for device in self.state.devices},
            )
            self.register_loop.poke()
        return changed

    def _poll_health(self) -> None:
        self.check_health()  # a vendor SDK error is logged by the loop and polled again next interval

    def _clear_stale_lock(self) -> None:
        self.allocator.clear_stale_lock(self._now())


def only_backend(config: HamiConfig, name: str) -> HamiConfig:
    """``config`` with backend ``name`` enabled and every other backend disabled.

    A device plugin serves one backend; loading the others would import vendor code for nothing.

    Raises:
        ConfigError: ``name`` is not a valid backend name.
    """
    enabled = config.with_enabled([name])
    sections = {
        backend: types.MappingProxyType({**section, "enabled": backend == name})
        for backend, section in enabled.sections.items()
    }
    return attrs.evolve(enabled, sections=types.MappingProxyType(sections))


def run(
    config: HamiConfig,
    backend_name: str,
    node_name: str,
    plugin_dir: Path,
    kube: KubeClient,
    *,
    stop: threading.Event | None = None,
    timings: Timings = Timings(),
) -> None:
    """Run backend ``backend_name``'s device plugin on ``node_name`` until ``stop`` is set.

    Args:
        config: the hami config (backend section, the scheduler's node lock timeout).
        backend_name: the backend to serve; it is loaded whether or not the config enables it.
        node_name: the node the plugin runs on.
        plugin_dir: the kubelet's device-plugin directory.
        kube: the API client.
        stop: set it to shut down cleanly; ``None`` runs until the process ends.
        timings: loop intervals.

    Raises:
        BackendLoadError: the backend is not installed or fails to load.
        ConfigError: the backend's config section is invalid.
    """
    backend = plugins.load_backends(only_backend(config, backend_name)).get(backend_name)
    plugin = DevicePlugin(
        backend,
        node_name,
        plugin_dir,
        kube,
        lock_expiry=config.scheduler.node_lock_timeout,
        timings=timings,
    )
    plugin.start()
    _log.info(
        "node %s: %s device plugin serving %d devices on %s",
        node_name,
        backend_name,
        len(plugin.state.devices),
        plugin.server.socket_path,
    )
    try:
        (stop if stop is not None else threading.Event()).wait()
    finally:
        plugin.stop()
