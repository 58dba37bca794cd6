"""Bookings: what every pod holds or has reserved, per node and per namespace.

**Usage** comes from the ``*-devices-allocated`` annotation of every unfinished pod carrying
``hami.io/vgpu-node``, collapsed per device (init containers max'ed, app containers added; app
containers only once every init container has exited 0), read from the pod's
:class:`~hami_core.pods.PodView` (``specs/hami-wire.md`` 3.2).

**Reservations**: a filter books the devices it chose here before it patches the pod, so concurrent
filters see them at once. A reservation wins over what the watch last showed for the pod until the
watch shows the same allocation (then it is plain usage) or it is dropped. A pod forgotten for a
re-filter does not get its old choice back from later events that leave its annotations unchanged.
Each reservation keeps the filter's :class:`Placement` (what it wrote), the proof bind asks for.

Every change returns a :class:`Moved` (the nodes whose usage changed, the namespaces whose quota use
shrank) for :class:`~hami_core.scheduler.cache.ClusterCache` to rebuild those nodes' views. Not
thread-safe: the cache calls it under its lock. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import DeviceBooking
from hami_core.backend import DeviceBackend
from hami_core.errors import CodecError
from hami_core.pods import PodView
from hami_core.scheduler import quota
from hami_core.scheduler.changes import CacheWarning
from hami_core.scheduler.quota import QuotaLimits
from hami_core.scheduler.quota import Usage


@attrs.frozen
class PodAllocation:
    """What one pod holds (or is about to hold) on one node, per backend, collapsed per device."""

    namespace: str
    name: str
    node: str
    bookings: Mapping[str, tuple[DeviceBooking, ...]] = attrs.field(factory=dict, hash=False)

    def usage(self) -> dict[str, Usage]:
        return quota.pod_usage(self.bookings)


@attrs.frozen
class Placement:
    """What this scheduler's filter placed for one pod: its booking and the annotations it wrote.

    Bind acts only on a pod whose current annotations are still ``written`` (``hami.io/vgpu-node``
    and every backend's ``-to-allocate`` and ``-allocated`` value; a key the filter did not write
    maps to ``None``).
    """

    booked: PodAllocation
    written: Mapping[str, str | None] = attrs.field(factory=dict, hash=False)

    def matches(self, annotations: Mapping[str, str]) -> bool:
        """Whether ``annotations`` still hold exactly what the filter wrote."""
        return all(annotations.get(key) == value for key, value in self.written.items())


@attrs.frozen
class PodState:
    """What the cache remembers of every pod, for lock-holder checks and retries."""

    uid: str
    namespace: str
    name: str
    node_name: str = ""
    finished: bool = False
    bind_phase: str = ""
    deleting: bool = False

    @classmethod
    def of(cls, pod: PodView) -> PodState:
        return cls(
            uid=pod.uid,
            namespace=pod.namespace,
            name=pod.name,
            node_name=pod.node_name,
            finished=pod.finished,
            bind_phase=pod.annotation(codec.BIND_PHASE),
            deleting=pod.deleting,
        )

    @property
    def terminal(self) -> bool:
        """The pod ran to completion or failed (it holds nothing)."""
        return self.finished

    @property
    def pending(self) -> bool:
        """Not yet bound, not finished, not being deleted."""
        return not self.node_name and not self.finished and not self.deleting


def decode_allocation(pod: PodView, backends: Sequence[DeviceBackend]) -> PodAllocation | None:
    """What a pod's annotations say it holds; ``None`` without ``hami.io/vgpu-node`` or devices.

    Raises:
        CodecError: a ``*-devices-allocated`` value is not in HAMi's format.
    """
    annotations = pod.annotations
    node = annotations.get(codec.VGPU_NODE)
    if not node:
        return None
    n_init = pod.n_init
    bookings: dict[str, tuple[DeviceBooking, ...]] = {}
    for backend in backends:
        value = annotations.get(backend.keys.allocated)
        if not value:
            continue
        try:
            containers = [tuple(devices) for devices in codec.decode_pod_devices(value)]
        except CodecError as err:
            raise CodecError(f"{backend.keys.allocated}: {err}") from err
        if pod.init_done:
            collapsed = allocation.collapse_usage(containers[n_init:], 0)
        else:
            collapsed = allocation.collapse_usage(containers, n_init)
        if collapsed:
            bookings[backend.name] = collapsed
    if not bookings:
        return None
    return PodAllocation(pod.namespace, pod.name, node, bookings)


def allocation_keys(backends: Iterable[DeviceBackend]) -> tuple[str, ...]:
    """The annotations that say what a pod holds: ``hami.io/vgpu-node`` and every backend's
    ``-to-allocate`` and ``-allocated`` key (what a :class:`Placement` remembers)."""
    keys = [codec.VGPU_NODE]
    for backend in backends:
        keys += [backend.keys.to_allocate, backend.keys.allocated]
    return tuple(keys)


def _raw_allocation(pod: PodView, backends: Sequence[DeviceBackend]) -> tuple[object, ...]:
    """The annotation values :func:`decode_allocation` reads, to skip events that change none."""
    node = pod.annotations.get(codec.VGPU_NODE)
    if not node:
        return ()
    return (node, pod.init_done, *(pod.annotations.get(backend.keys.allocated) for backend in backends))


def _shrinks(before: PodAllocation, after: PodAllocation) -> bool:
    """Whether ``after`` uses less of some backend's memory or cores than ``before``."""
    now = after.usage()
    return any(
        now.get(backend, Usage()).memory < used.memory or now.get(backend, Usage()).cores < used.cores
        for backend, used in before.usage().items()
    )


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@attrs.frozen
class Moved:
    """What a booking change touched: nodes whose usage changed, namespaces whose quota use shrank."""

    nodes: frozenset[str] = frozenset()
    freed_namespaces: frozenset[str] = frozenset()


