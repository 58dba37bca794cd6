"""hami device plugins on simulated nodes: as threads in this process, or as ``hami device-plugin`` processes.

Reusable by any test that needs real device plugins (the scheduler's burst test among them):
``PluginFleet.on_cluster(cluster)`` serves a :class:`~hami_core.localcluster.cluster.LocalCluster`'s nodes;
the plain constructor takes any way of making API clients and finding each node's device-plugin
directory (``FakeKube`` with hand-made kubelets, say). Thread plugins take any backend object, so tests
can inject health; process plugins run the command line exactly as a DaemonSet would, logging to
``<log_dir>/<node>.log``. Keep the directories short: unix socket paths must stay under 108 bytes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hami_core.backend import DeviceBackend
from hami_core.deviceplugin.app import DevicePlugin
from hami_core.deviceplugin.app import Timings
from hami_core.kube.client import KubeClient
from hami_core.kube.client import RealKubeClient
from hami_core.localcluster.cluster import LocalCluster

#: Loop intervals that keep tests fast: health and ``kubelet.sock`` are looked at every 20 ms.
FAST = Timings(register_interval=30.0, retry_interval=0.05, health_interval=0.02, kubelet_poll_interval=0.02)


def _close(client: KubeClient) -> None:
    if isinstance(client, RealKubeClient):
        client.close()


class PluginFleet:
    """Device plugins on nodes, one per node, started and stopped by node name.

    Args:
        make_kube: returns an API client; each thread plugin gets its own, as a process would.
        plugin_dir: the device-plugin directory of a node (where its kubelet serves ``kubelet.sock``).
        log_dir: where process plugins write their logs.
        close_kube: closes a client made by ``make_kube``.
    """

    def __init__(
        self,
        make_kube: Callable[[], KubeClient],
        plugin_dir: Callable[[str], Path],
        log_dir: Path,
        close_kube: Callable[[KubeClient], None] = _close,
    ) -> None:
        self.plugins: dict[str, DevicePlugin] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.plugin_dir = plugin_dir
        self.log_dir = log_dir
        self._make_kube = make_kube
        self._close_kube = close_kube
        self._clients: dict[str, KubeClient] = {}

    @classmethod
    def on_cluster(cls, cluster: LocalCluster) -> PluginFleet:
        """Plugins for ``cluster``'s nodes, each with its own client from the cluster's kubeconfig."""
        return cls(cluster.client, cluster.plugin_dir, cluster.workdir)

    def start_plugin(
        self, node_name: str, backend: DeviceBackend, *, timings: Timings = FAST, lock_expiry: float = 300.0
    ) -> DevicePlugin:
        """Run ``backend``'s device plugin for ``node_name`` in this process."""
        client = self._clients[node_name] = self._make_kube()
        plugin = DevicePlugin(
            backend, node_name, self.plugin_dir(node_name), client, lock_expiry=lock_expiry, timings=timings
        )
        plugin.start()
        self.plugins[node_name] = plugin
        return plugin

    def stop_plugin(self, node_name: str) -> None:
        """Stop the thread plugin of ``node_name`` cleanly."""
        self.plugins.pop(node_name).stop()
        self._close_kube(self._clients.pop(node_name))

    def start_process(
        self, node_name: str, *, kubeconfig: Path, config: Path, backend: str = "mock"
    ) -> subprocess.Popen[bytes]:
        """Run ``hami device-plugin`` for ``node_name`` as its own process."""
        with (self.log_dir / f"{node_name}.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hami_core",
                    "device-plugin",
                    "--backend",
                    backend,
                    "--node-name",
                    node_name,
                    "--plugin-dir",
                    str(self.plugin_dir(node_name)),
                    "--kubeconfig",
                    str(kubeconfig),
                    "--config",
                    str(config),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.processes[node_name] = process
        return process

    def log(self, node_name: str) -> str:
        """What the process plugin of ``node_name`` has logged so far."""
        path = self.log_dir / f"{node_name}.log"
        return path.read_text() if path.exists() else ""

    def kill_process(self, node_name: str) -> None:
        """SIGKILL the process plugin of ``node_name``: nothing is cleaned up, as when a plugin crashes."""
        process = self.processes.pop(node_name)
        process.kill()
        process.wait()

    def stop_process(self, node_name: str, timeout: float = 10.0) -> int:
        """SIGTERM the process plugin of ``node_name`` and return its exit status."""
        process = self.processes.pop(node_name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def close(self) -> None:
        """Stop every plugin."""
        for name in list(self.processes):
            self.kill_process(name)
        for name in list(self.plugins):
            self.stop_plugin(name)
