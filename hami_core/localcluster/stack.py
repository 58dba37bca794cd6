"""hami's own components on a local cluster, each as its own ``hami`` process.

``hami local-cluster up --hami`` and ``hami demo`` deploy hami onto the embedded cluster the
way the Helm chart deploys it onto a real one: the scheduler process serves the extender and the
webhook over HTTPS, kube-scheduler (here the stand-in) calls the extender through a
KubeSchedulerConfiguration like the chart's, the API server calls the webhook through a
MutatingWebhookConfiguration with a ``caBundle``, and one device-plugin process per node and
backend registers with that node's kubelet. Readiness is awaited the way Kubernetes awaits it:
the scheduler's ``/readyz``, then a watch on nodes until every plugin's devices are allocatable.
Once ready, a :class:`~hami_core.localcluster.supervision.Supervisor` restarts any of these
processes that dies, with backoff, as kubelet restarts a container, and logs each death.

The extender is authenticated as the chart sets it up: the stack makes a client CA and a client
certificate, the scheduler requires that CA (``scheduler.client_ca_file``) and kube-scheduler (the
stand-in, or the real one) presents the certificate through its extender ``tlsConfig``, verifying the
scheduler's serving certificate with ``caFile`` in turn. Keys are written ``0600`` in a ``0700`` folder.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from hami_core.config import parse_config
from hami_core.errors import HamiError
from hami_core.kube.client import KubeClient
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.supervision import Supervisor
from hami_core.plugins import load_backends
from hami_core.webhook import certs
from hami_core.webhook.registration import webhook_configuration

#: The name of the MutatingWebhookConfiguration the stack registers (the chart's ``<fullname>-webhook``).
WEBHOOK_CONFIGURATION = "hami-webhook"


class StackError(HamiError):
    """A hami component on the local cluster did not start or become ready."""


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by this user only (``0600`` from creation: a key is never world-readable)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kube_scheduler_configuration(
    scheduler_name: str, url: str, resources: Sequence[str], tls: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The KubeSchedulerConfiguration HAMi's chart renders: filter and bind through the extender.

    ``tls`` is the extender's ``tlsConfig`` (``certFile``/``keyFile``/``caFile``); by default
    ``insecure: true``, as HAMi's chart has it.
    """
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [{"schedulerName": scheduler_name}],
        "extenders": [
            {
                "urlPrefix": url,
                "filterVerb": "filter",
                "bindVerb": "bind",
                "weight": 1,
                "enableHTTPS": url.startswith("https://"),
                "tlsConfig": dict(tls) if tls is not None else {"insecure": True},
                "httpTimeout": "30s",
                "nodeCacheCapable": True,
                "ignorable": False,
                "managedResources": [{"name": name, "ignoredByScheduler": True} for name in resources],
            }
        ],
    }