_NOTHING = Moved()


@attrs.frozen
class PodUpdate:
    """What one pod event changed: bookings moved, pods settled, allocations that cannot be read."""

    moved: tuple[Moved, ...] = ()
    settled: frozenset[str] = frozenset()
    warnings: tuple[CacheWarning, ...] = ()


@attrs.define
class _Record:
    observed: PodAllocation | None = None
    reserved: PodAllocation | None = None

    @property
    def effective(self) -> PodAllocation | None:
        return self.reserved if self.reserved is not None else self.observed


class Bookings:
    """Pods, what they hold and reserve, per node and per namespace, and the namespaces' quotas.

    Args:
        backends: the loaded backends (their ``*-devices-allocated`` keys).
    """

    def __init__(self, backends: Sequence[DeviceBackend]) -> None:
        self._backends = tuple(backends)
        self.node_pods: dict[str, dict[str, PodAllocation]] = {}
        self._records: dict[str, _Record] = {}
        self._placements: dict[str, Placement] = {}
        self._pods: dict[str, PodState] = {}
        self._bad_pods: dict[str, str] = {}
        self._raw: dict[str, tuple[object, ...]] = {}
        self._ns_usage: dict[str, dict[str, Usage]] = {}
        self.quotas = QuotaLimits()

    # --- pods -----------------------------------------------------------------------------------

    def pod(self, key: str) -> PodState | None:
        return self._pods.get(key)

    def pod_keys(self) -> list[str]:
        return list(self._pods)

    def delete_pod(self, key: str, uid: str) -> PodUpdate:
        state = self._pods.pop(key, None)
        uid = uid or (state.uid if state is not None else "")
        self._bad_pods.pop(uid, None)
        self._raw.pop(uid, None)
        return PodUpdate(moved=(self.drop(uid),), settled=frozenset({key}))

    def update_pod(self, pod: PodView) -> PodUpdate:
        state = PodState.of(pod)
        key = pod_key(state.namespace, state.name)
        previous = self._pods.get(key)
        moved: list[Moved] = []
        if previous is not None and previous.uid != state.uid:
            # The name was reused by a new pod: the old one is gone.
            self._raw.pop(previous.uid, None)
            moved.append(self.drop(previous.uid))
        self._pods[key] = state
        settled = frozenset({key}) if not state.pending else frozenset()
        if state.finished:
            self._raw.pop(state.uid, None)
            moved.append(self.drop(state.uid))
            return PodUpdate(tuple(moved), settled)
        raw = _raw_allocation(pod, self._backends)
        if self._raw.get(state.uid) == raw:
            # Most pod events (bind phase, status) leave the allocation as it was; and a pod whose
            # record was forgotten for a re-filter must not get its old choice back from them.
            return PodUpdate(tuple(moved), settled)
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
                return PodUpdate(tuple(moved), settled, warnings)
            record = self._records[state.uid] = _Record()
        before = record.effective
        record.observed = observed
        if record.reserved is not None and observed == record.reserved:
            record.reserved = None
        after = record.effective
        if after is None:
            del self._records[state.uid]
        moved.append(self._account(state.uid, before, after))
        return PodUpdate(tuple(moved), settled, warnings)

    # --- reservations -----------------------------------------------------------------------------

    def reserve(self, uid: str, placement: Placement) -> Moved | None:
        """Book ``placement`` for pod ``uid`` if the namespace's quota admits it; ``None`` if not.

        The placement is kept (for bind) until the pod's booking is dropped.
        """
        booked = placement.booked
        record = self._records.get(uid)
        before = record.effective if record is not None else None
        if not self._quota_admits(booked, before):
            return None
        if record is None:
            record = self._records[uid] = _Record()
        record.reserved = booked
        self._placements[uid] = placement
        return self._account(uid, before, booked)

    def placement(self, uid: str) -> Placement | None:
        """What the filter placed for pod ``uid``, until its booking is dropped."""
        return self._placements.get(uid)

    def _quota_admits(self, booked: PodAllocation, before: PodAllocation | None) -> bool:
        if not self.quotas.any_in(booked.namespace):
            return True
        current = self._ns_usage.get(booked.namespace, {})
        own = before.usage() if before is not None and before.namespace == booked.namespace else {}
        for backend, extra in booked.usage().items():
            limit = self.quotas.limit(booked.namespace, backend)
            if limit is None:
                continue
            used = current.get(backend, Usage()) - own.get(backend, Usage())
            if not limit.admits(used, extra):
                return False
        return True

    def drop(self, uid: str) -> Moved:
        """Drop whatever pod ``uid`` holds or reserved, and what the filter placed for it."""
        self._placements.pop(uid, None)
        record = self._records.pop(uid, None)
        if record is None:
            return _NOTHING
        return self._account(uid, record.effective, None)

    def _account(self, uid: str, before: PodAllocation | None, after: PodAllocation | None) -> Moved:
        """Move pod ``uid``'s booking from ``before`` to ``after``."""
        if before == after:
            return _NOTHING
        touched: set[str] = set()
        freed_namespaces: set[str] = set()
        if before is not None:
            pods = self.node_pods.get(before.node, {})
            pods.pop(uid, None)
            if not pods:
                self.node_pods.pop(before.node, None)
            self._add_usage(before, -1)
            touched.add(before.node)
            freed_namespaces.add(before.namespace)
        if after is not None:
            self.node_pods.setdefault(after.node, {})[uid] = after
            self._add_usage(after, 1)
            touched.add(after.node)
            if before is not None and after.namespace == before.namespace and not _shrinks(before, after):
                freed_namespaces.discard(before.namespace)
        return Moved(frozenset(touched), frozenset(freed_namespaces))

    def _add_usage(self, held: PodAllocation, sign: int) -> None:
        per_backend = self._ns_usage.setdefault(held.namespace, {})
        for backend, used in held.usage().items():
            current = per_backend.get(backend, Usage())
            per_backend[backend] = current + used if sign > 0 else current - used
        if not any(u.memory or u.cores for u in per_backend.values()):
            self._ns_usage.pop(held.namespace, None)

    # --- queries ----------------------------------------------------------------------------------

    def held_on(self, node: str, *, excluding: str = "") -> list[PodAllocation]:
        """What every pod (but pod ``excluding``) holds or reserved on ``node``."""
        return [held for uid, held in self.node_pods.get(node, {}).items() if uid != excluding]

    def allocation(self, uid: str) -> PodAllocation | None:
        record = self._records.get(uid)
        return record.effective if record is not None else None

    def allocations(self) -> list[PodAllocation]:
        return [held for pods in self.node_pods.values() for held in pods.values()]

    def namespace_usage(self, namespace: str, backend: str) -> Usage:
        return self._ns_usage.get(namespace, {}).get(backend, Usage())
