"""``HamiCluster``: one backend on the embedded local cluster, every hami part in the test's process.

It is what the kit's ``hami_cluster`` fixture starts: the API server emulator, the kube-scheduler
stand-in and one simulated kubelet per node (:mod:`hami_core.localcluster`); hami's scheduler
(extender and admission webhook over HTTPS, as the chart deploys it) built around the backend
object under test; and that backend's device plugin on every node, serving the kubelet over gRPC.
A pod created through :func:`run_pod` goes API server -> webhook -> kube-scheduler ->
extender filter and bind -> kubelet -> device plugin ``Allocate`` -> ``Running``, so a backend that
passes here speaks every wire protocol hami's processes do. Nothing is a separate process, which
keeps start-up around a second and lets the backend run on its fakes (no hardware, no install).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import types
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from hami_core.backend import DeviceBackend
from hami_core.config import HamiConfig
from hami_core.deviceplugin.app import DevicePlugin
from hami_core.deviceplugin.app import Timings
from hami_core.devices import ContainerAllocation
from hami_core.devices import DeviceSpec
from hami_core.devices import Mount
from hami_core.errors import HamiError
from hami_core.hookspecs import hookimpl
from hami_core.kube import objects
from hami_core.kube.client import KubeClient
from hami_core.kube.client import RealKubeClient
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.stack import free_port
from hami_core.localcluster.stack import kube_scheduler_configuration
from hami_core.localcluster.stack import write_private
from hami_core.plugins import Backends
from hami_core.plugins import load_backends
from hami_core.scheduler import scoring
from hami_core.scheduler.admission_view import AdmissionView
from hami_core.scheduler.app import SchedulerApp
from hami_core.scheduler.app import build_scheduler
from hami_core.scheduler.policies.registry import PlacementPolicies
from hami_core.webhook import certs
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.registration import webhook_configuration
from hami_core.webhook.server import AdmissionHandler
from hami_core.webhook.tls import ReloadingCertificate

#: Device-plugin loops for tests: the kubelet socket is looked at every 20 ms, health twice a second.
_TIMINGS = Timings(
    register_interval=30.0, retry_interval=0.05, health_interval=0.5, kubelet_poll_interval=0.02
)
_WEBHOOK = "hami-webhook"


class PipelineError(AssertionError):
    """A pod did not reach ``Running``; the message carries its status and the namespace's events.

    An ``AssertionError``, so pytest reports it as a test failure rather than an error in the kit.
    """


class ClusterStartError(HamiError):
    """The cluster did not come up: a part failed to start or the devices never registered."""


@attrs.frozen
class PodRun:
    """What the pipeline made of one pod.

    Args:
        pod: the pod as the API server has it once ``Running``.
        node: the node it was bound to.
        allocations: per container, what the kubelet received from the device plugin's ``Allocate``.
    """

    pod: objects.Pod = attrs.field(hash=False)
    node: str
    allocations: Mapping[str, ContainerAllocation] = attrs.field(hash=False)

    def env(self, container: str = "main") -> Mapping[str, str]:
        """The environment ``Allocate`` gave ``container`` (empty when it got no device)."""
        found = self.allocations.get(container)
        return found.envs if found is not None else {}

    @property
    def annotations(self) -> Mapping[str, str]:
        """The pod's annotations (the scheduler's device annotations among them)."""
        return self.pod["metadata"].get("annotations") or {}


class _Given:
    """A plugin registering one already-built backend, so the scheduler uses the object under test."""

    def __init__(self, backend: DeviceBackend) -> None:
        self._backend = backend

    @hookimpl
    def hami_register_backends(self, config: HamiConfig) -> list[DeviceBackend]:
        return [self._backend]


def _allocation(record: Mapping[str, Any]) -> ContainerAllocation:
    """A kubelet record (``localcluster.hami.io/allocations``) back as the contract's value type."""
    return ContainerAllocation(
        envs=dict(record.get("envs") or {}),
        mounts=tuple(
            Mount(m["containerPath"], m["hostPath"], bool(m.get("readOnly")))
            for m in record.get("mounts") or []
        ),
        devices=tuple(
            DeviceSpec(d["containerPath"], d["hostPath"], d.get("permissions", ""))
            for d in record.get("devices") or []
        ),
        annotations=dict(record.get("annotations") or {}),
    )


def running(pod: objects.Pod) -> bool:
    """Whether the kubelet has started ``pod``."""
    return pod.get("status", {}).get("phase") == "Running"


def settled_unschedulable(pod: objects.Pod) -> bool:
    """Whether kube-scheduler reported ``pod`` unschedulable (the extender refused every node)."""
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions)


