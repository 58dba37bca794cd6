"""The fragmentation measure of FGD (ATC '23): how much idle device capacity a workload cannot use.

For a target workload M of pod shapes m with shares p_m, a node's fragment is
``F_n(M) = sum_m p_m * F_n(m)``, where ``F_n(m)`` is the node's idle capacity when m cannot run
there at all (CPU-only pod, wrong model, too little CPU, too few devices with room), else only the
idle capacity of the devices too small for m. Values are memoised per node state (CPU left, sorted
free shares, model), which many nodes share, so a policy pays the full cost only for new states.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence

import attrs

from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import coarse_cpu

#: Memoised node states per workload before the memo starts over.
_MEMO_LIMIT = 500_000
#: Distinct recent pod shapes an online workload keeps (the extender learns M from what it sees).
RECENT_SHAPES = 64
#: The widest gap, in pods, between two publications of an online workload (the gap doubles up to it).
RELEARN_PODS = 128


class Workload:
    """A target workload M: pod shapes with shares summing to 1.

    Args:
        classes: (shape, weight) pairs; weights are normalised here.
    """

    def __init__(self, classes: Iterable[tuple[PodShape, float]]) -> None:
        merged: dict[PodShape, float] = {}
        for shape, weight in classes:
            merged[shape] = merged.get(shape, 0.0) + weight
        total = sum(merged.values())
        self.classes: tuple[tuple[PodShape, float], ...] = tuple(
            (shape, weight / total) for shape, weight in merged.items() if total > 0
        )
        devices = [(shape, share) for shape, share in self.classes if shape.gpus]
        demand = sum(share * shape.demand for shape, share in devices)
        #: CPU milli-cores per milli-device of the workload's device pods (0 without any).
        self.cpu_per_milli = sum(share * shape.cpu for shape, share in devices) / demand if demand else 0.0
        #: Device models that some shape of the workload is bound to.
        self.bound_models = frozenset(model for shape, _ in self.classes for model in shape.models)
        # A node's fragment depends on its free CPU only through which shapes it can host.
        self._cpu_steps = sorted({shape.cpu for shape, _ in self.classes})
        self._memo: dict[tuple[int | None, tuple[int, ...], str], float] = {}
        self._shares: dict[tuple[int | None, int | None, tuple[int, ...], str, int], int | None] = {}

    @classmethod
    def of_pods(cls, shapes: Iterable[PodShape]) -> Workload:
        """Each distinct shape weighted by how often it occurs."""
        return cls(Counter(shapes).items())

    def fragment(self, cpu_left: int | None, frees: Sequence[int], model: str) -> float:
        """``F_n(M)`` in milli-devices of a node with ``frees`` per device (memoised)."""
        return self._fragment(cpu_left, tuple(sorted(frees)), model)

    def node_fragment(self, node: NodeState) -> float:
        return self._fragment(node.cpu_left, node.sorted_frees, node.model)

    def _fragment(self, cpu_left: int | None, ordered: tuple[int, ...], model: str) -> float:
        key = (self._step(cpu_left), ordered, model)
        found = self._memo.get(key)
        if found is not None:
            return found
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        value = self._memo[key] = self._compute(cpu_left, ordered, model)
        return value

    def best_share(
        self, cpu_left: int | None, cpu_after: int | None, frees: tuple[int, ...], model: str, milli: int
    ) -> int | None:
        """FGD's device for a ``milli`` share: the first position whose use scores best (memoised).

        ``None`` when no device has room. The answer depends on the free CPU before and after only
        through which shapes each can host, so it is kept per CPU step, as fragments are.
        """
        key = (self._step(cpu_left), self._step(cpu_after), frees, model, milli)
        if key in self._shares:
            return self._shares[key]
        if len(self._shares) >= _MEMO_LIMIT:
            self._shares.clear()
        before = self.fragment(cpu_left, frees, model)
        changed = list(frees)
        best: tuple[int, int] | None = None
        for position, free in enumerate(frees):
            if free < milli:
                continue
            changed[position] = free - milli
            value = sigmoid_score(before, self.fragment(cpu_after, changed, model))
            changed[position] = free
            if best is None or value > best[0]:
                best = (value, position)
        found = self._shares[key] = None if best is None else best[1]
        return found

    def _step(self, cpu_left: int | None) -> int | None:
        return None if cpu_left is None else bisect.bisect_right(self._cpu_steps, cpu_left)

    def _compute(self, cpu_left: int | None, frees: tuple[int, ...], model: str) -> float:
        total = sum(frees)
        if total == 0:
            return 0.0
        fragment = 0.0
        for shape, share in self.classes:
            if (
                shape.gpus == 0
                or (shape.models and model not in shape.models)
                or (cpu_left is not None and cpu_left < shape.cpu)
            ):
                fragment += share * total
                continue
            roomy = 0
            small = 0
            for free in frees:
                if free >= shape.milli:
                    roomy += 1
                else:
                    small += free
            fragment += share * (small if roomy >= shape.gpus else total)
        return fragment


class RecentWorkload:
    """An online M for the extender: the last :data:`RECENT_SHAPES` distinct pod shapes, equal shares.

    Counting shapes per pod would need a hook per filter; equal shares over the recent distinct
    shapes need only the shapes the policy is asked about. A shape's CPU is kept to the nearest
    power of two of cores (:func:`coarse_cpu`): pods of one device shape ask many slightly different
    CPU requests. Each new M is a new revision, and a new revision makes every kept ranking score
    every node again, so new shapes are published in batches: at most once per ``gap`` pods, the
    gap doubling with each publication from one pod up to :data:`RELEARN_PODS`. A burst of new
    shapes (a restart, a new job mix) then costs a few re-rankings instead of one per shape, and a
    shape that comes a gap or more after the last publication is published at once.
    """

    def __init__(self) -> None:
        self._shapes: dict[PodShape, None] = {}
        self._coarse: dict[PodShape, PodShape] = {}
        self._pending = False
        self._pods = 0
        self._due = 0
        self._gap = 1
        self._lock = threading.Lock()
        self.current = Workload(())
        self.revision = 0

    def see(self, shape: PodShape) -> Workload:
        """Record one pod's ``shape`` and return the workload to score it with."""
        with self._lock:
            return self._record(shape)

    def _record(self, shape: PodShape) -> Workload:
        self._pods += 1
        coarse = self._coarse.get(shape)
        if coarse is None:
            if len(self._coarse) >= _MEMO_LIMIT:
                self._coarse.clear()
            coarse = self._coarse[shape] = attrs.evolve(shape, cpu=coarse_cpu(shape.cpu))
        if coarse not in self._shapes:
            self._shapes[coarse] = None
            if len(self._shapes) > RECENT_SHAPES:
                del self._shapes[next(iter(self._shapes))]
            self._pending = True
        if self._pending and self._pods >= self._due:
            self.current = Workload((known, 1.0) for known in self._shapes)
            self.revision += 1
            self._pending = False
            self._due = self._pods + self._gap
            self._gap = min(2 * self._gap, RELEARN_PODS)
        return self.current


def sigmoid_score(before: float, after: float) -> int:
    """FGD's score: ``int(100 * sigmoid((F_before - F_after) / 1000))``, truncated as upstream."""
    x = (before - after) / 1000.0
    if x < -700:
        return 0
    return int(100.0 / (1.0 + math.exp(-x)))