class HamiStack:
    """The scheduler (extender and webhook) and the device plugins of ``backends`` on a local cluster.

    Args:
        document: the hami config document (parsed YAML) the processes run with; its
            ``scheduler:`` section gets the stack's address, certificate and metrics port.
        source: where ``document`` came from, for error messages.
        fleet: the cluster's nodes; a node's ``backends`` key (a list) limits which plugins run on
            it, by default every enabled backend; its ``env`` key (a mapping) is added to the
            environment of its device plugins, with ``{workdir}`` replaced by ``workdir`` and
            ``{fleet}`` by the fleet file's folder (a vendor SDK's fake, say).
        workdir: where the certificates, configs, logs and the cluster's sockets go.
        state_file: the API server's snapshot file, if it should survive restarts.
        control_plane: ``"real"`` runs etcd, kube-apiserver and kube-scheduler (``make kube``) instead
            of the emulator and the stand-in; the hami processes are the same.
    """

    def __init__(
        self,
        document: Mapping[str, Any],
        fleet: Fleet,
        workdir: Path,
        *,
        source: str = "<stack>",
        state_file: Path | None = None,
        control_plane: ControlPlaneKind = "emulator",
    ) -> None:
        self.document = dict(document)
        self.config = parse_config(self.document, source)
        self.backends = load_backends(self.config)
        self.fleet = fleet
        self.workdir = workdir
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.tls_dir = workdir / "tls"
        self.cluster = LocalCluster(
            fleet,
            workdir,
            state_file=state_file,
            scheduler_config=kube_scheduler_configuration(
                self.config.scheduler.scheduler_name,
                self.url,
                [name for backend in self.backends for name in backend.resource_names.all()],
                tls={
                    "certFile": str(self.tls_dir / "client.crt"),
                    "keyFile": str(self.tls_dir / "client.key"),
                    "caFile": str(self.tls_dir / "ca.crt"),
                },
            ),
            control_plane=control_plane,
        )
        self.supervisor = Supervisor()
        self._bundle: certs.CertificateBundle | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> HamiStack:
        """Start the cluster, then the scheduler and the device plugins, and wait until all are ready.

        Raises:
            StackError: a process exited or did not become ready within ``timeout`` seconds.
        """
        try:
            self._write_certificates()  # before the cluster: kube-scheduler reads its client pair at start
            self.cluster.start()
            config_file = self._write_scheduler_config()
            self._launch("scheduler", ["scheduler", "--config", str(config_file)])
            self._wait_ready(time.monotonic() + timeout)
            self._register_webhook()
            for node in self.fleet.nodes:
                for backend in self._node_backends(node.extra):
                    self.start_device_plugin(node.name, backend)
            self._wait_devices(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        self.supervisor.run()
        return self

    def start_device_plugin(self, node_name: str, backend: str) -> None:
        """Start (or start again) the device plugin of ``backend`` on ``node_name`` as its own process."""
        node = next(spec for spec in self.fleet.nodes if spec.name == node_name)
        self._launch(
            self.device_plugin_name(node_name, backend),
            [
                "device-plugin",
                "--backend",
                backend,
                "--node-name",
                node_name,
                "--plugin-dir",
                str(self.cluster.plugin_dir(node_name)),
                "--config",
                str(self.config_path),
            ],
            env=self._plugin_env(node.extra),
        )

    def device_plugin_process(self, node_name: str, backend: str) -> subprocess.Popen[bytes]:
        """The running process of a device plugin (recovery tests signal it; it is restarted)."""
        return self.supervisor.process(self.device_plugin_name(node_name, backend))

    def hold_device_plugin(self, node_name: str, backend: str) -> subprocess.Popen[bytes]:
        """The process of a device plugin, no longer restarted when it dies (until
        :meth:`start_device_plugin`): for tests that need a node without its plugin for a while."""
        return self.supervisor.hold(self.device_plugin_name(node_name, backend))

    @staticmethod
    def device_plugin_name(node_name: str, backend: str) -> str:
        """The name of a device plugin's process and log."""
        return f"device-plugin-{node_name}-{backend}"

    def stop(self) -> None:
        """Stop supervising, stop every process (SIGTERM, then SIGKILL after 10 s) and the cluster; idempotent."""
        self.supervisor.stop()
        self.cluster.stop()

    def __enter__(self) -> HamiStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def kube(self) -> KubeClient:
        return self.cluster.kube

    @property
    def ca_pem(self) -> bytes:
        """The CA that signed the scheduler's serving certificate."""
        if self._bundle is None:
            raise StackError("the stack has not been started")
        return self._bundle.ca.cert_pem

    @property
    def config_path(self) -> Path:
        """The hami config file the scheduler and device-plugin processes run with."""
        return self.workdir / "hami-config.yaml"

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # ------------------------------------------------------------------ steps

    def _node_backends(self, extra: Mapping[str, Any]) -> list[str]:
        listed = extra.get("backends")
        names = [backend.name for backend in self.backends]
        if listed is None:
            return names
        unknown = [name for name in listed if name not in names]
        if unknown:
            raise StackError(f"fleet names backends that are not enabled: {', '.join(map(str, unknown))}")
        return [str(name) for name in listed]

    def _plugin_env(self, extra: Mapping[str, Any]) -> dict[str, str]:
        raw = extra.get("env") or {}
        if not isinstance(raw, Mapping):
            raise StackError(f"a fleet node's env must be a mapping, got {raw!r}")
        folder = str(self.fleet.source_dir or Path.cwd())
        return {
            str(key): str(value).replace("{workdir}", str(self.workdir)).replace("{fleet}", folder)
            for key, value in raw.items()
        }

    def _write_certificates(self) -> None:
        """The scheduler's serving pair and its CA, and kube-scheduler's client pair and the client CA.

        The client CA's key is not kept: nothing else is ever issued from it.
        """
        now = certs.utc_now()
        self._bundle = certs.create_bundle(
            certs.ServingIdentity(dns_names=("localhost",), ip_addresses=("127.0.0.1",)), now
        )
        client_ca = certs.create_ca(now)
        client = certs.issue_client_certificate(client_ca, "kube-scheduler", now)
        tls = self.tls_dir
        tls.mkdir(mode=0o700, parents=True, exist_ok=True)
        tls.chmod(0o700)
        (tls / "tls.crt").write_bytes(self._bundle.serving.cert_pem)
        write_private(tls / "tls.key", self._bundle.serving.key_pem)
        (tls / "ca.crt").write_bytes(self._bundle.ca.cert_pem)
        (tls / "client-ca.crt").write_bytes(client_ca.cert_pem)
        (tls / "client.crt").write_bytes(client.cert_pem)
        write_private(tls / "client.key", client.key_pem)

    def _write_scheduler_config(self) -> Path:
        """The hami config with the scheduler pointed at this stack's port, certificate and client CA."""
        tls = self.tls_dir
        document = dict(self.document)
        document["scheduler"] = {
            **(document.get("scheduler") or {}),
            "http_bind": f"127.0.0.1:{self.port}",
            "cert_file": str(tls / "tls.crt"),
            "key_file": str(tls / "tls.key"),
            "client_ca_file": str(tls / "client-ca.crt"),
            "metrics_bind": f"127.0.0.1:{self.metrics_port}",
            "leader_elect": False,
        }
        path = self.config_path
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def _launch(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> None:
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = [sys.executable, "-m", "hami_core", *args, "--kubeconfig", str(self.cluster.kubeconfig)]

        def launch() -> subprocess.Popen[bytes]:
            with self.log_path(name).open("ab") as log:  # the child keeps its own copy of the descriptor
                return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)

        self.supervisor.start(name, launch)

    def _check_alive(self) -> None:
        for name, process in self.supervisor.processes().items():
            if process.poll() is not None:
                tail = self.log_path(name).read_text(errors="replace")[-2000:]
                raise StackError(f"{name} exited with status {process.returncode}:\n{tail}")

    def _wait_ready(self, deadline: float) -> None:
        """Wait for the scheduler's ``/readyz`` (a readiness probe, as the chart configures)."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the scheduler was not ready at {self.url}/readyz in time")
            time.sleep(0.2)

    def _register_webhook(self) -> None:
        self.kube.create_mutating_webhook_configuration(
            webhook_configuration(
                WEBHOOK_CONFIGURATION, url=f"{self.url}/webhook", ca_bundle=self.ca_pem, failure_policy="Fail"
            )
        )

    def _wait_devices(self, deadline: float) -> None:
        """Watch nodes until every plugin's devices are registered and allocatable."""
        expected = {
            (node.name, backend) for node in self.fleet.nodes for backend in self._node_backends(node.extra)
        }
        listing = self.kube.list_nodes()
        ready = {key for node in listing["items"] for key in self._ready_backends(node)}
        if expected <= ready:
            return
        watch = self.kube.watch_nodes(
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=max(1, int(deadline - time.monotonic())),
        )
        try:
            for event_type, node in watch:
                if event_type == "BOOKMARK":
                    continue  # a resourceVersion only, sent when registration takes a while
                ready |= self._ready_backends(node)
                if expected <= ready:
                    return
                self._check_alive()
        finally:
            watch.stop()
        self._check_alive()
        missing = ", ".join(f"{node}/{backend}" for node, backend in sorted(expected - ready))
        raise StackError(f"device plugins did not register in time: {missing}")

    def _ready_backends(self, node: Mapping[str, Any]) -> set[tuple[str, str]]:
        name = node["metadata"]["name"]
        annotations = node["metadata"].get("annotations") or {}
        allocatable = node.get("status", {}).get("allocatable") or {}
        ready = set()
        for backend in self.backends:
            count = allocatable.get(backend.resource_names.count, "0")
            if backend.keys.register in annotations and count not in ("", "0"):
                ready.add((name, backend.name))
        return ready
