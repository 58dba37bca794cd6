"""FGD, fragmentation gradient descent (ATC '23), and ``fgd-pack``, our refinement of it.

FGD sends a pod where the workload's expected fragment ``F_n(M)`` grows least, scoring
``int(100 * sigmoid(-delta / 1000))``; a shared pod tries every device with room and keeps the
first best. The integer score makes nodes whose growth differs by less than about 40 milli-devices
tie, and the tie goes to the node order, i.e. at random.

``fgd-pack`` ranks by the exact growth instead, and breaks what is left of the ties by packing:
the least free device capacity and then the least free CPU after the pod. Many placements do not
change ``F`` at all (a CPU-only pod on a node whose CPU nobody lacks, an 8-device pod filling an
empty node); FGD spreads those at random and erodes nodes later pods need, ``fgd-pack`` piles them
onto already used capacity.
"""

from __future__ import annotations

from collections.abc import Sequence

from hami_core.devices import DeviceUsage
from hami_core.scheduler.placement import MAX_SPEC_CPU
from hami_core.scheduler.placement import MAX_SPEC_GPU
from hami_core.scheduler.placement import NodeState
from hami_core.scheduler.placement import PodShape
from hami_core.scheduler.placement import device_free
from hami_core.scheduler.placement import tightest_last
from hami_core.scheduler.policies.baselines import device_choice
from hami_core.scheduler.policies.fragmentation import RecentWorkload
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.scheduler.policies.fragmentation import sigmoid_score

#: fgd-pack's weight of leftover device capacity, in score per milli-device, relative to growth.
PACK_GPU = 1e-3
#: fgd-pack's weight of leftover CPU, in score per milli-core.
PACK_CPU = 1e-3 * MAX_SPEC_GPU / MAX_SPEC_CPU / 4


class _Fragmentation:
    """Shared by FGD and fgd-pack: the workload, and the growth of ``F`` for one placement."""

    deterministic = True

    def __init__(self, workload: Workload | None = None) -> None:
        self._fixed = workload
        self._recent = RecentWorkload()

    def workload(self, pod: PodShape) -> Workload:
        return self._fixed if self._fixed is not None else self._recent.see(pod)

    def _value(self, before: float, after: float) -> float:
        raise NotImplementedError

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        """Whole devices lowest index first; a share on the device whose use grows ``F`` least."""
        if not (pod.gpus == 1 and pod.milli < 1000):
            return tightest_last(node.devices)
        workload = self.workload(pod)
        frees = list(node.frees())
        before = workload.fragment(node.cpu_left, frees, node.model)
        cpu_after = None if node.cpu_left is None else node.cpu_left - pod.cpu
        best: tuple[float, int] | None = None
        for position, free in enumerate(frees):
            if free < pod.milli:
                continue
            frees[position] = free - pod.milli
            value = self._value(before, workload.fragment(cpu_after, frees, node.model))
            frees[position] = free
            if best is None or value > best[0]:
                best = (value, position)
        if best is None:
            return tightest_last(node.devices)
        return device_choice(node.devices, best[1])

    def growth(self, before: NodeState, pod: PodShape, after: NodeState) -> tuple[float, float]:
        workload = self.workload(pod)
        return workload.node_fragment(before), workload.node_fragment(after)


class Fgd(_Fragmentation):
    """FGD as published: the integer sigmoid of the fragment's decrease."""

    def _value(self, before: float, after: float) -> float:
        return sigmoid_score(before, after)

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        return self._value(*self.growth(before, pod, after))


class FgdPack(_Fragmentation):
    """Exact fragment growth first, then pack: least free device capacity, then least free CPU."""

    def _value(self, before: float, after: float) -> float:
        return before - after

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        f_before, f_after = self.growth(before, pod, after)
        gpu_left = sum(device_free(device) for device in after.devices)
        cpu_left = after.cpu_left if after.cpu_left is not None else 0
        return (f_before - f_after) - PACK_GPU * gpu_left - PACK_CPU * cpu_left
