"""The capacity index: per node an immutable usage snapshot, and the rankings filtering walks.

:class:`CapacityIndex` keeps, for every known node, a :class:`NodeView` (its devices per healthy
backend with what every pod holds or reserved there, and the per-backend pruning aggregates of
:class:`~hami_core.scheduler.capacity.BackendSummary`), plus:

- **Rankings**: per node policy, every node sorted by its score before any new pod (kept current
  node by node), and per backend the room rankings of :data:`~hami_core.scheduler.capacity.ROOM_TIERS`
  (the nodes where devices can still give a given share), which filtering walks instead.
- **Generations**: each view carries one, bumped on every change of the node's devices or usage; a
  reservation made against an older generation is refused, which keeps concurrent filters from
  booking the same memory, cores or slots twice. A change of free CPU alone
  (:meth:`CapacityIndex.set_cpu`) keeps the generation: it never decides whether a pod fits (only
  which node and devices a placement policy prefers), so a fit made before it is still safe to book.
- **A change log**: :attr:`CapacityIndex.seq` and :meth:`CapacityIndex.changed_since` name the nodes
  changed since a point, so a memo of "this request shape fits nowhere" needs to re-check only them.
- **Fleet maxima** (largest device, most devices on a node) for the webhook's warnings and the
  filter's room choice, recomputed only when some node's devices changed.

Not thread-safe for writes: :class:`~hami_core.scheduler.cache.ClusterCache` calls it under its
lock; :meth:`CapacityIndex.view` is a single dict read. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core.backend import DeviceBackend
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceUsage
from hami_core.hookspecs import ScoringPolicy
from hami_core.scheduler.bookings import PodAllocation
from hami_core.scheduler.capacity import ROOM_TIERS
from hami_core.scheduler.capacity import BackendSummary
from hami_core.scheduler.capacity import RoomTier
from hami_core.scheduler.scoring import Ranking
from hami_core.scheduler.usage import device_usage

#: How many node changes the log keeps before it forgets the oldest half.
_LOG_LIMIT = 50_000

_NO_SUMMARY = BackendSummary()


@attrs.frozen
class NodeView:
    """An immutable snapshot of one node as filtering sees it.

    Args:
        name: the node's name.
        generation: bumped on every change of the node's devices or usage (not of ``cpu_left``).
        annotations: the node's annotations (cordon list, pair scores, vendor keys).
        devices: per healthy backend, its devices with the usage of every pod and reservation; empty
            when the node registered no device that counts (``node unregistered``).
        summaries: per backend in ``devices``, the pruning aggregates.
        cpu_left: free CPU in milli-cores (allocatable minus the requests of the pods counted there,
            :mod:`~hami_core.scheduler.node_cpu`); ``None`` when the allocatable CPU is unknown or the
            node has no devices (nothing is placed there, so it is not kept current).
    """

    name: str
    generation: int
    annotations: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    devices: Mapping[str, tuple[DeviceUsage, ...]] = attrs.field(factory=dict, hash=False)
    summaries: Mapping[str, BackendSummary] = attrs.field(factory=dict, hash=False)
    cpu_left: int | None = None

    def all_devices(self) -> list[DeviceUsage]:
        """Every device of every backend (what the node score is computed on)."""
        return [device for devices in self.devices.values() for device in devices]

    def summary(self, backend: str) -> BackendSummary:
        return self.summaries.get(backend, _NO_SUMMARY)

    @property
    def registered(self) -> bool:
        """Whether any backend's devices count on the node (HAMi knows the node)."""
        return bool(self.devices)


def node_view(
    name: str,
    generation: int,
    annotations: Mapping[str, str],
    counted: Iterable[tuple[str, Sequence[DeviceInfo]]],
    held: Sequence[PodAllocation] = (),
    cpu_left: int | None = None,
) -> NodeView:
    """The view of one node: each counted backend's devices with what ``held`` books on them."""
    devices: dict[str, tuple[DeviceUsage, ...]] = {}
    summaries: dict[str, BackendSummary] = {}
    for backend, infos in counted:
        usage = device_usage(infos, backend, [pod.bookings.get(backend, ()) for pod in held])
        devices[backend] = usage
        summaries[backend] = BackendSummary.of(usage)
    return NodeView(
        name=name,
        generation=generation,
        annotations=annotations,
        devices=devices,
        summaries=summaries,
        cpu_left=cpu_left if devices else None,
    )


