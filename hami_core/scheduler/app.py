"""Composition of the scheduler process: :func:`build_scheduler` wires the parts, :func:`run` serves.

The parts: backends and scoring policies from the plugins (the built-in node policies registered
through the same hook as a plugin's), the cache and what feeds it (:mod:`~hami_core.scheduler.watching`),
filtering and binding, prompt retries, events, leader election, metrics, and the HTTP(S) server that
also serves the admission webhook. One ``dispatch`` callback routes every cache change to whoever acts
on it (events for warnings, lock waiters, retries, handshake writes). Nothing here decides anything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from wsgiref.simple_server import WSGIServer

import attrs
from prometheus_client import start_http_server

from hami_core import codec
from hami_core.config import HamiConfig
from hami_core.errors import ConfigError
from hami_core.errors import KubeError
from hami_core.kube.client import KubeClient
from hami_core.kube.nodelock import NodeLock
from hami_core.plugins import Backends
from hami_core.plugins import load_backends
from hami_core.scheduler import scoring
from hami_core.scheduler.admission_view import AdmissionView
from hami_core.scheduler.binding import DEFAULT_LOCK_WAIT
from hami_core.scheduler.binding import Binding
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.choosing import uses_shared_fit
from hami_core.scheduler.extender import Extender
from hami_core.scheduler.filtering import Filtering
from hami_core.scheduler.leader import LeaderElector
from hami_core.scheduler.metrics import SchedulerMetrics
from hami_core.scheduler.policies.registry import PlacementPolicies
from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.recording import ObjectRef
from hami_core.scheduler.retrying import Retrier
from hami_core.scheduler.retrying import RetryBook
from hami_core.scheduler.server import AdmissionHandler
from hami_core.scheduler.server import ExtenderServer
from hami_core.scheduler.server import TlsContextProvider
from hami_core.scheduler.server import split_bind
from hami_core.scheduler.watching import RESYNC_SECONDS
from hami_core.scheduler.watching import ClusterWatch

_log = logging.getLogger(__name__)

#: Builds the webhook's handler once the cache exists (its read-only view answers capacity and quota questions).
AdmissionFactory = Callable[[Backends, AdmissionView], AdmissionHandler]


def _identity() -> str:
    """This replica's holder identity: ``$POD_NAME``, else the host name plus a random suffix."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@attrs.define(eq=False)
class SchedulerApp:
    """A built scheduler: every part, plus :meth:`start` and :meth:`stop`."""

    config: HamiConfig
    kube: KubeClient
    backends: Backends
    cache: ClusterCache
    watch: ClusterWatch
    filtering: Filtering
    binding: Binding
    retrier: Retrier
    recorder: EventRecorder
    metrics: SchedulerMetrics
    extender: Extender
    leader: LeaderElector | None
    server: ExtenderServer | None
    metrics_bind: str = ""
    _metrics_server: WSGIServer | None = None
    _metrics_thread: threading.Thread | None = None
    _started: bool = False

    def is_leader(self) -> bool:
        """Whether this replica serves filter and bind (always, without leader election)."""
        return self.leader is None or self.leader.is_leader

    def start(self, *, sync_timeout: float | None = 60.0) -> SchedulerApp:
        """Start the watches, wait for their first lists, then election, retries and servers.

        Raises:
            KubeError: the cache did not sync within ``sync_timeout`` seconds.
        """
        self._started = True
        self.recorder.start()
        self.watch.start()
        if not self.watch.wait_synced(sync_timeout):
            self.stop()
            raise KubeError(
                f"the scheduler cache did not sync within {sync_timeout}s; is the API server reachable?"
            )
        self.retrier.start()
        if self.leader is not None:
            self.leader.start()
        if self.server is not None:
            self.server.start()
        if self.metrics_bind:
            host, port = split_bind(self.metrics_bind, 9395)
            self._metrics_server, self._metrics_thread = start_http_server(
                port, host, registry=self.metrics.registry
            )
        return self

    def stop(self) -> None:
        """Stop serving, step down (releasing the lease), stop the watches; idempotent."""
        if not self._started:
            return
        self._started = False
        if self.server is not None:
            self.server.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            if self._metrics_thread is not None:
                self._metrics_thread.join()
            self._metrics_server = None
        if self.leader is not None:
            self.leader.stop()
        self.retrier.stop()
        self.watch.stop()
        self.recorder.stop()


