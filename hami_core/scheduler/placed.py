"""Every node's placement score for one pod kind, kept sorted and refreshed only where nodes changed.

A pod-aware node policy (FGD and the like) scores the fit itself, so it cannot use the snapshot's
usage rankings: every node that fits must be fitted and scored. Doing that per filter costs a fit
per node (half a second at 5,000 nodes). But a node's fit and score for a pod kind (same signature,
CPU request, policy and policy revision) change only when the node changes (its devices, usage or
free CPU), so :class:`PlacedRanking` keeps them, best first, as of a point of the snapshot's change
log; the next filter of the kind re-fits only the nodes the log names since (usually the one the
previous pod landed on) and walks the ranking from the top. The fragment terms of FGD are memoised
per node state by its workload, so a refit pays for the changed node only.

A policy that learns (FGD's published workload) changes every score with each new revision, but
rarely a fit: the fit depends on the policy only through the order it puts the node's devices in.
So the kind's ranking under a new revision starts from the previous revision's outcomes, and an
unchanged node whose devices the policy orders as before is re-scored on the kept fit instead of
being fitted again (the caller decides; :meth:`PlacedRanking.take_previous`).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable

import attrs

from hami_core.devices import ContainerDevices

#: Pod kinds whose rankings are kept (each holds one small entry per node).
KEPT_KINDS = 64


@attrs.frozen
class Placed:
    """One node's outcome for the kind on view ``generation``: whether it fits and, if so, its score.

    For a one-container, one-backend pod the outcome also keeps what a new revision of the policy
    needs to re-score it without fitting again: the device ``order`` the fit was made in (ids),
    the devices it gave, and ``base``, the part of the score no revision changes (usage and vendor
    scores). ``order`` is ``None`` where the fit is not of that shape.
    """

    generation: int
    fits: bool
    score: float = 0.0
    order: tuple[str, ...] | None = None
    given: ContainerDevices = ()
    base: float = 0.0


class PlacedRanking:
    """The outcomes of one pod kind on every node evaluated, with the fitting ones sorted best first.

    ``seq`` is the change-log point the outcomes are current at (``None`` before the first fill);
    callers hold ``lock`` while they refresh and walk it.
    """

    def __init__(self, previous: PlacedRanking | None = None) -> None:
        self.seq: int | None = None
        self.outcomes: dict[str, Placed] = {}
        self.order: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        #: The kind's ranking under the policy's latest earlier revision, until this one is filled.
        self.previous = previous

    def take_previous(self, changed_since: Callable[[int], set[str] | None]) -> dict[str, Placed]:
        """The earlier revision's outcomes on the nodes unchanged since it was refreshed (once).

        Empty once this ranking has been filled, or when the earlier one was never filled or is too
        old for the change log to tell. Call with ``lock`` held.
        """
        previous, self.previous = self.previous, None
        if previous is None or self.seq is not None:
            return {}
        with previous.lock:
            if previous.seq is None:
                return {}
            changed = changed_since(previous.seq)
            if changed is None:
                return {}
            return {name: outcome for name, outcome in previous.outcomes.items() if name not in changed}

    def put(self, name: str, outcome: Placed) -> None:
        """Record ``name``'s outcome, moving it in the sorted order (ties: the smaller name first)."""
        self.drop(name)
        self.outcomes[name] = outcome
        if outcome.fits:
            bisect.insort(self.order, (-outcome.score, name))

    def drop(self, name: str) -> None:
        """Forget ``name`` (it changed, or left the cluster)."""
        old = self.outcomes.pop(name, None)
        if old is not None and old.fits:
            del self.order[bisect.bisect_left(self.order, (-old.score, name))]

    def clear(self) -> None:
        self.outcomes.clear()
        self.order.clear()


class PlacedRankings:
    """The rankings of the most recently used pod kinds (by signature, CPU request, policy and revision)."""

    def __init__(self, capacity: int = KEPT_KINDS) -> None:
        self._capacity = capacity
        self._kinds: OrderedDict[tuple[int, int, str, int], PlacedRanking] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kind: tuple[int, int, str, int]) -> PlacedRanking:
        """The ranking of ``kind``, new and empty when not kept; the least recent kind is dropped.

        A new ranking takes over the kind's rankings under earlier revisions of the policy (no
        filter asks for those again), the latest as its :attr:`PlacedRanking.previous`.
        """
        with self._lock:
            found = self._kinds.get(kind)
            if found is not None:
                self._kinds.move_to_end(kind)
                return found
            earlier = sorted(kept for kept in self._kinds if kept[:3] == kind[:3] and kept[3] < kind[3])
            previous = None
            for kept in earlier:
                previous = self._kinds.pop(kept)
            found = self._kinds[kind] = PlacedRanking(previous)
            while len(self._kinds) > self._capacity:
                self._kinds.popitem(last=False)
            return found
