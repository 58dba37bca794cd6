"""The scheduler's view of the cluster, one owner per concern behind one lock: :class:`ClusterCache`.

A state machine fed by watch events (:meth:`ClusterCache.apply_node`, :meth:`ClusterCache.apply_pod`,
the ``replace_*`` relists) and by filtering (:meth:`ClusterCache.reserve`, :meth:`ClusterCache.forget`).
It composes four parts, each in its own module:

- :class:`~hami_core.scheduler.nodes.NodeInventory`: what each node registered and whether it is
  healthy (HAMi's handshake rule);
- :class:`~hami_core.scheduler.bookings.Bookings`: what every pod holds or has reserved, per node and
  per namespace, and the namespaces' quotas;
- :class:`~hami_core.scheduler.node_cpu.NodeCpu`: each node's allocatable CPU and the CPU requests of
  every pod bound or reserved there (any pod, not only HAMi's), for CPU-aware placement policies;
- :class:`~hami_core.scheduler.index.CapacityIndex`: the immutable per-node usage snapshots, the
  rankings per node policy and room tier, and the log of node changes.

This class only routes: a node or pod event updates its owner, then the nodes whose inputs changed
get a fresh view in the index (a change of free CPU alone only re-stamps the view of a node with
devices). It does no I/O and starts no thread; :mod:`hami_core.scheduler.watching` feeds it and
acts on the :class:`~hami_core.scheduler.changes.Changes` each call returns. One lock
guards the state; readers get immutable :class:`~hami_core.scheduler.index.NodeView` snapshots, so
filtering fits nodes without holding it. The webhook reads it only through
:class:`~hami_core.scheduler.admission_view.AdmissionView`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from hami_core.backend import DeviceBackend
from hami_core.devices import DeviceUsage
from hami_core.hookspecs import ScoringPolicy
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler import usage
from hami_core.scheduler.bookings import Bookings
from hami_core.scheduler.bookings import Moved
from hami_core.scheduler.bookings import Placement
from hami_core.scheduler.bookings import PodAllocation
from hami_core.scheduler.bookings import PodState
from hami_core.scheduler.bookings import PodUpdate
from hami_core.scheduler.bookings import pod_key
from hami_core.scheduler.capacity import RoomTier
from hami_core.scheduler.changes import NO_CHANGES
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.changes import EventType
from hami_core.scheduler.changes import Gather
from hami_core.scheduler.index import CapacityIndex
from hami_core.scheduler.index import NodeView
from hami_core.scheduler.node_cpu import NodeCpu
from hami_core.scheduler.node_cpu import allocatable_cpu
from hami_core.scheduler.node_cpu import pod_cpu
from hami_core.scheduler.nodes import HANDSHAKE_GRACE_SECONDS
from hami_core.scheduler.nodes import NodeInventory
from hami_core.scheduler.quota import QuotaLimits
from hami_core.scheduler.quota import Usage

ReserveOutcome = Literal["reserved", "stale", "quota"]


class ClusterCache:
    """Nodes, devices, usage and reservations of the cluster, kept current by events.

    Args:
        backends: the loaded backends (only their devices and pod annotations are read).
        node_policies: every node policy by name; each gets a ranking (and its room rankings) from
            the first time it is asked for, then kept current.
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
        self._lock = threading.RLock()
        self._nodes = NodeInventory(
            self._backends, node_selector=node_selector, handshake_grace=handshake_grace
        )
        self._bookings = Bookings(self._backends)
        self._cpu = NodeCpu()
        self._index = CapacityIndex(self._backends, node_policies, active)
        self._deferred: set[str] | None = None

    # --- node events ------------------------------------------------------------------------------

    def apply_node(self, event: EventType, node: Node, now: datetime) -> Changes:
        """Apply one node watch event; ``now`` is when it was received (aware datetime)."""
        name = str((node.get("metadata") or {}).get("name", ""))
        with self._lock:
            if event == "DELETED":
                return self._delete_node(name)
            return self._update_node(name, node, now)

    def replace_nodes(self, nodes: Iterable[Node], now: datetime) -> Changes:
        """Apply a full node list (after a relist): nodes not in it are deleted."""
        gather = Gather()
        with self._lock:
            seen = set()
            for node in nodes:
                name = str((node.get("metadata") or {}).get("name", ""))
                seen.add(name)
                gather.add(self._update_node(name, node, now))
            for name in [name for name in self._nodes.entries if name not in seen]:
                gather.add(self._delete_node(name))
        return gather.result()

    def _delete_node(self, name: str) -> Changes:
        self._cpu.set_allocatable(name, None)
        if not self._nodes.delete(name):
            return NO_CHANGES
        self._index.remove(name)
        return Changes(lock_nodes=frozenset({name}))

    def _update_node(self, name: str, node: Node, now: datetime) -> Changes:
        update = self._nodes.update(name, node, now)
        entry = self._nodes.get(name)
        cpu_changed = entry is not None and self._cpu.set_allocatable(
            name, allocatable_cpu(entry.allocatable)
        )
        freed = self._refresh(name) if update.devices_changed else frozenset()
        if cpu_changed and not update.devices_changed:
            self._cpu_moved(frozenset({name}))
        return Changes(
            freed_nodes=freed,
            lock_nodes=frozenset({name}) if update.lock_changed else frozenset(),
            handshakes=update.handshakes,
            warnings=update.warnings,
        )

    def assess_health(self, now: datetime) -> Changes:
        """Re-apply the handshake rule to every node at ``now`` (a ``Requesting_`` ages out)."""
        gather = Gather()
        with self._lock:
            for entry, handshakes in self._nodes.assess(now):
                freed = self._refresh(entry.name) if self._nodes.stale(entry) else frozenset()
                if handshakes or freed:
                    gather.add(Changes(freed_nodes=freed, handshakes=handshakes))
        return gather.result()

    # --- pod events -------------------------------------------------------------------------------

    def apply_pod(self, event: EventType, pod: PodView) -> Changes:
        """Apply one pod watch event."""
        with self._lock:
            gone = event == "DELETED"
            cpu = self._count_cpu(pod, gone=gone)
            if gone:
                changes = self._settle(self._bookings.delete_pod(pod.key, pod.uid))
            else:
                changes = self._settle(self._bookings.update_pod(pod))
            self._cpu_moved(cpu)
            return changes

    def replace_pods(self, pods: Iterable[PodView]) -> Changes:
        """Apply a full pod list (after a relist): pods not in it are deleted."""
        gather = Gather()
        with self._lock:
            # Refresh each touched node once at the end, not once per pod.
            self._deferred = set()
            try:
                seen = set()
                for pod in pods:
                    seen.add(pod.key)
                    self._cpu_moved(self._count_cpu(pod, gone=False))
                    gather.add(self._settle(self._bookings.update_pod(pod)))
                for key in [key for key in self._bookings.pod_keys() if key not in seen]:
                    state = self._bookings.pod(key)
                    uid = state.uid if state else ""
                    self._cpu_moved(self._cpu.drop(uid))
                    gather.add(self._settle(self._bookings.delete_pod(key, uid)))
            finally:
                deferred, self._deferred = self._deferred, None
            freed: set[str] = set()
            for name in deferred:
                freed |= self._refresh(name)
            gather.add(Changes(freed_nodes=frozenset(freed)))
        return gather.result()

    def _count_cpu(self, pod: PodView, *, gone: bool) -> frozenset[str]:
        """Count ``pod``'s CPU where it is bound (before its bookings move); the nodes it touched."""
        touched: frozenset[str] = frozenset()
        previous = self._bookings.pod(pod.key)
        if previous is not None and previous.uid != pod.uid:
            touched = self._cpu.drop(previous.uid)  # the name was reused by a new pod
        if gone or pod.finished:
            return touched | self._cpu.drop(pod.uid)
        return touched | self._cpu.observe(pod.uid, pod.node_name, pod_cpu(pod) if pod.node_name else 0)

    def _cpu_moved(self, nodes: frozenset[str]) -> None:
        """Re-stamp the free CPU of the nodes with devices among ``nodes`` (later, during a relist).

        Run after the bookings moved: a node whose view was just rebuilt already has it.
        """
        for name in nodes:
            view = self._index.views.get(name)
            if view is None or not view.registered:
                continue
            if self._deferred is not None:
                self._deferred.add(name)
            else:
                self._index.set_cpu(name, self._cpu.left(name))

    def _settle(self, update: PodUpdate) -> Changes:
        changes = Changes(settled_pods=update.settled, warnings=update.warnings)
        for moved in update.moved:
            changes = changes | self._moved(moved)
        return changes

    def _moved(self, moved: Moved) -> Changes:
        """Refresh the nodes a booking change touched (later, during a relist)."""
        if not moved.nodes and not moved.freed_namespaces:
            return NO_CHANGES
        freed: set[str] = set()
        if self._deferred is not None:
            self._deferred |= moved.nodes
        else:
            for name in moved.nodes:
                freed |= self._refresh(name)
        return Changes(freed_nodes=frozenset(freed), freed_namespaces=moved.freed_namespaces)

    # --- reservations -----------------------------------------------------------------------------

    def reserve(self, uid: str, placement: Placement, generation: int, cpu: int = 0) -> ReserveOutcome:
        """Book ``placement`` for pod ``uid`` if its node is still at ``generation`` and quota allows.

        The pod's CPU request (``cpu``, milli-cores) counts on the node until the pod is bound there.

        Returns:
            ``"reserved"``; ``"stale"`` when the node changed since the fit (fit again);
            ``"quota"`` when the namespace's quota no longer admits the pod (fit again).
        """
        with self._lock:
            view = self._index.views.get(placement.booked.node)
            if view is None or view.generation != generation:
                return "stale"
            moved = self._bookings.reserve(uid, placement)
            if moved is None:
                return "quota"
            cpu_moved = self._cpu.reserve(uid, placement.booked.node, cpu)
            self._moved(moved)
            self._cpu_moved(cpu_moved)
            return "reserved"

    def forget(self, uid: str) -> Changes:
        """Drop whatever pod ``uid`` holds or reserved (a re-filter, or a failed bind)."""
        with self._lock:
            cpu_moved = self._cpu.unreserve(uid)
            changes = self._moved(self._bookings.drop(uid))
            self._cpu_moved(cpu_moved)
            return changes

    # --- views ------------------------------------------------------------------------------------

    def _refresh(self, name: str) -> frozenset[str]:
        """Rebuild the view of ``name``; returns ``{name}`` when its capacity grew."""
        entry = self._nodes.get(name)
        if entry is None:
            return frozenset()
        grew = self._index.refresh(
            name,
            entry.annotations,
            entry.counted(self._backends),
            self._bookings.held_on(name),
            devices_changed=self._nodes.mark_built(entry),
            cpu_left=self._cpu.left(name),
        )
        return frozenset({name}) if grew else frozenset()

    # --- queries: the capacity index ----------------------------------------------------------------

    def view(self, name: str) -> NodeView | None:
        """The current snapshot of node ``name``; ``None`` when the cache does not know it."""
        return self._index.views.get(name)

    def views(self) -> list[NodeView]:
        """Every node snapshot, sorted by name."""
        with self._lock:
            views = self._index.views
            return [views[name] for name in sorted(views)]

    def ranking(self, policy: str, room: tuple[str, RoomTier] | None = None) -> list[tuple[float, str]]:
        """Known nodes as ``(-score, name)``, most preferred first by node policy ``policy``.

        Args:
            policy: a node policy name.
            room: ``(backend, tier)`` to list only the nodes of one of the room tiers.

        Raises:
            KeyError: no node policy has that name.
        """
        with self._lock:
            if room is None:
                return self._index.activate(policy).entries()
            return self._index.room(policy, *room).entries()

    def unknown(self, names: set[str]) -> set[str]:
        """The names among ``names`` the cache has no node for."""
        return names.difference(self._index.views)

    def rank(self, policy: str, names: Sequence[str]) -> list[str]:
        """The known nodes among ``names``, most preferred first."""
        with self._lock:
            return self._index.activate(policy).order(names)

    def score(self, policy: str, name: str) -> float | None:
        """Node ``name``'s score by ``policy`` (higher is preferred).

        Raises:
            KeyError: no node policy has that name.
        """
        with self._lock:
            return self._index.activate(policy).score(name)

    @property
    def seq(self) -> int:
        """A point in the log of node changes (see :meth:`changed_since`)."""
        return self._index.seq

    def changed_since(self, seq: int) -> set[str] | None:
        """The nodes changed after point ``seq``; ``None`` when that point is too old to tell."""
        with self._lock:
            return self._index.changed_since(seq)

    def largest_device_memory(self, backend: str) -> int | None:
        """The most memory (MiB) of any healthy registered device of ``backend``; ``None`` if none."""
        with self._lock:
            return self._index.largest(backend, "memory")

    def device_kinds(self, backend: str) -> tuple[DeviceUsage, ...]:
        """One device of ``backend`` per distinct type and mode in the cluster (for type rules)."""
        with self._lock:
            return self._index.device_kinds(backend)

    def largest_node_device_count(self, backend: str) -> int | None:
        """The most devices of ``backend`` any healthy registered node has; ``None`` if none."""
        with self._lock:
            return self._index.largest(backend, "count")

    # --- queries: nodes and bookings ----------------------------------------------------------------

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

    def allocation(self, uid: str) -> PodAllocation | None:
        """What pod ``uid`` holds or has reserved (the reservation when both exist)."""
        with self._lock:
            return self._bookings.allocation(uid)

    def placement(self, uid: str) -> Placement | None:
        """What this scheduler's filter placed for pod ``uid`` (until the booking is dropped)."""
        with self._lock:
            return self._bookings.placement(uid)

    def overbooked(self, uid: str, held: PodAllocation) -> str:
        """Why ``held`` for pod ``uid`` does not fit its node beside every other booking; "" if it does.

        Every device must be one of the node's healthy registered devices, and with what the other
        pods hold or reserved there no device may pass its slots, memory or cores.
        """
        with self._lock:
            entry = self._nodes.get(held.node)
            counted = dict(entry.counted(self._backends)) if entry is not None else {}
            others = self._bookings.held_on(held.node, excluding=uid)
        for backend, bookings in held.bookings.items():
            why = usage.overbooked(
                counted.get(backend, ()), backend, [pod.bookings.get(backend, ()) for pod in others], bookings
            )
            if why:
                return f"{backend} on node {held.node}: {why}"
        return ""

    def allocations(self) -> list[PodAllocation]:
        """What every pod holds or has reserved, node by node."""
        with self._lock:
            return self._bookings.allocations()

    def pod(self, namespace: str, name: str) -> PodState | None:
        """What the watch last showed of pod ``namespace/name``."""
        return self._bookings.pod(pod_key(namespace, name))

    def namespace_usage(self, namespace: str, backend: str) -> Usage:
        """The device memory and cores pods of ``namespace`` hold of ``backend``."""
        with self._lock:
            return self._bookings.namespace_usage(namespace, backend)

    @property
    def quotas(self) -> QuotaLimits:
        return self._bookings.quotas

    def set_quotas(self, limits: QuotaLimits) -> Changes:
        """Install new quota limits; namespaces whose limits grew count as freed."""
        with self._lock:
            old = self._bookings.quotas
            self._bookings.quotas = limits
            freed = {
                namespace
                for namespace, per_backend in old.by_namespace.items()
                if limits.by_namespace.get(namespace) != per_backend
            }
        return Changes(freed_namespaces=frozenset(freed)) if freed else NO_CHANGES
