"""The scheduler's view of the cluster: node devices, what pods hold on them, and reservations.

A state machine fed by watch events (:meth:`ClusterCache.apply_node`, :meth:`ClusterCache.apply_pod`,
the ``replace_*`` relists) and by filtering (:meth:`ClusterCache.reserve`, :meth:`ClusterCache.forget`).
It does no I/O and starts no thread; :mod:`hami_core.scheduler.watching` feeds it and acts on the
:class:`Changes` each call returns (events to record, handshakes to write, pods to retry, lock
waiters to wake). One lock guards the state; readers get immutable :class:`NodeView` snapshots, so
filtering fits nodes without holding it.

What counts, as in HAMi (``specs/hami-wire.md`` 3.2, 3.9):

- **Devices** come from each enabled backend's register annotation on nodes matching the configured
  label selector; an unreadable value keeps the last good one and raises a warning once.
- **Health** per node and backend follows the v2.10 handshake rule: any value other than
  ``Requesting_<time>`` asks for a fresh ``Requesting_<now>`` (written by the leader) and counts as
  healthy; a ``Requesting`` older than 60 s is healthy only while the node's allocatable count of the
  backend's resource is above zero. Unlike HAMi the scheduler does not delete the handshake of an
  unhealthy node, which would hand the node a fresh 60 s of life every cleanup cycle.
- **Usage** comes from the ``*-devices-allocated`` annotation of every non-terminated pod carrying
  ``hami.io/vgpu-node``, collapsed per device (init containers max'ed, app containers added; app
  containers only once every init container has exited 0).
- **Reservations**: a filter books the devices it chose here before it patches the pod, so concurrent
  filters see them at once. A reservation wins over what the watch last showed for the pod until the
  watch shows the same allocation (then it is plain usage) or it is dropped. Each node view carries a
  generation; a reservation made against an older generation is refused, which is how concurrent
  filters of the same node are kept from booking the same memory, cores or slots twice. A pod
  forgotten for a re-filter does not get its old choice back from later events that leave its
  annotations unchanged.
- **Rankings**: per node policy, every node sorted by its score before any new pod (kept current
  node by node), and per backend the room rankings of :data:`~hami_core.scheduler.capacity.ROOM_TIERS`
  (the nodes where devices can still give a given share), which filtering walks instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from typing import Literal
from typing import cast

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import DeviceBooking
from hami_core.backend import DeviceBackend
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceUsage
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.hookspecs import ScoringPolicy
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.quantity import parse_quantity
from hami_core.scheduler import quota
from hami_core.scheduler.capacity import ROOM_TIERS
from hami_core.scheduler.capacity import BackendSummary
from hami_core.scheduler.capacity import RoomTier
from hami_core.scheduler.quota import QuotaLimits
from hami_core.scheduler.quota import Usage
from hami_core.scheduler.scoring import Ranking

#: How long a ``Requesting_<time>`` handshake proves a node alive on its own (HAMi's 60 s rule).
HANDSHAKE_GRACE_SECONDS = 60.0
_TERMINAL = ("Succeeded", "Failed")

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ReserveOutcome = Literal["reserved", "stale", "quota"]


# --- value types ----------------------------------------------------------------------------------


@attrs.frozen
class PodAllocation:
    """What one pod holds (or is about to hold) on one node, per backend, collapsed per device."""

    namespace: str
    name: str
    node: str
    bookings: Mapping[str, tuple[DeviceBooking, ...]] = attrs.field(factory=dict, hash=False)

    def usage(self) -> dict[str, Usage]:
        return quota.pod_usage(self.bookings)


_NO_SUMMARY = BackendSummary()


@attrs.frozen
class NodeView:
    """An immutable snapshot of one node as filtering sees it.

    Args:
        name: the node's name.
        generation: bumped on every change of the node's devices or usage.
        annotations: the node's annotations (cordon list, pair scores, vendor keys).
        devices: per healthy backend, its devices with the usage of every pod and reservation.
        summaries: per backend in ``devices``, the pruning aggregates.
    """

    name: str
    generation: int
    annotations: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    devices: Mapping[str, tuple[DeviceUsage, ...]] = attrs.field(factory=dict, hash=False)
    summaries: Mapping[str, BackendSummary] = attrs.field(factory=dict, hash=False)

    def all_devices(self) -> list[DeviceUsage]:
        """Every device of every backend (what the node score is computed on)."""
        return [device for devices in self.devices.values() for device in devices]

    def summary(self, backend: str) -> BackendSummary:
        return self.summaries.get(backend, _NO_SUMMARY)


@attrs.frozen
class PodState:
    """What the cache remembers of every pod, for lock-holder checks and retries."""

    uid: str
    namespace: str
    name: str
    node_name: str = ""
    phase: str = ""
    bind_phase: str = ""
    deleting: bool = False

    @property
    def terminal(self) -> bool:
        return self.phase in _TERMINAL

    @property
    def pending(self) -> bool:
        """Not yet bound, not terminated, not being deleted."""
        return not self.node_name and not self.terminal and not self.deleting


@attrs.frozen
class CacheWarning:
    """A malformed annotation the cache skipped; becomes a Warning event on the object."""

    kind: Literal["Node", "Pod"]
    name: str
    reason: str
    message: str
    namespace: str = ""
    uid: str = ""


@attrs.frozen
class Changes:
    """What a cache call changed that someone outside must act on.

    Args:
        freed_nodes: nodes where capacity grew (a pod ended, a reservation was dropped, devices
            appeared or turned healthy): pending pods rejected for capacity may fit now.
        freed_namespaces: namespaces whose device-quota use shrank.
        lock_nodes: nodes whose ``hami.io/mutex.lock`` changed or that were deleted.
        handshakes: (node, backend) pairs that need a ``Requesting_<now>`` handshake.
        settled_pods: ``namespace/name`` of pods that were bound, finished or deleted.
        warnings: malformed annotations skipped.
    """

    freed_nodes: frozenset[str] = frozenset()
    freed_namespaces: frozenset[str] = frozenset()
    lock_nodes: frozenset[str] = frozenset()
    handshakes: tuple[tuple[str, str], ...] = ()
    settled_pods: frozenset[str] = frozenset()
    warnings: tuple[CacheWarning, ...] = ()

    def __or__(self, other: Changes) -> Changes:
        return Changes(
            freed_nodes=self.freed_nodes | other.freed_nodes,
            freed_namespaces=self.freed_namespaces | other.freed_namespaces,
            lock_nodes=self.lock_nodes | other.lock_nodes,
            handshakes=self.handshakes + other.handshakes,
            settled_pods=self.settled_pods | other.settled_pods,
            warnings=self.warnings + other.warnings,
        )

    def __bool__(self) -> bool:
        return bool(
            self.freed_nodes
            or self.freed_namespaces
            or self.lock_nodes
            or self.handshakes
            or self.settled_pods
            or self.warnings
        )


NO_CHANGES = Changes()


class _Gather:
    """Accumulates many :class:`Changes` in linear time (merging frozen ones pairwise is quadratic)."""

    def __init__(self) -> None:
        self.freed_nodes: set[str] = set()
        self.freed_namespaces: set[str] = set()
        self.lock_nodes: set[str] = set()
        self.handshakes: list[tuple[str, str]] = []
        self.settled_pods: set[str] = set()
        self.warnings: list[CacheWarning] = []

    def add(self, changes: Changes) -> None:
        if not changes:
            return
        self.freed_nodes |= changes.freed_nodes
        self.freed_namespaces |= changes.freed_namespaces
        self.lock_nodes |= changes.lock_nodes
        self.handshakes.extend(changes.handshakes)
        self.settled_pods |= changes.settled_pods
        self.warnings.extend(changes.warnings)

    def result(self) -> Changes:
        return Changes(
            freed_nodes=frozenset(self.freed_nodes),
            freed_namespaces=frozenset(self.freed_namespaces),
            lock_nodes=frozenset(self.lock_nodes),
            handshakes=tuple(self.handshakes),
            settled_pods=frozenset(self.settled_pods),
            warnings=tuple(self.warnings),
        )


@attrs.frozen
class HandshakeVerdict:
    """The handshake rule's answer for one node and backend."""

    healthy: bool
    request: bool = False