class HamiCluster:
    """A local cluster running hami with ``backend`` on every node.

    Args:
        backend: the backend object under test; the scheduler and every device plugin use it.
        nodes: how many nodes (``node-0`` ...).
        config: scheduler settings (its ``backends`` section is ignored: ``backend`` is the only one).
        workdir: where sockets, kubeconfig and certificates go; by default a fresh short folder
            under the system temp dir (unix socket paths must stay under 108 bytes), removed on stop.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        backend: DeviceBackend,
        *,
        nodes: int = 1,
        config: HamiConfig | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.backend = backend
        base = config if config is not None else HamiConfig()
        self.config = attrs.evolve(base, sections=types.MappingProxyType({}))
        self._own_workdir = workdir is None
        self.workdir = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="hami-"))
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.cluster = LocalCluster(
            nodes,
            self.workdir,
            scheduler_config=kube_scheduler_configuration(
                self.config.scheduler.scheduler_name, self.url, list(backend.resource_names.all())
            ),
        )
        self.plugins: dict[str, DevicePlugin] = {}
        self.scheduler: SchedulerApp | None = None
        self._resources = ExitStack()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> HamiCluster:
        """Start the cluster, the scheduler and the device plugins; return once the devices are allocatable.

        Raises:
            ClusterStartError: the devices did not register within ``timeout`` seconds.
        """
        try:
            self.cluster.start()
            self._resources.callback(self.cluster.stop)
            self._start_scheduler(timeout)
            for node in self.cluster.node_names:
                client = self._resources.enter_context(self.cluster.client())
                plugin = DevicePlugin(
                    self.backend, node, self.cluster.plugin_dir(node), client, timings=_TIMINGS
                )
                plugin.start()
                self._resources.callback(plugin.stop)
                self.plugins[node] = plugin
            self._wait_registered(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything started, in reverse order; idempotent."""
        self._resources.close()
        self.plugins = {}
        self.scheduler = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> HamiCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def kube(self) -> RealKubeClient:
        """An API client of the cluster (the official wire protocol, through the emulator)."""
        return self.cluster.kube

    @property
    def node_names(self) -> list[str]:
        return self.cluster.node_names

    # ------------------------------------------------------------------ pods

    def run_pod(self, pod: objects.Pod, *, namespace: str = "default", timeout: float = 60.0) -> PodRun:
        """:func:`run_pod` on this cluster."""
        return run_pod(self.kube, pod, namespace=namespace, timeout=timeout)

    def wait_pod(
        self, namespace: str, name: str, done: Callable[[objects.Pod], bool], *, timeout: float = 60.0
    ) -> objects.Pod:
        """:func:`wait_pod` on this cluster."""
        return wait_pod(self.kube, namespace, name, done, timeout=timeout)

    # ------------------------------------------------------------------ steps

    def _start_scheduler(self, timeout: float) -> None:
        bundle = certs.create_bundle(
            certs.ServingIdentity(dns_names=("localhost",), ip_addresses=("127.0.0.1",)), certs.utc_now()
        )
        tls = self.workdir / "tls"
        tls.mkdir(mode=0o700, exist_ok=True)
        (tls / "tls.crt").write_bytes(bundle.serving.cert_pem)
        write_private(tls / "tls.key", bundle.serving.key_pem)
        backends = load_backends(
            self.config, plugins=[_Given(self.backend), scoring.BuiltinPolicies(), PlacementPolicies()]
        )
        settings = self.config.scheduler

        def admission(loaded: Backends, view: AdmissionView) -> AdmissionHandler:
            policies = [name for name, policy in loaded.scoring_policies.items() if policy.kind == "node"]
            return AdmissionHandler(loaded, WebhookSettings.from_config(settings, policies), view, quota=view)

        client = self._resources.enter_context(self.cluster.client())
        self.scheduler = build_scheduler(
            self.config,
            client,
            backends=backends,
            bind=f"127.0.0.1:{self.port}",
            metrics_bind="",
            leader_election=False,
            admission=admission,
            tls=ReloadingCertificate(tls / "tls.crt", tls / "tls.key"),
        ).start(sync_timeout=timeout)
        self._resources.callback(self.scheduler.stop)
        self.kube.create_mutating_webhook_configuration(
            webhook_configuration(
                _WEBHOOK, url=f"{self.url}/webhook", ca_bundle=bundle.ca.cert_pem, failure_policy="Fail"
            )
        )

    def _wait_registered(self, deadline: float) -> None:
        """Follow node events until every node has the backend's devices registered and allocatable."""
        waiting = set(self.cluster.node_names)
        for node in _node_states(self.kube, deadline):
            if self._registered(node):
                waiting.discard(node["metadata"]["name"])
            if not waiting:
                self._wait_scheduler_sees_devices(deadline)
                return
        raise ClusterStartError(
            f"{self.backend.name} devices did not register on {', '.join(sorted(waiting))} in time"
        )

    def _wait_scheduler_sees_devices(self, deadline: float) -> None:
        """Until the scheduler's cache holds every node's devices, so the first pod is not refused
        for a node registration its watch has not delivered yet (the cache has no event to wait on)."""
        assert self.scheduler is not None
        cache = self.scheduler.cache
        while True:
            views = [cache.view(node) for node in self.cluster.node_names]
            if all(view is not None and view.all_devices() for view in views):
                return
            if time.monotonic() > deadline:
                raise ClusterStartError(f"the scheduler did not see the {self.backend.name} devices in time")
            time.sleep(0.02)

    def _registered(self, node: objects.Node) -> bool:
        annotations = node["metadata"].get("annotations") or {}
        count = node.get("status", {}).get("allocatable", {}).get(self.backend.resource_names.count, "0")
        return self.backend.keys.register in annotations and count not in ("", "0")


