from __future__ import annotations

import pytest

from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.simulate.bridge import BACKEND
from hami_core.simulate.engine import Replay
from hami_core.simulate.workload import arrivals
from tests.simulate.helpers import mixed_cluster
from tests.simulate.helpers import mixed_pods
from tests.simulate.helpers import node
from tests.simulate.helpers import pod

DETERMINISTIC = [
    "binpack",
    "spread",
    "dotprod",
    "gpu-clustering",
    "gpu-packing",
    "bestfit",
    "fgd",
    "fgd-strand",
]


def workload_of(pods: list) -> Workload:  # type: ignore[type-arg]
    return Workload.of_pods(PodShape(p.cpu_milli, p.num_gpu, p.gpu_milli) for p in pods)


def brute_force(replay: Replay, pods: list) -> list[str]:  # type: ignore[type-arg]
    """Every pod: fit and score every node afresh, no memo, no ranking kept; best (score, order) wins."""
    placed = []
    for spec in pods:
        plan = replay._scheduler.plan(spec, replay._policy)
        best = None
        for candidate in replay._nodes:
            if candidate.cpu_left < spec.cpu_milli or candidate.mem_left < spec.memory_mib:
                continue
            if plan.shape.models and (
                not candidate.devices or candidate.devices[0].type not in plan.shape.models
            ):
                continue
            fit = replay._scheduler.fit(plan, candidate.state)
            if not fit.ok:
                continue
            after_devices = tuple(fit.usage[BACKEND])
            tags = candidate.state.tags | ({plan.shape.tag} if plan.shape.tag else set())
            after = NodeState(after_devices, candidate.cpu_left - spec.cpu_milli, tags)
            key = (replay._scheduler.score(plan, candidate.state, after), -candidate.rank)
            if best is None or key > best[0]:
                best = (key, candidate, after_devices)
        if best is None:
            placed.append("")
            continue
        _, chosen, after_devices = best
        usage = tuple((d.used, d.usedmem, d.usedcores) for d in after_devices)
        replay._place(chosen, spec, usage, plan.shape.tag)
        placed.append(chosen.spec.name)
    return placed


@pytest.mark.parametrize("policy", DETERMINISTIC)
def test_incremental_replay_places_every_pod_as_a_full_rescan_would(policy: str) -> None:
    nodes = mixed_cluster()
    pods = list(arrivals(mixed_pods(), sum(n.gpus for n in nodes) * 1000, seed=7, target=1.3).pods)
    fast = Replay(nodes, workload_of(pods), policy, seed=7).run(pods)
    assert brute_force(Replay(nodes, workload_of(pods), policy, seed=7), pods) == list(fast.placed)
    assert fast.failed == fast.placed.count("") > 0


def test_nothing_is_overbooked_and_allocation_matches_the_pods_placed() -> None:
    nodes = mixed_cluster()
    pods = list(arrivals(mixed_pods(), sum(n.gpus for n in nodes) * 1000, seed=3, target=1.3).pods)
    replay = Replay(nodes, workload_of(pods), "fgd", seed=3)
    result = replay.run(pods)
    for state in replay._nodes:
        assert state.cpu_left >= 0
        assert state.mem_left >= 0
        for device in state.devices:
            assert device.usedcores <= device.totalcore
            assert device.usedmem <= device.totalmem
    placed_demand = sum(spec.gpu_demand for spec, where in zip(pods, result.placed, strict=True) if where)
    assert result.allocated[-1] == pytest.approx(placed_demand * 100 / replay.capacity_milli)
    assert result.arrived[-1] == pytest.approx(
        sum(spec.gpu_demand for spec in pods) * 100 / replay.capacity_milli
    )
    by_name = {n.name: n for n in nodes}
    for spec, where in zip(pods, result.placed, strict=True):
        if where and spec.gpu_spec:
            assert by_name[where].model in spec.gpu_spec


def test_a_pod_that_fits_nowhere_is_dropped_and_later_pods_still_land() -> None:
    nodes = [node("only", gpus=2, cpu=8000)]
    pods = [pod("big", gpus=4), pod("cpu-hungry", cpu=9000), pod("ok", milli=500), pod("ok2", milli=500)]
    result = Replay(nodes, workload_of(pods), "binpack", seed=1).run(pods)
    assert result.placed == ("", "", "only", "only")
    assert result.failed == 2
    assert result.allocated[-1] == pytest.approx(50.0)


def test_binpack_fills_one_node_before_the_next_and_spread_takes_turns() -> None:
    nodes = [node("n1", gpus=2), node("n2", gpus=2)]
    pods = [pod(f"p{i}", milli=300) for i in range(4)]
    packed = Replay(nodes, workload_of(pods), "binpack", seed=1).run(pods).placed
    spread = Replay(nodes, workload_of(pods), "spread", seed=1).run(pods).placed
    assert len(set(packed[:3])) == 1
    assert spread[0] != spread[1]
    assert spread[2] != spread[3]


def test_random_is_reproducible_per_seed_and_varies_across_seeds() -> None:
    nodes = mixed_cluster()
    pods = list(arrivals(mixed_pods(), sum(n.gpus for n in nodes) * 1000, seed=5, target=1.3).pods)
    first = Replay(nodes, workload_of(pods), "random", seed=5).run(pods).placed
    assert Replay(nodes, workload_of(pods), "random", seed=5).run(pods).placed == first
    assert Replay(nodes, workload_of(pods), "random", seed=6).run(pods).placed != first
