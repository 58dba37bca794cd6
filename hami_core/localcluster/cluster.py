"""``LocalCluster``: the composition of the embedded cluster: API server emulator, kube-scheduler
stand-in(s) and one simulated kubelet per node, started and stopped as one unit.

Layout under ``workdir``: ``kubeconfig`` (for ``kubectl`` and the official client) and one device-plugin
directory per node (``<workdir>/<node>/kubelet.sock``); a device plugin for node ``n`` serves its socket
in ``plugin_dir(n)``. Like a real cluster, pods of ``default-scheduler`` are always scheduled; a
``scheduler_config`` whose profiles are other names (HAMi's ``hami-scheduler``) runs as a second
scheduler instance with its extenders, as HAMi deploys its own kube-scheduler beside the default one.
Everything listens on 127.0.0.1 only.

``control_plane="real"`` swaps the emulator and the stand-in for a real etcd, kube-apiserver and one
kube-scheduler process per scheduler config (``controlplane.py``, binaries from ``make kube``); the
simulated kubelets are the same on both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from typing import Any

from hami_core.kube.client import RealKubeClient
from hami_core.localcluster.controlplane import ControlPlane
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.fleet import load_fleet
from hami_core.localcluster.kubelet import Kubelet
from hami_core.localcluster.scheduler import Scheduler
from hami_core.localcluster.scheduler_config import DEFAULT_SCHEDULER_NAME
from hami_core.localcluster.scheduler_config import SchedulerConfig
from hami_core.localcluster.scheduler_config import load_scheduler_config

if TYPE_CHECKING:
    from hami_core.localcluster.apiserver import ApiServer


class LocalCluster:
    """An embedded Kubernetes cluster for demos and integration tests.

    Args:
        nodes: a node count (nodes ``node-0`` ...), a ``Fleet``, or a fleet document, YAML text or file.
        workdir: where the kubeconfig and the device-plugin directories go; keep it short, unix socket
            paths must stay under 108 bytes.
        port: API server port; 0 lets the OS choose.
        state_file: JSON snapshot of the API server's objects, loaded on start and kept current.
        scheduler_config: a KubeSchedulerConfiguration (object, document, YAML text or file) for the
            scheduler instance that serves its profiles and calls its extenders.
        control_plane: ``"emulator"`` (the embedded API server and scheduler stand-in) or ``"real"``
            (etcd, kube-apiserver and kube-scheduler processes built by ``make kube``).
        kube_bin: the real control plane's binaries (default: ``controlplane.default_bin_dir()``).

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        nodes: int | Fleet | Mapping[str, Any] | str | Path = 1,
        workdir: str | os.PathLike[str] = ".",
        *,
        port: int = 0,
        state_file: str | os.PathLike[str] | None = None,
        scheduler_config: SchedulerConfig | Mapping[str, Any] | str | Path | None = None,
        control_plane: ControlPlaneKind = "emulator",
        kube_bin: Path | None = None,
    ) -> None:
        if control_plane == "real" and state_file is not None:
            raise ValueError(
                "a state file is an emulator feature; the real control plane keeps state in etcd"
            )
        self.control_plane = control_plane
        self._kube_bin = kube_bin
        self._real: ControlPlane | None = None
        self.fleet = load_fleet(nodes)
        self.workdir = Path(workdir)
        self.kubeconfig = self.workdir / "kubeconfig"
        self._port = port
        self._state_file = state_file
        self._configs = [load_scheduler_config(scheduler_config)]
        if DEFAULT_SCHEDULER_NAME not in self._configs[0].scheduler_names:
            self._configs.insert(0, SchedulerConfig())
        self._apiserver: ApiServer | None = None
        self._clients: list[RealKubeClient] = []
        self.kubelets: dict[str, Kubelet] = {}
        self.schedulers: list[Scheduler] = []
        self._kube: RealKubeClient | None = None

    @property
    def api_server(self) -> ApiServer:
        """The running API server emulator (e.g. to ``map_service`` a webhook)."""
        if self._apiserver is None:
            raise RuntimeError("the emulator is not running")
        return self._apiserver

    @property
    def real(self) -> ControlPlane:
        """The running real control plane (its processes, logs and URL)."""
        if self._real is None:
            raise RuntimeError("the real control plane is not running")
        return self._real

    @property
    def url(self) -> str:
        """The API server's URL."""
        return self.real.url if self.control_plane == "real" else self.api_server.url

    @property
    def kube(self) -> RealKubeClient:
        """A client owned by the cluster (closed by ``stop()``)."""
        if self._kube is None:
            raise RuntimeError("the local cluster is not running")
        return self._kube

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.fleet.nodes]

    def plugin_dir(self, node: str) -> Path:
        """The device-plugin directory of ``node`` (holds its ``kubelet.sock``)."""
        return self.workdir / node

    def map_service(self, namespace: str, name: str, port: int, local_port: int) -> None:
        """Send the API server's calls to Service ``namespace/name`` at ``port`` (a webhook's) to
        ``local_port`` on 127.0.0.1, which neither back end could reach through a Service network:
        the emulator's service map, or the real control plane's service proxy (the Service must
        exist)."""
        if self._real is not None:
            self._real.map_service(namespace, name, port, local_port)
        else:
            self.api_server.map_service(namespace, name, port, f"https://127.0.0.1:{local_port}")

    def unmap_service(self, namespace: str, name: str, port: int) -> None:
        """Undo ``map_service`` (on the real control plane, while the Service still exists)."""
        if self._real is not None:
            self._real.unmap_service(namespace, name, port)
        else:
            self.api_server.unmap_service(namespace, name, port)

    def client(self) -> RealKubeClient:
        """A new client for this cluster, read from the kubeconfig; the caller closes it."""
        return RealKubeClient(kubeconfig=self.kubeconfig)

    def start(self) -> LocalCluster:
        """Start the API server, write the kubeconfig, then the kubelets and the scheduler(s)."""
        # Imported here so the rest of the local cluster never depends on the emulator's import cost.
        from hami_core.localcluster.apiserver import ApiServer

        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.control_plane == "real":
                self._real = ControlPlane(
                    self.workdir / "real", self._configs, bin_dir=self._kube_bin
                ).start()
                self.kubeconfig.write_bytes(self._real.kubeconfig.read_bytes())
            else:
                state = Path(self._state_file) if self._state_file is not None else None
                self._apiserver = ApiServer(port=self._port, state_file=state).start()
                self._apiserver.write_kubeconfig(self.kubeconfig)
            self._kube = self._new_client()
            for node in self.fleet.nodes:
                kubelet = Kubelet(self._new_client(), node, self.plugin_dir(node.name))
                self.kubelets[node.name] = kubelet
                kubelet.start()
            for config in self._configs if self._real is None else ():
                scheduler = Scheduler(self._new_client(), config)
                self.schedulers.append(scheduler)
                scheduler.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the kubelets, the schedulers and the API server; safe to call twice."""
        for kubelet in self.kubelets.values():
            kubelet.stop()
        self.kubelets = {}
        for scheduler in self.schedulers:
            scheduler.stop()
        self.schedulers = []
        for client in self._clients:
            client.close()
        self._clients = []
        self._kube = None
        if self._apiserver is not None:
            self._apiserver.stop()
            self._apiserver = None
        if self._real is not None:
            self._real.stop()
            self._real = None

    def _new_client(self) -> RealKubeClient:
        client = self.client()
        self._clients.append(client)
        return client

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
