from __future__ import annotations

from hami_core.simulate.workload import arrivals
from hami_core.simulate.workload import typical_classes
from tests.simulate.helpers import pod


def test_typical_classes_keep_the_popular_95_percent_renormalised() -> None:
    pods = [pod(f"a{i}", milli=500) for i in range(60)] + [pod(f"b{i}", milli=250) for i in range(36)]
    pods += [pod(f"c{i}", gpus=0) for i in range(3)] + [pod("d", gpus=2)]
    kept = typical_classes(pods)
    assert [(spec.gpu_milli, spec.num_gpu) for spec, _ in kept] == [(500, 1), (250, 1)]
    assert [round(share, 4) for _, share in kept] == [0.625, 0.375]


def test_arrivals_shuffle_then_append_clones_up_to_the_target() -> None:
    pods = [pod(f"p{i}", milli=500) for i in range(10)]  # 5 GPUs of demand
    run = arrivals(pods, capacity_milli=4000, seed=1, target=1.3)
    assert run.original == 10
    assert sorted(p.name for p in run.pods[:10]) == sorted(p.name for p in pods)
    assert run.pods[:10] != tuple(pods) or arrivals(pods, 4000, 2, 1.3).pods[:10] != tuple(pods)
    assert sum(p.gpu_demand for p in run.pods) == 5000  # no 0.5-GPU clone fits under 5.2 GPUs
    inflated = arrivals(pods, capacity_milli=10_000, seed=1, target=1.3)
    assert sum(p.gpu_demand for p in inflated.pods) == 13_000
    assert all("-clone-" in p.name for p in inflated.pods[10:])
    assert arrivals(pods, 10_000, 1, 1.3) == inflated
    assert arrivals(pods, 10_000, 2, 1.3) != inflated


def test_arrivals_above_the_target_lose_random_pods() -> None:
    pods = [pod(f"p{i}", gpus=2) for i in range(10)]  # 20 GPUs
    run = arrivals(pods, capacity_milli=10_000, seed=3, target=1.3)
    assert sum(p.gpu_demand for p in run.pods) == 12_000
    assert run.original == 6


def test_cpu_only_workloads_do_not_loop() -> None:
    pods = [pod("c", gpus=0)]
    assert arrivals(pods, 1000, 1, 1.3).pods == tuple(pods)
