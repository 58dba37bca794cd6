"""``fgd-strand``: FGD with the GPU a node's free CPU cannot feed counted against it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hami_core.placement import PodShape
from hami_core.placement import coarse_cpu
from hami_core.scheduler.policies.fgd import Fgd
from hami_core.scheduler.policies.fragmentation import RecentWorkload
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.scheduler.policies.fragmentation import sigmoid_score
from hami_core.scheduler.policies.stranding import FgdStrand
from hami_core.scheduler.policies.stranding import stranded
from hami_core.scheduler.policies.stranding import tie_break
from tests.simulate.test_policies import node

#: One GPU with 10 cores, and one with 2.
HEAVY = PodShape(cpu=10_000, gpus=1, milli=1000)
LIGHT = PodShape(cpu=2_000, gpus=1, milli=1000)


def test_cpu_per_milli_is_the_workloads_cpu_over_its_device_demand() -> None:
    workload = Workload([(HEAVY, 1.0), (PodShape(cpu=6_000, gpus=2, milli=1000), 1.0)])
    assert workload.cpu_per_milli == pytest.approx((10_000 + 6_000) / (1000 + 2000))
    assert Workload([(PodShape(cpu=4_000, gpus=0, milli=0), 1.0)]).cpu_per_milli == 0


def test_stranded_gpu_is_the_idle_capacity_the_free_cpu_cannot_feed() -> None:
    workload = Workload([(HEAVY, 1.0)])
    # Four idle GPUs, 20 cores: the cores feed two GPUs at 10 cores each; two are stranded.
    assert stranded(workload, 20_000, (1000, 1000, 1000, 1000)) == 2000
    assert stranded(workload, 64_000, (1000, 1000)) == 0
    assert stranded(workload, None, (1000, 1000)) == 0
    assert stranded(Workload(()), 0, (1000,)) == 0


def test_stranded_gpu_counts_as_fragment_where_no_pod_is_bound_to_the_model() -> None:
    workload = Workload([(LIGHT, 1.0)])  # 2 cores per GPU
    policy = FgdStrand(workload)
    fgd = Fgd(workload)
    # Both nodes still host the workload's pods after this heavy one, so FGD ties them; but the
    # CPU-poor one is left with 4 cores for 3 idle GPUs: one GPU (1000 milli) stranded.
    rich = (node(0, 0, 0, 0, cpu=64_000), node(1000, 0, 0, 0, cpu=54_000))
    poor = (node(0, 0, 0, 0, cpu=14_000), node(1000, 0, 0, 0, cpu=4_000))
    assert stranded(workload, 4_000, poor[1].frees()) == 1000
    assert fgd.score(rich[0], HEAVY, rich[1]) == fgd.score(poor[0], HEAVY, poor[1]) == 50
    assert policy.score(rich[0], HEAVY, rich[1]) == sigmoid_score(0, 0) + 1.0
    assert policy.score(poor[0], HEAVY, poor[1]) == sigmoid_score(0, 1000) + 1.0
    # A light pod that lets a stranded node feed its GPUs again is rewarded as a fragment decrease.
    before, after = node(0, 0, 0, cpu=4_000), node(1000, 0, 0, cpu=3_000)
    shed = stranded(workload, 4_000, before.frees()) - stranded(workload, 3_000, after.frees())
    assert shed == 500
    assert policy.score(before, LIGHT, after) == sigmoid_score(1000, 500) + 1.0


def test_on_a_contested_model_fgd_decides_and_stranding_growth_only_breaks_ties() -> None:
    bound = PodShape(cpu=2_000, gpus=1, milli=1000, models=frozenset({"MOCK-G2"}))
    workload = Workload([(LIGHT, 0.5), (bound, 0.5)])
    assert workload.bound_models == {"MOCK-G2"}
    policy = FgdStrand(workload)
    fgd = Fgd(workload)
    rich = (node(0, 0, 0, 0, cpu=64_000), node(1000, 0, 0, 0, cpu=54_000))
    poor = (node(0, 0, 0, 0, cpu=14_000), node(1000, 0, 0, 0, cpu=4_000))
    base = fgd.score(rich[0], HEAVY, rich[1])
    assert fgd.score(poor[0], HEAVY, poor[1]) == base
    assert policy.score(rich[0], HEAVY, rich[1]) == base + 1.0
    assert policy.score(poor[0], HEAVY, poor[1]) == base + tie_break(1000)
    # Un-stranding a node earns nothing there: growth alone counts.
    before, after = node(0, 0, 0, cpu=4_000), node(1000, 0, 0, cpu=3_000)
    assert policy.score(before, LIGHT, after) == fgd.score(before, LIGHT, after) + 1.0
    # Where FGD prefers a node by whole points, no stranding growth moves the pod off it: filling a
    # half-used GPU beats opening an idle one although it leaves 2 cores for 3 idle GPUs.
    shares = Workload(
        [
            (PodShape(cpu=2000, gpus=1, milli=500, models=frozenset({"MOCK-G2"})), 0.5),
            (PodShape(cpu=2000, gpus=1, milli=600), 0.5),
        ]
    )
    pod = PodShape(cpu=10_000, gpus=1, milli=500)
    filling = (node(500, 0, 0, 0, cpu=12_000), node(1000, 0, 0, 0, cpu=2_000))
    opening = (node(0, 0, 0, 0, cpu=64_000), node(500, 0, 0, 0, cpu=54_000))
    assert stranded(shares, 2_000, filling[1].frees()) > stranded(shares, 12_000, filling[0].frees())
    assert Fgd(shares).score(filling[0], pod, filling[1]) > Fgd(shares).score(opening[0], pod, opening[1])
    strand = FgdStrand(shares)
    assert strand.score(filling[0], pod, filling[1]) > strand.score(opening[0], pod, opening[1])


@given(st.floats(min_value=0, max_value=64_000), st.floats(min_value=0, max_value=64_000))
def test_tie_break_orders_growth_and_stays_inside_one_fgd_point(a: float, b: float) -> None:
    assert 0 < tie_break(a) <= 1
    if round(a) < round(b):
        assert tie_break(a) > tie_break(b)
    elif round(a) == round(b):
        assert tie_break(a) == tie_break(b)


@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=40_000),
)
def test_fragment_memo_keyed_on_cpu_steps_matches_a_fresh_computation(frees: list[int], cpu: int) -> None:
    shapes = [(PodShape(cpu=c, gpus=1, milli=m), 1.0) for c, m in ((0, 300), (4000, 500), (16_000, 1000))]
    memoised = Workload(shapes)
    rng = random.Random(cpu)
    for _ in range(3):  # neighbours in the same CPU step must not read a wrong memo entry
        memoised.fragment(rng.randrange(0, 40_000), frees, "MOCK-G2")
    assert memoised.fragment(cpu, frees, "MOCK-G2") == Workload(shapes).fragment(cpu, frees, "MOCK-G2")


@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=40_000),
    st.sampled_from([100, 300, 500, 900]),
)
def test_share_choice_memo_matches_the_first_best_position(frees: list[int], cpu: int, milli: int) -> None:
    shapes = [(PodShape(cpu=c, gpus=1, milli=m), 1.0) for c, m in ((0, 300), (4000, 500), (16_000, 1000))]
    memoised = Workload(shapes)
    rng = random.Random(cpu)
    for _ in range(3):  # neighbours in the same CPU steps must not read a wrong memo entry
        other = rng.randrange(0, 40_000)
        memoised.best_share(other, other - 2000, tuple(frees), "MOCK-G2", milli)
    fresh = Workload(shapes)
    before = fresh.fragment(cpu, frees, "MOCK-G2")
    values = {
        position: sigmoid_score(
            before,
            fresh.fragment(cpu - 2000, [*frees[:position], free - milli, *frees[position + 1 :]], "MOCK-G2"),
        )
        for position, free in enumerate(frees)
        if free >= milli
    }
    expected = max(values, key=lambda position: (values[position], -position)) if values else None
    assert memoised.best_share(cpu, cpu - 2000, tuple(frees), "MOCK-G2", milli) == expected


def test_recent_workload_keeps_cpu_coarse_so_small_cpu_differences_keep_the_revision() -> None:
    assert [coarse_cpu(c) for c in (0, 100, 1000, 1400, 3000, 11_000, 12_000)] == [
        0,
        250,
        1000,
        1000,
        4000,
        8000,
        16_000,
    ]
    recent = RecentWorkload()
    recent.see(PodShape(cpu=3000, gpus=1, milli=500))
    revision = recent.revision
    recent.see(PodShape(cpu=3500, gpus=1, milli=500))
    assert recent.revision == revision
    recent.see(PodShape(cpu=12_000, gpus=1, milli=500))
    assert recent.revision == revision + 1