def run_pod(
    kube: KubeClient, pod: objects.Pod, *, namespace: str = "default", timeout: float = 60.0
) -> PodRun:
    """Create ``pod`` and wait until it runs; return where it went and what ``Allocate`` gave it.

    Works on any local cluster whose kubelets record allocations (``HamiCluster``, or hami deployed
    as processes by ``hami local-cluster up --hami``).

    Args:
        kube: a client of the cluster.
        pod: the pod to create, e.g. from :func:`hami_core.testing.make_pod`; ``schedulerName`` is
            left to the webhook, as for a user's pod.
        namespace: where to create it.
        timeout: seconds to wait for ``Running``.

    Raises:
        PipelineError: the pod did not run: unschedulable, failed, or still pending at the
            deadline; the message has its status and the pod's events.
    """
    created = kube.create_pod(namespace, pod)
    name = created["metadata"]["name"]
    final = wait_pod(kube, namespace, name, lambda p: running(p) or _failed(p), timeout=timeout)
    if not running(final):
        raise PipelineError(_describe(kube, namespace, final, "did not run"))
    raw = final["metadata"].get("annotations", {}).get(ALLOCATIONS_ANNOTATION, "{}")
    records: dict[str, dict[str, Any]] = json.loads(raw)
    return PodRun(
        pod=final,
        node=final["spec"].get("nodeName", ""),
        allocations={container: _allocation(record) for container, record in records.items()},
    )


def wait_pod(
    kube: KubeClient, namespace: str, name: str, done: Callable[[objects.Pod], bool], *, timeout: float = 60.0
) -> objects.Pod:
    """The pod once ``done(pod)`` holds, following its watch events.

    Raises:
        PipelineError: ``done`` did not hold within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    for current in _pod_states(kube, namespace, name, deadline):
        if done(current):
            return current
    raise PipelineError(
        _describe(kube, namespace, kube.get_pod(namespace, name), f"not done after {timeout} s")
    )


def _describe(kube: KubeClient, namespace: str, pod: objects.Pod, what: str) -> str:
    name = pod["metadata"]["name"]
    status = pod.get("status", {})
    events = [
        f"  {event.get('reason', '')}: {event.get('message', '')}"
        for event in kube.list_events(namespace)["items"]
        if event.get("involvedObject", {}).get("name") == name
    ]
    return "\n".join(
        [
            f"pod {namespace}/{name} {what}: phase {status.get('phase')!r}",
            f"reason: {status.get('reason', '')} {status.get('message', '')}".rstrip(),
            f"conditions: {json.dumps(status.get('conditions') or [])}",
            f"annotations: {json.dumps(pod['metadata'].get('annotations') or {}, sort_keys=True)}",
            "events:",
            *(events or ["  none"]),
        ]
    )


def _failed(pod: objects.Pod) -> bool:
    return pod.get("status", {}).get("phase") == "Failed" or settled_unschedulable(pod)


def _pod_states(kube: KubeClient, namespace: str, name: str, deadline: float) -> Iterator[objects.Pod]:
    """The pod now, then after each change, until ``deadline`` (list-then-watch, as informers do)."""
    selector = f"metadata.name={name}"
    listing = kube.list_pods(namespace, field_selector=selector)
    yield from listing["items"]
    version = listing["metadata"].get("resourceVersion", "")
    while (left := deadline - time.monotonic()) > 0:
        watch = kube.watch_pods(
            namespace, field_selector=selector, resource_version=version, timeout_seconds=max(1, int(left))
        )
        try:
            for event_type, pod in watch:
                version = pod["metadata"].get("resourceVersion", version)
                if event_type in ("ADDED", "MODIFIED"):
                    yield pod
                if time.monotonic() > deadline:
                    return
        finally:
            watch.stop()


def _node_states(kube: KubeClient, deadline: float) -> Iterator[objects.Node]:
    """Every node now, then each node after a change, until ``deadline``."""
    listing = kube.list_nodes()
    yield from listing["items"]
    version = listing["metadata"].get("resourceVersion", "")
    while (left := deadline - time.monotonic()) > 0:
        watch = kube.watch_nodes(resource_version=version, timeout_seconds=max(1, int(left)))
        try:
            for event_type, node in watch:
                version = node["metadata"].get("resourceVersion", version)
                if event_type in ("ADDED", "MODIFIED"):
                    yield node
        finally:
            watch.stop()
