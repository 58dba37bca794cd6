"""The arrival list and the target workload of one run, as the FGD paper's simulator builds them.

Randomness comes from :class:`random.Random` seeded per run; Go's ``math/rand`` stream cannot be
reproduced, so runs compare with the published ones as distributions over seeds, not one by one.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import attrs

from hami_core.simulate.trace import PodSpec

#: Specs kept for the target workload: the most popular until their share reaches this.
POPULARITY_THRESHOLD = 0.95


def spec_key(pod: PodSpec) -> tuple[int, int, int, tuple[str, ...]]:
    """The class of a pod for the target workload: (cpu, gpu_milli, num_gpu, gpu_spec)."""
    return (pod.cpu_milli, pod.gpu_milli, pod.num_gpu, pod.gpu_spec)


def typical_classes(pods: Sequence[PodSpec]) -> list[tuple[PodSpec, float]]:
    """The target workload M: the most popular pod classes covering 95 % of pods, shares renormalised.

    Returns:
        One representative pod per kept class with its share; shares sum to 1.
    """
    counts = Counter(spec_key(pod) for pod in pods)
    first: dict[tuple[int, int, int, tuple[str, ...]], PodSpec] = {}
    for pod in pods:
        first.setdefault(spec_key(pod), pod)
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    kept: list[tuple[PodSpec, int]] = []
    covered = 0
    for key, count in ranked:
        kept.append((first[key], count))
        covered += count
        if covered >= POPULARITY_THRESHOLD * len(pods):
            break
    return [(pod, count / covered) for pod, count in kept]


@attrs.frozen
class Arrivals:
    """The pods of one run in arrival order, and how many of them came from the trace itself."""

    pods: tuple[PodSpec, ...]
    original: int


def arrivals(pods: Sequence[PodSpec], capacity_milli: int, seed: int, target: float) -> Arrivals:
    """Shuffle ``pods`` and inflate (or trim) them to ``target`` times the cluster's GPU capacity.

    Clones are sampled with replacement and appended after the shuffled trace; as upstream, the
    stop test compares the clone's per-GPU ``gpu_milli`` (not its total) with the room left. A
    workload already above the target loses random pods until it fits.
    """
    rng = random.Random(seed)
    order = list(pods)
    rng.shuffle(order)
    limit = target * capacity_milli
    total = sum(pod.gpu_demand for pod in order)
    original = len(order)
    if total < limit and any(pod.gpu_demand for pod in order):
        clone = 0
        while True:
            sample = order[rng.randrange(len(pods))] if order else None
            if sample is None or total + sample.gpu_milli > limit:
                break
            order.append(attrs.evolve(sample, name=f"{sample.name}-clone-{clone}"))
            total += sample.gpu_demand
            clone += 1
    else:
        while total > limit and order:
            removed = order.pop(rng.randrange(len(order)))
            total -= removed.gpu_demand
        original = len(order)
    return Arrivals(pods=tuple(order), original=original)
