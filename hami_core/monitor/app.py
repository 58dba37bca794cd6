"""``hami monitor``'s process: the metrics endpoint and the tick loop until stopped."""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client import Gauge
from prometheus_client import start_http_server

from hami_core.looping import Loop
from hami_core.monitor.metrics import MonitorCollector
from hami_core.monitor.service import HostSource
from hami_core.monitor.service import Monitor
from hami_core.monitor.service import PodSource

log = logging.getLogger(__name__)

#: HAMi's monitor port (its ``--metrics-bind-address :9394``).
DEFAULT_PORT = 9394


def split_bind(address: str) -> tuple[str, int]:
    """``host:port`` or ``:port`` (all interfaces) as ``(host, port)``.

    Raises:
        ValueError: no valid port.
    """
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port else DEFAULT_PORT


def registry_for(monitor: Monitor, node: str) -> CollectorRegistry:
    """A registry with ``hami_build_info`` and the monitor's families."""
    registry = CollectorRegistry()
    build = Gauge(
        "hami_build_info",
        "Build information",
        ["version", "revision", "build_date", "go_version", "compiler", "platform"],
        registry=registry,
    )
    build.labels(
        importlib.metadata.version("hami-core"),
        "",
        "",
        f"python{platform.python_version()}",
        platform.python_implementation().lower(),
        f"{platform.system().lower()}/{platform.machine()}",
    ).set(1)
    registry.register(MonitorCollector(monitor.latest, node))
    return registry


def run(
    root: Path,
    node: str,
    pods: PodSource,
    *,
    host: HostSource | None,
    bind: str,
    interval: float,
    grace: float,
    stop: threading.Event,
) -> None:
    """Serve metrics on ``bind`` and tick every ``interval`` seconds until ``stop`` is set."""
    monitor = Monitor(root, pods, host=host, grace=grace)
    address, port = split_bind(bind)
    server, thread = start_http_server(port, address, registry=registry_for(monitor, node))
    log.info("hami monitor: regions under %s, metrics on %s:%d", root, address or "*", port)
    loop = Loop("monitor", monitor.tick_step, interval=interval, log=log)
    loop.start()
    try:
        stop.wait()
    finally:
        loop.stop()
        server.shutdown()
        server.server_close()
        thread.join()