def assess_handshake(
    value: str | None, allocatable: int, now: datetime, grace: float = HANDSHAKE_GRACE_SECONDS
) -> HandshakeVerdict:
    """HAMi v2.10's ``CheckHealth`` on one handshake value, without its cleanup flapping.

    Args:
        value: the handshake annotation, ``None`` when absent.
        allocatable: the node's allocatable count of the backend's count resource.
        now: the current time (aware).
        grace: seconds a ``Requesting_`` value keeps the node healthy on its own.
    """
    handshake = codec.parse_handshake(value, tz=now.tzinfo)
    if handshake.state != "Requesting":
        return HandshakeVerdict(healthy=True, request=True)
    if handshake.time is None or handshake.time + timedelta(seconds=grace) > now:
        return HandshakeVerdict(healthy=True)
    return HandshakeVerdict(healthy=allocatable > 0)


# --- internal state -------------------------------------------------------------------------------


@attrs.define
class _Node:
    name: str
    resource_version: str = ""
    annotations: dict[str, str] = attrs.field(factory=dict)
    allocatable: dict[str, str] = attrs.field(factory=dict)
    selected: bool = True
    infos: dict[str, tuple[DeviceInfo, ...]] = attrs.field(factory=dict)
    registered: dict[str, str] = attrs.field(factory=dict)
    warned: dict[str, str] = attrs.field(factory=dict)
    healthy: dict[str, bool] = attrs.field(factory=dict)
    peak_allocatable: dict[str, int] = attrs.field(factory=dict)
    built: tuple[object, ...] | None = None

    def signature(self, backends: Sequence[DeviceBackend]) -> tuple[object, ...]:
        """What the node's devices are built from: selection, and each healthy backend's devices."""
        return (
            self.selected,
            tuple((b.name, self.infos.get(b.name)) for b in backends if self.healthy.get(b.name)),
        )