def build_scheduler(
    config: HamiConfig,
    kube: KubeClient,
    *,
    backends: Backends | None = None,
    bind: str | None = None,
    serve: bool = True,
    metrics_bind: str | None = None,
    leader_election: bool | None = None,
    identity: str | None = None,
    lease_namespace: str | None = None,
    lock_expiry: float | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    admission: AdmissionFactory | None = None,
    tls: TlsContextProvider | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    resync: float = RESYNC_SECONDS,
) -> SchedulerApp:
    """Wire a scheduler from ``config`` around ``kube``; nothing runs until :meth:`SchedulerApp.start`.

    Args:
        config: the hami config (enabled backends, ``scheduler:`` section).
        kube: the API client.
        backends: already loaded backends; by default loaded from ``config`` with the built-in policies.
        bind: ``host:port`` of the HTTP(S) server; defaults to ``scheduler.http_bind``.
        serve: build the HTTP(S) server (tests and the benchmark call the verbs directly).
        metrics_bind: ``host:port`` of a second, metrics-only endpoint (HAMi's ``:9395``); empty for none,
            ``None`` for ``scheduler.metrics_bind``. ``/metrics`` is always on the main server too.
        leader_election: run leader election; defaults to ``scheduler.leader_elect``.
        identity: this replica's lease holder name; defaults to ``$POD_NAME`` or the host name.
        lease_namespace: the Lease's namespace; defaults to the config, then ``$POD_NAMESPACE``,
            then ``kube-system``.
        lock_expiry: seconds after which a node lock is stale; defaults to ``scheduler.node_lock_timeout``.
        lock_wait: seconds a bind waits for another pod's node lock.
        admission: builds the ``/webhook`` handler; ``None`` serves no webhook.
        tls: serve HTTPS with this provider's (reloading) context; unless it verifies client
            certificates, the server listens on loopback only.
        clock: wall-clock time (annotations, handshakes, node lock, lease).
        monotonic: monotonic seconds (lock waits, lease expiry, retry pacing).
        resync: seconds between housekeeping rounds.

    Raises:
        BackendLoadError: an enabled backend cannot be loaded, or two policies share a name.
        ConfigError: the configured node policy is not a registered node policy.
    """
    settings = config.scheduler
    if backends is None:
        backends = load_backends(config, plugins=[scoring.BuiltinPolicies(), PlacementPolicies()])
    node_policies = scoring.node_policies(backends.scoring_policies)
    if settings.node_scheduler_policy not in node_policies:
        raise ConfigError(
            f"config {config.source}: scheduler.node_scheduler_policy: unknown policy "
            f"{settings.node_scheduler_policy!r} (known: {', '.join(sorted(node_policies))})"
        )
    listed = list(backends)
    cache = ClusterCache(
        listed,
        node_policies,
        node_selector=settings.node_label_selector,
        active=[settings.node_scheduler_policy],
    )
    identity = identity or _identity()
    elect = settings.leader_elect if leader_election is None else leader_election
    recorder = EventRecorder(kube, clock=clock)
    leader: LeaderElector | None = None

    def is_leader() -> bool:
        return leader is None or leader.is_leader

    metrics = SchedulerMetrics(cache, is_leader=is_leader)
    by_name = dict(backends.by_name)
    book = RetryBook({name: uses_shared_fit(backend) for name, backend in by_name.items()})
    retrier = Retrier(
        kube, cache, book, is_leader=is_leader, clock=monotonic, wall=clock, on_touch=metrics.retries.inc
    )

    def dispatch(changes: Changes) -> None:
        if not changes:
            return
        for warning in changes.warnings:
            ref = ObjectRef(
                kind=warning.kind, name=warning.name, namespace=warning.namespace, uid=warning.uid
            )
            recorder.record(ref, "Warning", warning.reason, warning.message)
            metrics.cache_warnings.labels(warning.kind, warning.reason).inc(warning.items)
        if changes.lock_nodes:
            binding.lock_changed(changes.lock_nodes)
        retrier.notify(changes)
        if changes.handshakes and is_leader():
            watch.request_handshakes(changes.handshakes)

    watch = ClusterWatch(
        kube,
        cache,
        listed,
        dispatch,
        is_leader=is_leader,
        node_selector=settings.node_label_selector,
        clock=clock,
        resync=resync,
    )
    lock = NodeLock(
        kube, expiry=settings.node_lock_timeout if lock_expiry is None else lock_expiry, clock=clock
    )
    binding = Binding(
        kube,
        cache,
        lock,
        by_name,
        clock=clock,
        monotonic=monotonic,
        lock_wait=lock_wait,
        recorder=recorder,
        on_freed=dispatch,
        observe_lock_wait=metrics.lock_wait.observe,
    )
    filtering = Filtering(
        cache,
        by_name,
        backends.scoring_policies,
        kube,
        config=settings,
        clock=clock,
        recorder=recorder,
        retrier=retrier,
        observe_phase=metrics.observe_phase,
    )
    if elect:
        namespace = (
            lease_namespace
            or settings.leader_elect_resource_namespace
            or os.environ.get("POD_NAMESPACE")
            or "kube-system"
        )

        def on_change(leading: bool) -> None:
            _label_role(kube, leading)
            if leading:
                watch.wake()

        leader = LeaderElector(
            kube,
            namespace=namespace,
            name=settings.leader_elect_resource_name,
            identity=identity,
            monotonic=monotonic,
            wall=clock,
            on_change=on_change,
        )
    extender = Extender(
        filtering,
        binding,
        cache,
        metrics,
        synced=lambda: watch.synced,
        wait_synced=watch.wait_synced,
        leading=is_leader,
        identity=identity,
        default_node_policy=settings.node_scheduler_policy,
    )
    server = None
    if serve:
        host, port = split_bind(bind or settings.http_bind, 443 if tls is not None else 80)
        if tls is None or not tls.verifies_clients:
            host = _loopback(host, port)
        server = ExtenderServer(
            extender,
            host=host,
            port=port,
            registry=metrics.registry,
            admission=admission(backends, AdmissionView(cache)) if admission is not None else None,
            tls=tls,
            observe_phase=metrics.observe_phase,
        )
    return SchedulerApp(
        config=config,
        kube=kube,
        backends=backends,
        cache=cache,
        watch=watch,
        filtering=filtering,
        binding=binding,
        retrier=retrier,
        recorder=recorder,
        metrics=metrics,
        extender=extender,
        leader=leader,
        server=server,
        metrics_bind=settings.metrics_bind if metrics_bind is None else metrics_bind,
    )


