"""The baselines of "Beware of Fragmentation" (ATC '23), as its simulator scores them.

Each scores one candidate node for one pod on the node's free CPU and devices (``cpu_left``,
``gpu_left`` = total free milli-devices); scores are integers as in kube-scheduler, so near-equal
nodes tie and the caller's node order decides. Where CPU is unknown (the extender) CPU terms are 0.
Devices are taken tightest first (the ``best`` GPU choice), except by ``random``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hami_core.devices import MILLI
from hami_core.devices import DeviceUsage
from hami_core.placement import MAX_SPEC_CPU
from hami_core.placement import MAX_SPEC_GPU
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import tightest_last


def _cpu(node: NodeState) -> int:
    return node.cpu_left if node.cpu_left is not None else 0


def _pod_cpu(node: NodeState, pod: PodShape) -> int:
    return pod.cpu if node.cpu_left is not None else 0


class _TightestFirst:
    deterministic = True

    def revision(self, pod: PodShape) -> int:
        return 0

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        return tightest_last(node.devices)


class RandomPlacement:
    """Any node that fits, uniformly at random; a random device among those that fit."""

    deterministic = False

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()

    def revision(self, pod: PodShape) -> int:
        return 0

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        devices = list(node.devices)
        self._rng.shuffle(devices)
        return devices

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        return self._rng.random()


class DotProduct(_TightestFirst):
    """Tetris-style alignment: the smallest dot product of free and requested (CPU, GPU) wins."""

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        gpu_left = sum(before.frees())
        dot = (_cpu(before) / MAX_SPEC_CPU) * (_pod_cpu(before, pod) / MAX_SPEC_CPU) + (
            gpu_left / MAX_SPEC_GPU
        ) * (pod.demand / MAX_SPEC_GPU)
        return int(100 * (1 - dot / 2))


class BestFit(_TightestFirst):
    """The least leftover CPU and GPU (half weight each) after the pod wins."""

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        gpu_left = sum(before.frees())
        leftover = (
            0.5 * (_cpu(before) - _pod_cpu(before, pod)) / MAX_SPEC_CPU
            + 0.5 * (gpu_left - pod.demand) / MAX_SPEC_GPU
        )
        return int(100 * (1 - leftover))


class GpuPacking(_TightestFirst):
    """Shared devices first, then idle devices on used nodes, then idle nodes (smaller first)."""

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        if pod.demand <= 0:
            return 0
        frees = before.frees()
        idle = sum(1 for free in frees if free == MILLI)
        if idle == len(frees):
            return max(100 // 3 - idle, idle)
        wanted = pod.gpus
        idle_used = 0
        room_pct = 0
        for free in sorted(frees):
            if wanted == 0:
                break
            if pod.milli <= free:
                wanted -= 1
                room_pct += free * 100 // MILLI
                idle_used += free == MILLI
        if wanted:
            return 0
        if idle_used:
            return max(100 // 2 - idle_used, 100 // 3)
        return max(100 - room_pct // 10, 100 // 2)


class GpuClustering(_TightestFirst):
    """Pods of one kind (share, 1-GPU, 8-GPU...) together: nodes holding only the pod's tag first."""

    #: Its score reads :attr:`NodeState.tags` (callers that memoise must key on them).
    uses_tags = True

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        tag = pod.tag
        if not tag:
            return 0
        bonus = 25 * (MAX_SPEC_GPU - sum(before.frees())) // MAX_SPEC_GPU
        if tag in before.tags:
            return bonus + (75 if len(before.tags) == 1 else 50)
        return bonus + (25 if not before.tags else 0)


def device_choice(devices: Sequence[DeviceUsage], chosen: int) -> list[DeviceUsage]:
    """Devices tightest first, but device position ``chosen`` before all (it goes last)."""
    ordered = [device for position, device in enumerate(devices) if position != chosen]
    return [*tightest_last(ordered), devices[chosen]]


def fits_share(device: DeviceUsage, pod: PodShape) -> bool:
    return device.free_milli >= pod.milli
