"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and kube-scheduler processes.

The binaries come from ``make kube`` (built from the ``k8s.io/kubernetes`` and etcd Go modules into
``.cache/kube/<version>/``; ``tools/kube``). Everything lives in one work directory: the API server's
own CA and serving certificate, a service-account signing key, a static token for ``system:masters``
(written into the kubeconfig), etcd's data (``--unsafe-no-fsync``: the data dies with the directory),
each component's log, one KubeSchedulerConfiguration per scheduler instance, and the unix socket of
the service proxy through which kube-apiserver reaches Services (``map_service``). Every process runs in
its own process group and is stopped by PID (SIGTERM, then SIGKILL), also when starting fails; once
the control plane is up, a component that dies is logged and started again with backoff
(:class:`~hami_core.localcluster.supervision.Supervisor`).

Admission is a cluster's default set except the two plugins that need controllers this stack does not
run (specs/real-control-plane.md section 4): ``ServiceAccount`` (no token controller creates the default
ServiceAccount, so every pod would be refused) and ``TaintNodesByCondition`` (it taints every new Node
``not-ready`` and only the node lifecycle controller removes that).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Literal

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hami_core.errors import HamiError
from hami_core.localcluster.scheduler_config import SchedulerConfig
from hami_core.localcluster.service_proxy import ServiceProxy
from hami_core.localcluster.service_routes import service_targets
from hami_core.localcluster.supervision import Supervisor
from hami_core.webhook import certs

ControlPlaneKind = Literal["emulator", "real"]
"""Which API server a local cluster runs: the embedded emulator or the real control plane."""
#: The Kubernetes release ``make kube`` builds (tools/kube/versions.mk says the same).
KUBE_VERSION = "v1.37.2"
#: Environment variable naming the directory with ``etcd``, ``kube-apiserver`` and ``kube-scheduler``.
KUBE_BIN_ENV = "HAMI_KUBE_BIN"
SERVICE_CIDR = "10.0.0.0/24"
DISABLED_ADMISSION = ("ServiceAccount", "TaintNodesByCondition")
BINARIES = ("etcd", "kube-apiserver", "kube-scheduler")
_STOP_SECONDS = 10.0


class ControlPlaneError(HamiError):
    """The real control plane's binaries are missing, or a component did not start or become ready."""


