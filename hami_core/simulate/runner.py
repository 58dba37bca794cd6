"""Runs every (policy, seed) of one cluster and workload, in parallel processes when there are cores."""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed

import attrs

from hami_core.placement import PodShape
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.simulate.bridge import device_type
from hami_core.simulate.engine import Replay
from hami_core.simulate.metrics import RunSummary
from hami_core.simulate.trace import NodeSpec
from hami_core.simulate.trace import PodSpec
from hami_core.simulate.workload import arrivals
from hami_core.simulate.workload import typical_classes


@attrs.frozen
class Experiment:
    """One cluster and workload, replayed up to ``arrive`` percent of GPU capacity.

    Args:
        name: the workload's label in reports (the pod file's stem).
        nodes: the cluster.
        pods: the workload before shuffling and inflating.
        arrive: the target arrived share of GPU capacity, in percent.
    """

    name: str
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    arrive: float = 130.0

    @property
    def points(self) -> int:
        """Discretised points: 0..arrive percent."""
        return int(self.arrive) + 1

    def target_workload(self) -> Workload:
        """FGD's M: the workload's typical pod classes."""
        return Workload(
            (
                PodShape(
                    cpu=pod.cpu_milli,
                    gpus=pod.num_gpu,
                    milli=pod.gpu_milli,
                    models=frozenset(device_type(model) for model in pod.gpu_spec),
                ),
                share,
            )
            for pod, share in typical_classes(self.pods)
        )


def run_one(
    experiment: Experiment, policy: str, seed: int, progress: Callable[[int], None] | None = None
) -> RunSummary:
    """Replay ``experiment`` once under ``policy`` with ``seed``."""
    replay = Replay(experiment.nodes, experiment.target_workload(), policy, seed)
    order = arrivals(experiment.pods, replay.capacity_milli, seed, experiment.arrive / 100)
    result = replay.run(order.pods, progress)
    return RunSummary.of(result, experiment.name, experiment.points)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def run_all(
    experiment: Experiment,
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[RunSummary]:
    """Every (policy, seed) run, in policy then seed order.

    Args:
        workers: processes to use; default one per available core, one process for one run.
        progress: told how many pods were replayed since the last call.
    """
    jobs = [(policy, seed) for policy in policies for seed in seeds]
    count = min(workers or available_cores(), len(jobs))
    if count <= 1:
        return [run_one(experiment, policy, seed, progress) for policy, seed in jobs]
    results: dict[tuple[str, int], RunSummary] = {}
    with ProcessPoolExecutor(max_workers=count) as pool:
        futures = {pool.submit(run_one, experiment, policy, seed): (policy, seed) for policy, seed in jobs}
        for future in as_completed(futures):
            summary = future.result()
            results[futures[future]] = summary
            if progress is not None:
                progress(summary.pods)
    return [results[job] for job in jobs]