@attrs.define
class _Record:
    observed: PodAllocation | None = None
    reserved: PodAllocation | None = None

    @property
    def effective(self) -> PodAllocation | None:
        return self.reserved if self.reserved is not None else self.observed


def _matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _count(raw: object) -> int:
    if raw is None:
        return 0
    try:
        return max(0, int(parse_quantity(raw)))
    except BackendError:
        return 0


def _init_done(pod: Pod) -> bool:
    """Every init container terminated with exit code 0 (HAMi then frees their share)."""
    spec = pod.get("spec") or {}
    init = spec.get("initContainers") or []
    if not init:
        return False
    statuses = cast(list[Mapping[str, object]], (pod.get("status") or {}).get("initContainerStatuses") or [])
    if len(statuses) < len(init):
        return False
    for status in statuses:
        state = status.get("state")
        terminated = state.get("terminated") if isinstance(state, Mapping) else None
        if not isinstance(terminated, Mapping) or terminated.get("exitCode") != 0:
            return False
    return True


def decode_allocation(pod: Pod, backends: Sequence[DeviceBackend]) -> PodAllocation | None:
    """What a pod's annotations say it holds; ``None`` without ``hami.io/vgpu-node`` or devices.

    Raises:
        CodecError: a ``*-devices-allocated`` value is not in HAMi's format.
    """
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    node = annotations.get(codec.VGPU_NODE)
    if not node:
        return None
    n_init = len((pod.get("spec") or {}).get("initContainers") or [])
    init_done = n_init > 0 and _init_done(pod)
    bookings: dict[str, tuple[DeviceBooking, ...]] = {}
    for backend in backends:
        value = annotations.get(backend.keys.allocated)
        if not value:
            continue
        try:
            containers = [tuple(devices) for devices in codec.decode_pod_devices(value)]
        except CodecError as err:
            raise CodecError(f"{backend.keys.allocated}: {err}") from err
        if init_done:
            collapsed = allocation.collapse_usage(containers[n_init:], 0)
        else:
            collapsed = allocation.collapse_usage(containers, n_init)
        if collapsed:
            bookings[backend.name] = collapsed
    if not bookings:
        return None
    return PodAllocation(metadata.get("namespace", ""), metadata.get("name", ""), node, bookings)


