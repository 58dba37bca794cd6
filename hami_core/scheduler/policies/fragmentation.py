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

    @classmethod
    def of_pods(cls, shapes: Iterable[PodShape]) -> Workload:
        """Each distinct shape weighted by how often it occurs."""
        return cls(Counter(shapes).items())

    def fragment(self, cpu_left: int | None, frees: Sequence[int], model: str) -> float:
        """``F_n(M)`` in milli-devices of a node with ``frees`` per device (memoised)."""
        step = None if cpu_left is None else bisect.bisect_right(self._cpu_steps, cpu_left)
        key = (step, tuple(sorted(frees)), model)
        found = self._memo.get(key)
        if found is not None:
            return found
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        value = self._memo[key] = self._compute(cpu_left, key[1], model)
        return value

    def node_fragment(self, node: NodeState) -> float:
        return self.fragment(node.cpu_left, node.frees(), node.model)

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
    CPU requests, and each new shape changes the revision, which makes every kept ranking refit.
    """

    def __init__(self) -> None:
        self._shapes: dict[PodShape, None] = {}
        self._coarse: dict[PodShape, PodShape] = {}
        self._current = Workload(())
        self.revision = 0

    def see(self, shape: PodShape) -> Workload:
        """Record ``shape`` and return the workload to use now."""
        coarse = self._coarse.get(shape)
        if coarse is None:
            if len(self._coarse) >= _MEMO_LIMIT:
                self._coarse.clear()
            coarse = self._coarse[shape] = attrs.evolve(shape, cpu=coarse_cpu(shape.cpu))
        shape = coarse
        if shape not in self._shapes:
            self._shapes[shape] = None
            if len(self._shapes) > RECENT_SHAPES:
                del self._shapes[next(iter(self._shapes))]
            self._current = Workload((known, 1.0) for known in self._shapes)
            self.revision += 1
        return self._current


def sigmoid_score(before: float, after: float) -> int:
    """FGD's score: ``int(100 * sigmoid((F_before - F_after) / 1000))``, truncated as upstream."""
    x = (before - after) / 1000.0
    if x < -700:
        return 0
    return int(100.0 / (1.0 + math.exp(-x)))