#: Hosts that only this machine reaches.
_LOOPBACK_HOSTS = frozenset({"localhost", "::1"})


def _loopback(host: str, port: int) -> str:
    """The host to serve an unauthenticated extender on: ``host`` when it is loopback, else loopback.

    Without client certificates anyone who reaches ``/bind`` can drive it, so it is reachable from
    this machine (the kube-scheduler container beside it) only; logged as a WARNING either way.
    """
    narrowed = (
        host
        if host in _LOOPBACK_HOSTS or host.startswith("127.")
        else ("::1" if ":" in host else "127.0.0.1")
    )
    _log.warning(
        "the extender verbs are not authenticated (no client CA: scheduler.client_ca_file or --client-ca), "
        "so the server listens on loopback only: %s:%d%s (docs/security.md)",
        narrowed,
        port,
        "" if narrowed == host else f" instead of {host or '*'}:{port}",
    )
    return narrowed


def _label_role(kube: KubeClient, leading: bool) -> None:
    """Label this replica's pod ``hami.io/scheduler-role`` (the chart's Service selects the leader)."""
    name, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if not name or not namespace:
        return
    role = codec.SCHEDULER_ROLE_LEADER if leading else codec.SCHEDULER_ROLE_FOLLOWER
    try:
        kube.patch_pod(namespace, name, {"metadata": {"labels": {codec.SCHEDULER_ROLE_LABEL: role}}})
    except KubeError as err:
        _log.warning("cannot label pod %s/%s as %s: %s", namespace, name, role, err)


def run(app: SchedulerApp, stop: threading.Event) -> None:
    """Start ``app`` and serve until ``stop`` is set, then stop cleanly."""
    app.start()
    try:
        if app.server is not None:
            _log.info("hami scheduler serving on %s", app.server.url)
        stop.wait()
    finally:
        app.stop()