class CapacityIndex:
    """Node views, their rankings per node policy and room tier, and the log of node changes.

    Args:
        backends: the loaded backends (room rankings are kept per backend).
        node_policies: every node policy by name; each gets a :class:`Ranking` (and its room
            rankings) from the first time it is asked for, then kept current.
        active: the policies to rank from the start; ``None`` for all.
    """

    def __init__(
        self,
        backends: Sequence[DeviceBackend],
        node_policies: Mapping[str, ScoringPolicy],
        active: Iterable[str] | None = None,
    ) -> None:
        self._backends = tuple(backend.name for backend in backends)
        self._policies = dict(node_policies)
        self.views: dict[str, NodeView] = {}
        self._generation = 0
        self._rankings: dict[str, Ranking] = {}
        self._rooms: dict[tuple[str, str, RoomTier], Ranking] = {}
        self._fleet_version = 0
        self._fleet_memo: dict[tuple[str, str], tuple[int, int | None]] = {}
        self._kinds_memo: dict[str, tuple[int, tuple[DeviceUsage, ...]]] = {}
        self._log: list[str] = []
        self._log_base = 0
        for name in self._policies if active is None else active:
            self.activate(name)

    # --- updates ----------------------------------------------------------------------------------

    def refresh(
        self,
        name: str,
        annotations: Mapping[str, str],
        counted: Iterable[tuple[str, Sequence[DeviceInfo]]],
        held: Sequence[PodAllocation],
        *,
        devices_changed: bool,
        cpu_left: int | None = None,
    ) -> bool:
        """Rebuild the view of ``name``; whether its capacity grew.

        Args:
            name: the node.
            annotations: its annotations.
            counted: (backend, registered devices) of each backend whose devices count.
            held: what every pod holds or reserved on it.
            devices_changed: its registered devices or health changed (fleet maxima are recomputed).
            cpu_left: its free CPU in milli-cores, ``None`` when unknown.
        """
        if devices_changed:
            self._fleet_version += 1
        old = self.views.get(name)
        self._generation += 1
        view = node_view(name, self._generation, annotations, counted, held, cpu_left)
        self.views[name] = view
        self._changed(name)
        everything = view.all_devices()
        for policy, ranking in self._rankings.items():
            ranking.update(name, everything)
            self._place_rooms(policy, name, ranking.key(name), view.summaries)
        previous = old.summaries if old is not None else {}
        return any(
            backend not in previous or summary.better_than(previous[backend])
            for backend, summary in view.summaries.items()
        )

    def set_cpu(self, name: str, cpu_left: int | None) -> None:
        """Give the view of ``name`` a new free CPU; the log names the node, nothing else changes.

        Usage rankings and room tiers depend on devices only, so they stay; a node without devices
        keeps ``None``.
        """
        view = self.views.get(name)
        if view is None or not view.registered or view.cpu_left == cpu_left:
            return
        self.views[name] = attrs.evolve(view, cpu_left=cpu_left)
        self._changed(name)

    def remove(self, name: str) -> None:
        """Forget node ``name``."""
        self.views.pop(name, None)
        for ranking in [*self._rankings.values(), *self._rooms.values()]:
            ranking.remove(name)
        self._fleet_version += 1
        self._changed(name)

    def _changed(self, name: str) -> None:
        self._log.append(name)
        if len(self._log) > _LOG_LIMIT:
            half = len(self._log) // 2
            del self._log[:half]
            self._log_base += half

    def _place_rooms(
        self, policy: str, name: str, key: tuple[float, str] | None, summaries: Mapping[str, BackendSummary]
    ) -> None:
        """Keep ``name`` in exactly the room rankings its devices qualify for."""
        for backend in self._backends:
            summary = summaries.get(backend)
            for tier in ROOM_TIERS:
                ranking = self._rooms[(policy, backend, tier)]
                if key is not None and summary is not None and summary.qualifies(tier):
                    ranking.place(name, key)
                else:
                    ranking.remove(name)

    def activate(self, policy: str) -> Ranking:
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
                self._rooms[(policy, backend, tier)] = Ranking(scorer)
        for name, view in self.views.items():
            ranking.update(name, view.all_devices())
            self._place_rooms(policy, name, ranking.key(name), view.summaries)
        return ranking

    # --- queries ----------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """How many node changes the index has seen (a point for :meth:`changed_since`)."""
        return self._log_base + len(self._log)

    def changed_since(self, seq: int) -> set[str] | None:
        """The nodes changed (updated, added or removed) after point ``seq``; ``None`` if forgotten."""
        if seq < self._log_base:
            return None
        return set(self._log[seq - self._log_base :])

    def room(self, policy: str, backend: str, tier: RoomTier) -> Ranking:
        self.activate(policy)
        return self._rooms[(policy, backend, tier)]

    def largest(self, backend: str, what: str) -> int | None:
        """The most ``memory`` of one device, or the most devices (``count``) on one node, of ``backend``."""
        memo = self._fleet_memo.get((backend, what))
        if memo is not None and memo[0] == self._fleet_version:
            return memo[1]
        best: int | None = None
        for view in self.views.values():
            devices = view.devices.get(backend)
            if not devices:
                continue
            value = max(d.totalmem for d in devices) if what == "memory" else len(devices)
            best = value if best is None else max(best, value)
        self._fleet_memo[(backend, what)] = (self._fleet_version, best)
        return best

    def device_kinds(self, backend: str) -> tuple[DeviceUsage, ...]:
        """One device of ``backend`` per distinct type and mode on the nodes where it counts (first seen)."""
        memo = self._kinds_memo.get(backend)
        if memo is not None and memo[0] == self._fleet_version:
            return memo[1]
        seen: dict[tuple[str, str], DeviceUsage] = {}
        for view in self.views.values():
            for device in view.devices.get(backend, ()):
                seen.setdefault((device.type, device.mode), device)
        kinds = tuple(seen.values())
        self._kinds_memo[backend] = (self._fleet_version, kinds)
        return kinds