def _raw_allocation(pod: Pod, backends: Sequence[DeviceBackend]) -> tuple[object, ...]:
    """The annotation values :func:`decode_allocation` reads, to skip events that change none."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    node = annotations.get(codec.VGPU_NODE)
    if not node:
        return ()
    init = bool((pod.get("spec") or {}).get("initContainers"))
    return (
        node,
        init and _init_done(pod),
        *(annotations.get(backend.keys.allocated) for backend in backends),
    )


def _pod_state(pod: Pod) -> PodState:
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return PodState(
        uid=metadata.get("uid", ""),
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        node_name=(pod.get("spec") or {}).get("nodeName", ""),
        phase=(pod.get("status") or {}).get("phase", ""),
        bind_phase=annotations.get(codec.BIND_PHASE, ""),
        deleting="deletionTimestamp" in metadata,
    )


def _shrinks(before: PodAllocation, after: PodAllocation) -> bool:
    """Whether ``after`` uses less of some backend's memory or cores than ``before``."""
    now = after.usage()
    return any(
        now.get(backend, Usage()).memory < used.memory or now.get(backend, Usage()).cores < used.cores
        for backend, used in before.usage().items()
    )


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class ClusterCache:
    """Nodes, devices, usage and reservations of the cluster, kept current by events.

    Args:
        backends: the loaded backends (only their devices and pod annotations are read).
        node_policies: every node policy by name; each gets a :class:`Ranking` (and its room
            rankings) from the first time it is asked for, then kept current.
        active: the policies to rank from the start (the configured default); ``None`` for all.
        node_selector: only nodes with all these labels are registered (HAMi's
            ``--node-label-selector``).
        handshake_grace: seconds a fresh ``Requesting_`` handshake proves a node alive.
    """

    def __init__(
        self,
        backends: Sequence[DeviceBackend],
        node_policies: Mapping[str, ScoringPolicy],
        *,
        node_selector: Mapping[str, str] | None = None,
        handshake_grace: float = HANDSHAKE_GRACE_SECONDS,
        active: Iterable[str] | None = None,
    ) -> None:
        self._backends = tuple(backends)
        self._selector = dict(node_selector or {})
        self._grace = handshake_grace
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._views: dict[str, NodeView] = {}
        self._generation = 0
        self._policies = dict(node_policies)
        self._rankings: dict[str, Ranking] = {}
        self._rooms: dict[tuple[str, str, RoomTier], Ranking] = {}
        for name in self._policies if active is None else active:
            self._activate(name)
        self._node_pods: dict[str, dict[str, PodAllocation]] = {}
        self._records: dict[str, _Record] = {}
        self._pods: dict[str, PodState] = {}
        self._bad_pods: dict[str, str] = {}
        self._raw: dict[str, tuple[object, ...]] = {}
        self._deferred: set[str] | None = None
        self._ns_usage: dict[str, dict[str, Usage]] = {}
        self._quotas = QuotaLimits()
        self._fleet_version = 0
        self._fleet_memo: dict[tuple[str, str], tuple[int, int | None]] = {}

    # --- node events ------------------------------------------------------------------------------

    def apply_node(self, event: EventType, node: Node, now: datetime) -> Changes:
        """Apply one node watch event; ``now`` is when it was received (aware datetime)."""
        metadata = node.get("metadata") or {}
        name = metadata.get("name", "")
        with self._lock:
            if event == "DELETED":
                return self._delete_node(name)
            return self._update_node(name, node, now)

    def replace_nodes(self, nodes: Iterable[Node], now: datetime) -> Changes:
        """Apply a full node list (after a relist): nodes not in it are deleted."""
        gather = _Gather()
        with self._lock:
            seen = set()
            for node in nodes:
                name = (node.get("metadata") or {}).get("name", "")
                seen.add(name)
                gather.add(self._update_node(name, node, now))
            for name in [name for name in self._nodes if name not in seen]:
                gather.add(self._delete_node(name))
        return gather.result()

    def _delete_node(self, name: str) -> Changes:
        if self._nodes.pop(name, None) is None:
            return NO_CHANGES
        self._views.pop(name, None)
        for ranking in [*self._rankings.values(), *self._rooms.values()]:
            ranking.remove(name)
        self._fleet_version += 1
        return Changes(lock_nodes=frozenset({name}))

    def _update_node(self, name: str, node: Node, now: datetime) -> Changes:
        metadata = node.get("metadata") or {}
        annotations = dict(metadata.get("annotations") or {})
        entry = self._nodes.get(name)
        fresh = entry is None
        if entry is None:
            entry = self._nodes[name] = _Node(name)
        old_annotations = entry.annotations
        entry.resource_version = str(metadata.get("resourceVersion", ""))
        entry.annotations = annotations
        entry.allocatable = dict((node.get("status") or {}).get("allocatable") or {})
        entry.selected = _matches(metadata.get("labels") or {}, self._selector)
        warnings = self._decode_devices(entry)
        handshakes = self._assess(entry, now)
        lock_nodes = (
            frozenset({name})
            if old_annotations.get(codec.NODE_LOCK) != annotations.get(codec.NODE_LOCK)
            else frozenset()
        )
        relevant_before = {k: v for k, v in old_annotations.items() if k != codec.NODE_LOCK}
        relevant_after = {k: v for k, v in annotations.items() if k != codec.NODE_LOCK}
        freed: frozenset[str] = frozenset()
        if fresh or relevant_before != relevant_after or entry.built != entry.signature(self._backends):
            freed = self._refresh(name)
        return Changes(freed_nodes=freed, lock_nodes=lock_nodes, handshakes=handshakes, warnings=warnings)

    def _decode_devices(self, entry: _Node) -> tuple[CacheWarning, ...]:
        warnings = []
        for backend in self._backends:
            value = entry.annotations.get(backend.keys.register)
            if value is None:
                entry.infos.pop(backend.name, None)
                entry.registered.pop(backend.name, None)
                continue
            if entry.registered.get(backend.name) == value:
                continue
            entry.registered[backend.name] = value
            try:
                entry.infos[backend.name] = tuple(backend.node_devices(entry.annotations))
            except CodecError as err:
                # HAMi keeps the last good device list when a registration does not decode.
                if entry.warned.get(backend.name) != value:
                    entry.warned[backend.name] = value
                    warnings.append(
                        CacheWarning(
                            kind="Node",
                            name=entry.name,
                            reason="InvalidDeviceRegistration",
                            message=f"{backend.keys.register} cannot be read, keeping the last good device list: {err}",
                        )
                    )
            except BackendError:
                entry.infos.pop(backend.name, None)
        return tuple(warnings)

    def _assess(self, entry: _Node, now: datetime) -> tuple[tuple[str, str], ...]:
        requests = []
        for backend in self._backends:
            if backend.name not in entry.infos or not entry.selected:
                entry.healthy.pop(backend.name, None)
                entry.peak_allocatable.pop(backend.name, None)
                continue
            count = _count(entry.allocatable.get(backend.resource_names.count))
            verdict = assess_handshake(entry.annotations.get(backend.keys.handshake), count, now, self._grace)
            peak = entry.peak_allocatable[backend.name] = max(
                entry.peak_allocatable.get(backend.name, 0), count
            )
            entry.healthy[backend.name] = backend.node_health(verdict.healthy, count, peak)
            if verdict.request:
                requests.append((entry.name, backend.name))
        return tuple(requests)

    def assess_health(self, now: datetime) -> Changes:
        """Re-apply the handshake rule to every node at ``now`` (a ``Requesting_`` ages out)."""
        gather = _Gather()
        with self._lock:
            for name, entry in self._nodes.items():
                handshakes = self._assess(entry, now)
                freed: frozenset[str] = frozenset()
                if entry.built != entry.signature(self._backends):
                    freed = self._refresh(name)
                if handshakes or freed:
                    gather.add(Changes(freed_nodes=freed, handshakes=handshakes))
        return gather.result()

    # --- pod events -------------------------------------------------------------------------------

    def apply_pod(self, event: EventType, pod: Pod) -> Changes:
        """Apply one pod watch event."""
        with self._lock:
            if event == "DELETED":
                metadata = pod.get("metadata") or {}
                key = pod_key(metadata.get("namespace", ""), metadata.get("name", ""))
                return self._delete_pod(key, metadata.get("uid", ""))
            return self._update_pod(pod)

    def replace_pods(self, pods: Iterable[Pod]) -> Changes:
        """Apply a full pod list (after a relist): pods not in it are deleted."""
        gather = _Gather()
        with self._lock:
            # Refresh each touched node once at the end, not once per pod.
            self._deferred = set()
            try:
                seen = set()
                for pod in pods:
                    metadata = pod.get("metadata") or {}
                    seen.add(pod_key(metadata.get("namespace", ""), metadata.get("name", "")))
                    gather.add(self._update_pod(pod))
                for key in [key for key in self._pods if key not in seen]:
                    gather.add(self._delete_pod(key, self._pods[key].uid))
            finally:
                deferred, self._deferred = self._deferred, None
            freed: set[str] = set()
            for name in deferred:
                freed |= self._refresh(name)
            gather.add(Changes(freed_nodes=frozenset(freed)))
        return gather.result()

    def _delete_pod(self, key: str, uid: str) -> Changes:
        state = self._pods.pop(key, None)
        uid = uid or (state.uid if state is not None else "")
        self._bad_pods.pop(uid, None)
        self._raw.pop(uid, None)
        return self._drop_record(uid) | Changes(settled_pods=frozenset({key}))

    def _update_pod(self, pod: Pod) -> Changes:
        state = _pod_state(pod)
        key = pod_key(state.namespace, state.name)
        previous = self._pods.get(key)
        reused = NO_CHANGES
        if previous is not None and previous.uid != state.uid:
            # The name was reused by a new pod: the old one is gone.
            self._raw.pop(previous.uid, None)
            reused = self._drop_record(previous.uid)
        self._pods[key] = state
        settled = frozenset({key}) if not state.pending else frozenset()
        if state.terminal:
            self._raw.pop(state.uid, None)
            return reused | self._drop_record(state.uid) | Changes(settled_pods=settled)
        raw = _raw_allocation(pod, self._backends)
        if self._raw.get(state.uid) == raw:
            # Most pod events (bind phase, status) leave the allocation as it was; and a pod whose
            # record was forgotten for a re-filter must not get its old choice back from them.
            return reused | Changes(settled_pods=settled)
        self._raw[state.uid] = raw
        warnings: tuple[CacheWarning, ...] = ()
        try:
            observed = decode_allocation(pod, self._backends)
            self._bad_pods.pop(state.uid, None)
        except CodecError as err:
            observed = None
            value = str(err)
            if self._bad_pods.get(state.uid) != value:
                self._bad_pods[state.uid] = value
                warnings = (
                    CacheWarning(
                        kind="Pod",
                        namespace=state.namespace,
                        name=state.name,
                        uid=state.uid,
                        reason="InvalidDeviceAllocation",
                        message=f"the pod's device allocation cannot be read and is not counted: {err}",
                    ),
                )
        record = self._records.get(state.uid)
        if record is None:
            if observed is None:
                return reused | Changes(settled_pods=settled, warnings=warnings)
            record = self._records[state.uid] = _Record()
        before = record.effective
        record.observed = observed
        if record.reserved is not None and observed == record.reserved:
            record.reserved = None
        after = record.effective
        if after is None:
            del self._records[state.uid]
        return (
            reused
            | self._account(state.uid, before, after)
            | Changes(settled_pods=settled, warnings=warnings)
        )

    # --- reservations -----------------------------------------------------------------------------

    def reserve(self, uid: str, booked: PodAllocation, generation: int) -> ReserveOutcome:
        """Book ``booked`` for pod ``uid`` if its node is still at ``generation`` and quota allows.

        Returns:
            ``"reserved"``; ``"stale"`` when the node changed since the fit (fit again);
            ``"quota"`` when the namespace's quota no longer admits the pod (fit again).
        """
        with self._lock:
            view = self._views.get(booked.node)
            if view is None or view.generation != generation:
                return "stale"
            record = self._records.get(uid)
            before = record.effective if record is not None else None
            if not self._quota_admits(booked, before):
                return "quota"
            if record is None:
                record = self._records[uid] = _Record()
            record.reserved = booked
            self._account(uid, before, booked)
            return "reserved"

    def _quota_admits(self, booked: PodAllocation, before: PodAllocation | None) -> bool:
        if not self._quotas.any_in(booked.namespace):
            return True
        current = self._ns_usage.get(booked.namespace, {})
        own = before.usage() if before is not None and before.namespace == booked.namespace else {}
        for backend, extra in booked.usage().items():
            limit = self._quotas.limit(booked.namespace, backend)
            if limit is None:
                continue
            used = current.get(backend, Usage()) - own.get(backend, Usage())
            if not limit.admits(used, extra):
                return False
        return True

    def forget(self, uid: str) -> Changes:
        """Drop whatever pod ``uid`` holds or reserved (a re-filter, or a failed bind)."""
        with self._lock:
            return self._drop_record(uid)

    def _drop_record(self, uid: str) -> Changes:
        record = self._records.pop(uid, None)
        if record is None:
            return NO_CHANGES
        return self._account(uid, record.effective, None)

    def _account(self, uid: str, before: PodAllocation | None, after: PodAllocation | None) -> Changes:
        """Move pod ``uid``'s booking from ``before`` to ``after`` and refresh the nodes concerned."""
        if before == after:
            return NO_CHANGES
        touched: set[str] = set()
        freed_namespaces: set[str] = set()
        if before is not None:
            pods = self._node_pods.get(before.node, {})
            pods.pop(uid, None)
            if not pods:
                self._node_pods.pop(before.node, None)
            self._add_usage(before, -1)
            touched.add(before.node)
            freed_namespaces.add(before.namespace)
        if after is not None:
            self._node_pods.setdefault(after.node, {})[uid] = after
            self._add_usage(after, 1)
            touched.add(after.node)
            if before is not None and after.namespace == before.namespace and not _shrinks(before, after):
                freed_namespaces.discard(before.namespace)
        freed_nodes: set[str] = set()
        if self._deferred is not None:
            self._deferred |= touched
        else:
            for name in touched:
                freed_nodes |= self._refresh(name)
        return Changes(freed_nodes=frozenset(freed_nodes), freed_namespaces=frozenset(freed_namespaces))

    def _add_usage(self, held: PodAllocation, sign: int) -> None:
        per_backend = self._ns_usage.setdefault(held.namespace, {})
        for backend, used in held.usage().items():
            current = per_backend.get(backend, Usage())
            per_backend[backend] = current + used if sign > 0 else current - used
        if not any(u.memory or u.cores for u in per_backend.values()):
            self._ns_usage.pop(held.namespace, None)

    # --- views ------------------------------------------------------------------------------------

    def _refresh(self, name: str) -> frozenset[str]:
        """Rebuild the view of ``name``; returns ``{name}`` when its capacity grew."""
        entry = self._nodes.get(name)
        if entry is None:
            return frozenset()
        old = self._views.get(name)
        signature = entry.signature(self._backends)
        if signature != entry.built:
            entry.built = signature
            self._fleet_version += 1
        held = list(self._node_pods.get(name, {}).values())
        devices: dict[str, tuple[DeviceUsage, ...]] = {}
        summaries: dict[str, BackendSummary] = {}
        if entry.selected:
            for backend in self._backends:
                if entry.healthy.get(backend.name):
                    usage = self._usage_of(entry.infos.get(backend.name, ()), backend.name, held)
                    devices[backend.name] = usage
                    summaries[backend.name] = BackendSummary.of(usage)
        self._generation += 1
        view = NodeView(
            name=name,
            generation=self._generation,
            annotations=entry.annotations,
            devices=devices,
            summaries=summaries,
        )
        self._views[name] = view
        everything = view.all_devices()
        for policy, ranking in self._rankings.items():
            ranking.update(name, everything)
            self._place_rooms(policy, name, ranking.key(name), summaries)
        previous = old.summaries if old is not None else {}
        grew = any(
            backend not in previous or summary.better_than(previous[backend])
            for backend, summary in summaries.items()
        )
        return frozenset({name}) if grew else frozenset()

    def _place_rooms(
        self, policy: str, name: str, key: tuple[float, str] | None, summaries: Mapping[str, BackendSummary]
    ) -> None:
        """Keep ``name`` in exactly the room rankings its devices qualify for."""
        for backend in self._backends:
            summary = summaries.get(backend.name)
            for tier in ROOM_TIERS:
                ranking = self._rooms[(policy, backend.name, tier)]
                if key is not None and summary is not None and summary.qualifies(tier):
                    ranking.place(name, key)
                else:
                    ranking.remove(name)

    @staticmethod
    def _usage_of(
        infos: Sequence[DeviceInfo], backend: str, held: Sequence[PodAllocation]
    ) -> tuple[DeviceUsage, ...]:
        sums: dict[str, list[int]] = {}
        for pod in held:
            for booking in pod.bookings.get(backend, ()):
                entry = sums.setdefault(booking.device.uuid, [0, 0, 0])
                entry[0] += max(booking.slots, 1)
                entry[1] += booking.device.usedmem
                entry[2] += booking.device.usedcores
        usage = []
        for info in infos:
            used, mem, cores = sums.get(info.id, (0, 0, 0))
            usage.append(
                DeviceUsage(
                    id=info.id,
                    index=info.index,
                    count=info.count,
                    used=used,
                    totalmem=info.devmem,
                    usedmem=mem,
                    totalcore=info.devcore,
                    usedcores=cores,
                    type=info.type,
                    numa=info.numa,
                    mode=info.mode,
                    health=info.health,
                    mig_profiles=info.mig_profiles,
                    custom_info=info.custom_info,
                    device_vendor=info.device_vendor or backend,
                )
            )
        return tuple(usage)

    # --- queries ----------------------------------------------------------------------------------

    def view(self, name: str) -> NodeView | None:
        """The current snapshot of node ``name``; ``None`` when the cache does not know it."""
        return self._views.get(name)

    def views(self) -> list[NodeView]:
        """Every node snapshot, sorted by name."""
        with self._lock:
            return [self._views[name] for name in sorted(self._views)]

    def _activate(self, policy: str) -> Ranking:
        """The ranking of ``policy``, built from every node the first time it is needed.

        Raises:
            KeyError: no node policy has that name.
        """
        ranking = self._rankings.get(policy)
        if ranking is not None:
            return ranking
        scorer = self._policies[policy]
        ranking = self._rankings[policy] = Ranking(scorer)
        for backend in self._backends:
            for tier in ROOM_TIERS:
                self._rooms[(policy, backend.name, tier)] = Ranking(scorer)
        for name, view in self._views.items():
            ranking.update(name, view.all_devices())
            self._place_rooms(policy, name, ranking.key(name), view.summaries)
        return ranking

    def ranking(self, policy: str, room: tuple[str, RoomTier] | None = None) -> list[tuple[float, str]]:
        """Known nodes as ``(-score, name)``, most preferred first by node policy ``policy``.

        Args:
            policy: a node policy name.
            room: ``(backend, tier)`` to list only the nodes of one of the :data:`ROOM_TIERS`.

        Raises:
            KeyError: no node policy has that name.
        """
        with self._lock:
            ranking = self._activate(policy)
            if room is None:
                return ranking.entries()
            return self._rooms[(policy, *room)].entries()

    def unknown(self, names: set[str]) -> set[str]:
        """The names among ``names`` the cache has no node for."""
        return names.difference(self._views)

    def rank(self, policy: str, names: Sequence[str]) -> list[str]:
        """The known nodes among ``names``, most preferred first."""
        with self._lock:
            return self._activate(policy).order(names)

    def score(self, policy: str, name: str) -> float | None:
        """Node ``name``'s score by ``policy`` (higher is preferred)."""
        with self._lock:
            return self._activate(policy).score(name)

    def allocation(self, uid: str) -> PodAllocation | None:
        """What pod ``uid`` holds or has reserved (the reservation when both exist)."""
        with self._lock:
            record = self._records.get(uid)
            return record.effective if record is not None else None

    def pod(self, namespace: str, name: str) -> PodState | None:
        """What the watch last showed of pod ``namespace/name``."""
        return self._pods.get(pod_key(namespace, name))

    def node_metadata(self, name: str) -> Node | None:
        """The node's name, resourceVersion and annotations as the watch last showed them."""
        with self._lock:
            entry = self._nodes.get(name)
            if entry is None:
                return None
            return {
                "metadata": {
                    "name": name,
                    "resourceVersion": entry.resource_version,
                    "annotations": dict(entry.annotations),
                }
            }

    def namespace_usage(self, namespace: str, backend: str) -> Usage:
        """The device memory and cores pods of ``namespace`` hold of ``backend``."""
        with self._lock:
            return self._ns_usage.get(namespace, {}).get(backend, Usage())

    @property
    def quotas(self) -> QuotaLimits:
        return self._quotas

    def set_quotas(self, limits: QuotaLimits) -> Changes:
        """Install new quota limits; namespaces whose limits grew count as freed."""
        with self._lock:
            old = self._quotas
            self._quotas = limits
            freed = {
                namespace
                for namespace, per_backend in old.by_namespace.items()
                if limits.by_namespace.get(namespace) != per_backend
            }
        return Changes(freed_namespaces=frozenset(freed)) if freed else NO_CHANGES

    def largest_device_memory(self, backend: str) -> int | None:
        """The most memory (MiB) of any healthy registered device of ``backend``; ``None`` if none."""
        return self._fleet(backend, "memory")

    def largest_node_device_count(self, backend: str) -> int | None:
        """The most devices of ``backend`` any healthy registered node has; ``None`` if none."""
        return self._fleet(backend, "count")

    def _fleet(self, backend: str, what: str) -> int | None:
        with self._lock:
            memo = self._fleet_memo.get((backend, what))
            if memo is not None and memo[0] == self._fleet_version:
                return memo[1]
            best: int | None = None
            for view in self._views.values():
                devices = view.devices.get(backend)
                if not devices:
                    continue
                value = max(d.totalmem for d in devices) if what == "memory" else len(devices)
                best = value if best is None else max(best, value)
            self._fleet_memo[(backend, what)] = (self._fleet_version, best)
            return best

    def allocations(self) -> list[PodAllocation]:
        """What every pod holds or has reserved, node by node."""
        with self._lock:
            return [held for pods in self._node_pods.values() for held in pods.values()]

    def quota_exceeded(self, namespace: str, backend: str, memory: int, cores: int) -> str | None:
        """Why a pod asking ``memory`` MiB and ``cores`` of ``backend`` would exceed the namespace's
        device quota now, or ``None`` (the webhook's admission pre-check)."""
        with self._lock:
            limit = self._quotas.limit(namespace, backend)
            if limit is None:
                return None
            used = self._ns_usage.get(namespace, {}).get(backend, Usage())
        if limit.admits(used, Usage(memory, cores)):
            return None
        return (
            f"namespace {namespace} device quota of {backend}: {used.memory} MiB and {used.cores} cores in use, "
            f"limits {limit.memory if limit.memory is not None else 'none'} MiB and "
            f"{limit.cores if limit.cores is not None else 'none'} cores; the pod asks {memory} MiB and {cores} cores"
        )
