"""Every node's placement score for one pod kind, kept sorted and refreshed only where nodes changed.

A pod-aware node policy (FGD and the like) scores the fit itself, so it cannot use the snapshot's
usage rankings: every node that fits must be fitted and scored. Doing that per filter costs a fit
per node (half a second at 5,000 nodes). But a node's fit and score for a pod kind (same signature,
CPU request, policy and policy revision) change only when the node changes (its devices, usage or
free CPU), so :class:`PlacedRanking` keeps them, best first, as of a point of the snapshot's change
log; the next filter of the kind re-fits only the nodes the log names since (usually the one the
previous pod landed on) and walks the ranking from the top. The fragment terms of FGD are memoised
per node state by its workload, so a refit pays for the changed node only.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

import attrs

#: Pod kinds whose rankings are kept (each holds one small entry per node).
KEPT_KINDS = 64


@attrs.frozen
class Placed:
    """One node's outcome for the kind on view ``generation``: whether it fits and, if so, its score."""

    generation: int
    fits: bool
    score: float = 0.0


class PlacedRanking:
    """The outcomes of one pod kind on every node evaluated, with the fitting ones sorted best first.

    ``seq`` is the change-log point the outcomes are current at (``None`` before the first fill);
    callers hold ``lock`` while they refresh and walk it.
    """

    def __init__(self) -> None:
        self.seq: int | None = None
        self.outcomes: dict[str, Placed] = {}
        self.order: list[tuple[float, str]] = []
        self.lock = threading.Lock()

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
        """The ranking of ``kind``, new and empty when not kept; the least recent kind is dropped."""
        with self._lock:
            found = self._kinds.get(kind)
            if found is None:
                found = self._kinds[kind] = PlacedRanking()
                while len(self._kinds) > self._capacity:
                    self._kinds.popitem(last=False)
            else:
                self._kinds.move_to_end(kind)
            return found
