"""Per-run series discretised to whole arrived percentages, and their mean and sd over seeds.

As the FGD paper's scripts do: for x = 0..N, the mean of the events whose arrived share rounds to x;
where none does, of those within [x-1, x+1]; values rounded to 2 decimals.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence

import attrs

from hami_core.simulate.engine import RunResult


def discretise(arrived: Sequence[float], values: Sequence[float], points: int) -> tuple[float | None, ...]:
    """``values`` at arrived = 0..``points``-1 percent (``None`` where the run has no event near x).

    ``arrived`` must be non-decreasing (arrivals only add demand).
    """
    out: list[float | None] = []
    for x in range(points):
        low = bisect.bisect_left(arrived, x - 0.5)
        high = bisect.bisect_left(arrived, x + 0.5)
        if high == low:
            low = bisect.bisect_left(arrived, x - 1)
            high = bisect.bisect_right(arrived, x + 1)
        if high == low:
            out.append(None)
            continue
        out.append(round(math.fsum(values[low:high]) / (high - low), 2))
    return tuple(out)


@attrs.frozen
class RunSummary:
    """One run discretised: allocation, fragment and fragmentation rate per arrived percent."""

    workload: str
    policy: str
    seed: int
    total_gpus: float
    allocated: tuple[float | None, ...]
    fragment: tuple[float | None, ...]
    frag_rate: tuple[float | None, ...]
    pods: int
    failed: int
    seconds: float

    @property
    def unallocated(self) -> tuple[float | None, ...]:
        return tuple(None if value is None else round(100 - value, 2) for value in self.allocated)

    @classmethod
    def of(cls, result: RunResult, workload: str, points: int) -> RunSummary:
        return cls(
            workload=workload,
            policy=result.policy,
            seed=result.seed,
            total_gpus=result.capacity_gpus,
            allocated=discretise(result.arrived, result.allocated, points),
            fragment=discretise(result.arrived, result.fragment, points),
            frag_rate=discretise(result.arrived, result.frag_rate, points),
            pods=result.pods,
            failed=result.failed,
            seconds=result.seconds,
        )


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the known values (sd 0 for one value)."""
    known = [value for value in values if value is not None]
    if not known:
        return None, None
    sd = statistics.stdev(known) if len(known) > 1 else 0.0
    return round(statistics.fmean(known), 2), round(sd, 2)