def default_bin_dir() -> Path:
    """``$HAMI_KUBE_BIN``, else ``.cache/kube/<KUBE_VERSION>`` of the source tree hami_core runs from."""
    configured = os.environ.get(KUBE_BIN_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / ".cache" / "kube" / KUBE_VERSION


def find_binaries(bin_dir: Path | None = None) -> Path:
    """The directory holding the three binaries.

    Raises:
        ControlPlaneError: one is missing; the message says how to build them.
    """
    directory = bin_dir if bin_dir is not None else default_bin_dir()
    missing = [name for name in BINARIES if not os.access(directory / name, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{', '.join(missing)} not found in {directory}: run `make kube` in the hami source tree "
            f"(builds Kubernetes {KUBE_VERSION} from its Go modules) or set {KUBE_BIN_ENV}"
        )
    return directory


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kube_scheduler_document(config: SchedulerConfig, kubeconfig: Path) -> dict[str, Any]:
    """The KubeSchedulerConfiguration kube-scheduler reads for ``config`` (the inverse of its parser)."""
    extenders = []
    for extender in config.extenders:
        entry: dict[str, Any] = {
            "urlPrefix": extender.url_prefix,
            "weight": extender.weight,
            "enableHTTPS": extender.enable_https,
            "httpTimeout": f"{extender.http_timeout:g}s",
            "nodeCacheCapable": extender.node_cache_capable,
            "ignorable": extender.ignorable,
            "managedResources": [
                {"name": r.name, "ignoredByScheduler": r.ignored_by_scheduler}
                for r in extender.managed_resources
            ],
        }
        for key, verb in (
            ("filterVerb", extender.filter_verb),
            ("prioritizeVerb", extender.prioritize_verb),
            ("preemptVerb", extender.preempt_verb),
            ("bindVerb", extender.bind_verb),
        ):
            if verb:
                entry[key] = verb
        if extender.tls is not None:
            tls = extender.tls
            entry["tlsConfig"] = {
                key: value
                for key, value in (
                    ("insecure", tls.insecure),
                    ("serverName", tls.server_name),
                    ("certFile", tls.cert_file),
                    ("keyFile", tls.key_file),
                    ("caFile", tls.ca_file),
                    ("certData", base64.b64encode(tls.cert_data).decode()),
                    ("keyData", base64.b64encode(tls.key_data).decode()),
                    ("caData", base64.b64encode(tls.ca_data).decode()),
                )
                if value
            }
        extenders.append(entry)
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": name} for name in config.scheduler_names],
        "extenders": extenders,
    }


class ControlPlane:
    """etcd, kube-apiserver and one kube-scheduler per ``SchedulerConfig``, as processes.

    Args:
        workdir: where certificates, data, configs, logs and the service proxy's socket go (created
            if missing); keep it short, a unix socket path must stay under 108 bytes.
        schedulers: one kube-scheduler instance per entry, each serving that entry's profiles.
        bin_dir: the binaries' directory (default ``default_bin_dir()``).
    """

    def __init__(
        self, workdir: Path, schedulers: Sequence[SchedulerConfig] = (), *, bin_dir: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self._schedulers = list(schedulers)
        self._bin_dir = bin_dir
        self._token = secrets.token_hex(16)
        self._ca_pem = b""
        self.port = 0
        #: Restarts a component that dies once the control plane is up (``start`` fails instead before).
        self.supervisor = Supervisor(halt=_stop_group)
        #: kube-apiserver's route to Services: ``map_service`` adds one.
        self.service_proxy = ServiceProxy(workdir / "service-proxy.sock")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 120.0) -> ControlPlane:
        """Start etcd, then kube-apiserver (awaiting ``/readyz``), then the schedulers (``/healthz``).

        Raises:
            ControlPlaneError: a binary is missing, a process exited, or readiness timed out.
        """
        bins = find_binaries(self._bin_dir)
        deadline = time.monotonic() + timeout
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            pki = self._write_pki()
            etcd_port = self._start_etcd(bins)
            self._start_apiserver(bins, pki, etcd_port)
            self._write_kubeconfig(self.kubeconfig)
            self._wait_healthy("kube-apiserver", f"{self.url}/readyz", deadline, verify=True)
            for index, config in enumerate(self._schedulers):
                self._start_scheduler(bins, index, config, deadline)
        except BaseException:
            self.stop()
            raise
        self.supervisor.run()
        return self

    def stop(self) -> None:
        """Stop supervising and every process group, newest first (SIGTERM, then SIGKILL), then the
        service proxy; idempotent."""
        self.supervisor.stop()
        self.service_proxy.stop()

    def map_service(self, namespace: str, name: str, port: int, local_port: int) -> None:
        """Send kube-apiserver's dials to Service ``namespace/name`` at ``port`` to ``local_port`` on
        127.0.0.1 (the Service must exist: it is dialled at its cluster IP)."""
        self.service_proxy.routes.add(self._service_targets(namespace, name, port), local_port)

    def unmap_service(self, namespace: str, name: str, port: int) -> None:
        """Undo ``map_service`` (call it while the Service still exists)."""
        self.service_proxy.routes.remove(self._service_targets(namespace, name, port))

    def _service_targets(self, namespace: str, name: str, port: int) -> tuple[str, ...]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/namespaces/{namespace}/services/{name}",
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
        )
        context = ssl.create_default_context(cadata=self._ca_pem.decode())
        with urllib.request.urlopen(request, context=context, timeout=30) as reply:
            cluster_ip = json.load(reply)["spec"].get("clusterIP", "")
        return service_targets(namespace, name, "" if cluster_ip == "None" else cluster_ip, port)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pids(self) -> dict[str, int]:
        """The running components' PIDs (each one leads its own process group)."""
        return {
            name: process.pid
            for name, process in self.supervisor.processes().items()
            if process.poll() is None
        }

    # ------------------------------------------------------------------ steps

    def _write_pki(self) -> Path:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        now = certs.utc_now()
        identity = certs.ServingIdentity(
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        bundle = certs.create_bundle(identity, now)
        self._ca_pem = bundle.ca.cert_pem
        (pki / "ca.crt").write_bytes(bundle.ca.cert_pem)
        (pki / "apiserver.crt").write_bytes(bundle.serving.cert_pem)
        (pki / "apiserver.key").write_bytes(bundle.serving.key_pem)
        signing = ec.generate_private_key(ec.SECP256R1())
        (pki / "sa.key").write_bytes(
            signing.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (pki / "sa.pub").write_bytes(
            signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (pki / "tokens.csv").write_text(f'{self._token},hami-admin,hami-admin,"system:masters"\n')
        return pki

    def _start_etcd(self, bins: Path) -> int:
        port, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
        self._launch(
            "etcd",
            [
                str(bins / "etcd"),
                "--name=hami",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=hami={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        return port

    def _start_apiserver(self, bins: Path, pki: Path, etcd_port: int) -> None:
        self.port = free_port()
        egress = self.workdir / "egress-selector.yaml"
        egress.write_text(yaml.safe_dump(egress_selector_document(self.service_proxy.start().path)))
        self._launch(
            "kube-apiserver",
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.url}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota",
                f"--disable-admission-plugins={','.join(DISABLED_ADMISSION)}",
                # The `kubernetes` Service's endpoints would be 127.0.0.1, which the API refuses; nothing
                # here reaches the API server through that Service.
                "--endpoint-reconciler-type=none",
                # Dials to a Service's cluster IP (webhooks, aggregated APIs) go through the loopback
                # service proxy, as no kube-proxy routes cluster IPs here.
                f"--egress-selector-config-file={egress}",
                "--profiling=false",
                "--v=0",
            ],
        )

    def _start_scheduler(self, bins: Path, index: int, config: SchedulerConfig, deadline: float) -> None:
        name = f"kube-scheduler-{index}"
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(kube_scheduler_document(config, self.kubeconfig), sort_keys=False))
        port = free_port()
        cert_dir = self.workdir / name
        cert_dir.mkdir(exist_ok=True)
        self._launch(
            name,
            [
                str(bins / "kube-scheduler"),
                f"--config={path}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                "--v=1",
            ],
        )
        self._wait_healthy(name, f"https://127.0.0.1:{port}/healthz", deadline, verify=False)

    def _write_kubeconfig(self, path: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "hami-real",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self._ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "hami-admin", "user": {"token": self._token}}],
            "contexts": [
                {
                    "name": "hami-real",
                    "context": {"cluster": "hami-real", "user": "hami-admin", "namespace": "default"},
                }
            ],
            "current-context": "hami-real",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _launch(self, name: str, command: list[str]) -> None:
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)

        def launch() -> subprocess.Popen[bytes]:
            with self.log_path(name).open(
                "ab"
            ) as log:  # a restart appends; the child keeps its own descriptor
                return subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )

        self.supervisor.start(name, launch)

    def _check_alive(self) -> None:
        for name, process in self.supervisor.processes().items():
            if process.poll() is not None:
                tail = self.log_path(name).read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with status {process.returncode}:\n{tail}")

    def _wait_healthy(self, name: str, url: str, deadline: float, *, verify: bool) -> None:
        if verify:
            context = ssl.create_default_context(cadata=self._ca_pem.decode())
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}"})
        last = ""
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as reply:
                    if reply.status == 200:
                        return
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}: {err.read()[-500:].decode(errors='replace')}"
            except (urllib.error.URLError, OSError) as err:
                last = str(err)
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} was not healthy at {url} in time (last answer: {last})")
            time.sleep(0.25)


def egress_selector_document(proxy_socket: Path) -> dict[str, Any]:
    """kube-apiserver's EgressSelectorConfiguration: ``cluster`` traffic (dials to Services and pods)
    tunnels through the HTTP CONNECT proxy on the unix socket ``proxy_socket``; control-plane and
    etcd traffic is direct."""
    return {
        "apiVersion": "apiserver.k8s.io/v1beta1",
        "kind": "EgressSelectorConfiguration",
        "egressSelections": [
            {
                "name": "cluster",
                "connection": {
                    "proxyProtocol": "HTTPConnect",
                    "transport": {"uds": {"udsName": str(proxy_socket)}},
                },
            }
        ],
    }


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group ``process`` leads, SIGKILL it if it outlives the grace period."""
    for sig, wait in ((signal.SIGTERM, _STOP_SECONDS), (signal.SIGKILL, None)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
