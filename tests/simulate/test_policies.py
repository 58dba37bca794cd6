from __future__ import annotations

import random

import pytest

from hami_core.config import HamiConfig
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceUsage
from hami_core.errors import BackendLoadError
from hami_core.hookspecs import ScoringPolicy
from hami_core.hookspecs import hookimpl
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import booked
from hami_core.plugins import load_backends
from hami_core.scheduler.policies import baselines
from hami_core.scheduler.policies import registry
from hami_core.scheduler.policies.fgd import Fgd
from hami_core.scheduler.policies.fragmentation import RecentWorkload
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.scheduler.policies.fragmentation import sigmoid_score
from hami_core.scheduler.scoring import BuiltinPolicies


def gpu(index: int, used_milli: int = 0, model: str = "MOCK-G2") -> DeviceUsage:
    return DeviceUsage(
        id=f"g{index}",
        index=index,
        count=100,
        used=1 if used_milli else 0,
        totalmem=20_000,
        usedmem=20_000 * used_milli // 1000,
        totalcore=100,
        usedcores=used_milli // 10,
        type=model,
    )


def node(*used: int, cpu: int | None = 32_000, model: str = "MOCK-G2") -> NodeState:
    return NodeState(devices=tuple(gpu(i, u, model) for i, u in enumerate(used)), cpu_left=cpu)


SHARE = PodShape(cpu=1000, gpus=1, milli=500)
WHOLE = PodShape(cpu=1000, gpus=1, milli=1000)
CPU_ONLY = PodShape(cpu=4000, gpus=0, milli=0)


def test_a_devices_free_share_is_the_scarcer_of_cores_and_memory() -> None:
    assert gpu(0, 300).free_milli == 700
    squeezed = DeviceUsage(id="x", count=10, used=1, totalmem=1000, usedmem=900, totalcore=100, usedcores=10)
    assert squeezed.free_milli == 100
    assert DeviceUsage(id="y", count=1, used=1, totalmem=10, totalcore=100).free_milli == 0


def test_fragment_follows_the_cases_of_the_measure() -> None:
    workload = Workload([(SHARE, 1.0)])
    # 700 free on GPU 0 hosts the share pod; GPU 1's 300 is too small: that is the fragment.
    assert workload.node_fragment(node(300, 700)) == 300
    # Not enough CPU for the task: all idle GPU is fragment.
    assert workload.node_fragment(node(300, 700, cpu=500)) == 1000
    # A CPU-only task cannot use any GPU.
    assert Workload([(CPU_ONLY, 1.0)]).node_fragment(node(0, 0)) == 2000
    # A model the task does not accept.
    constrained = PodShape(cpu=0, gpus=1, milli=100, models=frozenset({"MOCK-T4"}))
    assert Workload([(constrained, 1.0)]).node_fragment(node(0)) == 1000
    # Two whole GPUs need two idle ones.
    assert Workload([(PodShape(cpu=0, gpus=2, milli=1000), 1.0)]).node_fragment(node(0, 500, 0)) == 500
    assert Workload([(PodShape(cpu=0, gpus=2, milli=1000), 1.0)]).node_fragment(node(0, 500)) == 1500
    # Shares weigh in: half the tasks find 300 too small, the other half (250) do not.
    mixed = Workload([(SHARE, 1.0), (PodShape(cpu=0, gpus=1, milli=250), 1.0)])
    assert mixed.node_fragment(node(700, 700)) == pytest.approx(0.5 * 600 + 0.5 * 0)
    assert mixed.fragment(None, [300, 300], "MOCK-G2") == pytest.approx(300)


def test_fgd_score_is_the_truncated_sigmoid_of_the_decrease() -> None:
    assert sigmoid_score(1000, 1000) == 50
    assert sigmoid_score(1000, 1030) == 49
    assert sigmoid_score(1000, 900) == 52
    assert sigmoid_score(0, 10**9) == 0


def test_fgd_puts_a_share_where_fragmentation_grows_least() -> None:
    workload = Workload([(SHARE, 0.5), (PodShape(cpu=0, gpus=1, milli=300), 0.5)])
    state = node(500, 0, 200)  # free 500, 1000, 800
    order = Fgd(workload).order(state, PodShape(cpu=0, gpus=1, milli=500))
    # GPU 2 would keep 300, too small for the 500 class; GPUs 0 and 1 grow nothing: the first wins.
    assert order[-1].index == 0
    order = Fgd(workload).order(state, PodShape(cpu=0, gpus=1, milli=200))
    # GPU 0 would keep 300 (too small for 500); GPUs 1 and 2 grow nothing: the first wins.
    assert order[-1].index == 1


def test_fgd_prefers_the_node_whose_fragment_grows_least() -> None:
    workload = Workload([(SHARE, 0.5), (PodShape(cpu=0, gpus=1, milli=600), 0.5)])
    policy = Fgd(workload)
    # Filling a half-used GPU lowers the fragment by 250 (the 600 class lost half its useless room);
    # breaking into an idle one raises it by 250 (500 left is too small for the 600 class).
    filling = policy.score(node(500, 500), SHARE, node(1000, 500))
    breaking = policy.score(node(0, 0), SHARE, node(500, 0))
    assert (filling, breaking) == (sigmoid_score(500, 250), sigmoid_score(0, 250)) == (56, 43)


def test_recent_workload_learns_shapes_with_equal_shares() -> None:
    recent = RecentWorkload()
    recent.see(SHARE)
    workload = recent.see(WHOLE)
    assert dict(workload.classes) == {SHARE: 0.5, WHOLE: 0.5}
    assert recent.see(SHARE) is workload


def test_a_burst_of_new_shapes_is_published_at_doubling_gaps_and_a_late_shape_at_once() -> None:
    recent = RecentWorkload()
    published = []
    for milli in range(10, 510, 10):  # 50 pods, each of a new shape
        revision = recent.revision
        recent.see(PodShape(cpu=0, gpus=1, milli=milli))
        if recent.revision != revision:
            published.append(milli // 10)
    # Pods 1, 2, 4, 8, 16 and 32 publish; the shapes in between wait for the next of them.
    assert published == [1, 2, 4, 8, 16, 32]
    assert len(recent.current.classes) == 32
    revision = recent.revision
    known = PodShape(cpu=0, gpus=1, milli=10)
    for _ in range(200):  # a quiet stretch of a known shape
        recent.see(known)
    # The burst's last 18 shapes waited for pod 64; nothing else was new.
    assert recent.revision == revision + 1
    assert len(recent.current.classes) == 50
    revision = recent.revision
    late = PodShape(cpu=0, gpus=2, milli=1000)
    assert late in dict(recent.see(late).classes)
    assert recent.revision == revision + 1


def test_fgd_scores_with_the_workload_published_at_its_revision() -> None:
    policy = Fgd()
    assert policy.revision(SHARE) == 1
    assert dict(policy.workload.classes) == {SHARE: 1.0}
    assert policy.revision(WHOLE) == 2  # the second pod is due: one pod's gap
    assert policy.revision(PodShape(cpu=0, gpus=1, milli=300)) == 2  # due at the fourth pod
    assert dict(policy.workload.classes) == {SHARE: 0.5, WHOLE: 0.5}


def test_baseline_scores_match_the_published_rules() -> None:
    empty = node(0, 0)
    used = node(1000, 500)
    assert baselines.BestFit().score(used, SHARE, used) > baselines.BestFit().score(empty, SHARE, empty)
    big = PodShape(cpu=64_000, gpus=8, milli=1000)
    full = node(*[0] * 8, cpu=128_000)
    assert baselines.DotProduct().score(full, big, full) == int(100 * (1 - (0.5 + 1.0) / 2))
    assert baselines.DotProduct().score(node(*[0] * 8, cpu=0), big, full) == int(100 * (1 - 1.0 / 2))
    packing = baselines.GpuPacking()
    assert packing.score(empty, SHARE, empty) == 100 // 3 - 2
    assert packing.score(used, SHARE, used) == 100 - 50 // 10
    assert packing.score(node(500, 0), WHOLE, node(500, 0)) == 49
    assert packing.score(used, CPU_ONLY, used) == 0
    clustering = baselines.GpuClustering()
    tagged = NodeState(devices=used.devices, cpu_left=0, tags=frozenset({"share-gpu"}))
    mixed = NodeState(devices=used.devices, cpu_left=0, tags=frozenset({"share-gpu", "1-gpu"}))
    bonus = 25 * (8000 - 500) // 8000
    assert clustering.score(tagged, SHARE, tagged) == 75 + bonus
    assert clustering.score(mixed, SHARE, mixed) == 50 + bonus
    assert clustering.score(tagged, WHOLE, tagged) == bonus
    assert clustering.score(empty, WHOLE, empty) == 25 + 25 * (8000 - 2000) // 8000
    assert clustering.score(empty, CPU_ONLY, empty) == 0


def test_best_device_choice_is_tightest_then_lowest_index() -> None:
    devices = node(0, 600, 600, 0).devices
    assert [d.index for d in baselines.BestFit().order(node(0, 600, 600, 0), SHARE)][-2:] == [2, 1]
    assert baselines.device_choice(devices, 3)[-1].index == 3


def test_random_placement_draws_from_its_seed() -> None:
    first = baselines.RandomPlacement(random.Random(5))
    second = baselines.RandomPlacement(random.Random(5))
    state = node(0, 0, 0, 0)
    assert [d.index for d in first.order(state, SHARE)] == [d.index for d in second.order(state, SHARE)]
    assert not first.deterministic


def test_policies_are_registered_through_the_hook() -> None:
    loaded = load_backends(HamiConfig(), plugins=[BuiltinPolicies(), registry.PlacementPolicies()])
    names = {registry.RANDOM, registry.DOTPROD, registry.GPU_CLUSTERING, registry.GPU_PACKING}
    names |= {registry.BESTFIT, registry.FGD, registry.FGD_STRAND, "binpack", "spread"}
    assert set(loaded.scoring_policies) == names
    fgd = loaded.scoring_policies[registry.FGD]
    assert fgd.kind == "node"
    assert fgd.placement is not None

    class Rival:
        @hookimpl
        def hami_scoring_policies(self) -> list[ScoringPolicy]:
            return [ScoringPolicy(name="fgd", kind="node", score=lambda devices: 0.0)]

    with pytest.raises(BackendLoadError, match="'fgd'"):
        load_backends(HamiConfig(), plugins=[registry.PlacementPolicies(), Rival()])


def test_the_cpu_after_a_pod_never_goes_below_zero_and_unknown_stays_unknown() -> None:
    # The extender's rounded request (4 cores for 3.5) may exceed what kube-scheduler found free.
    assert NodeState(devices=(), cpu_left=3000).cpu_after(4000) == 0
    assert NodeState(devices=(), cpu_left=6000).cpu_after(4000) == 2000
    assert NodeState(devices=()).cpu_after(4000) is None


def test_booking_a_container_adds_each_device_it_was_given_once_per_occurrence() -> None:
    devices = (gpu(0), gpu(1, 300), gpu(2))
    given = (
        ContainerDevice(uuid="g1", type="MOCK-G2", usedmem=2000, usedcores=10),
        ContainerDevice(uuid="g2", type="MOCK-G2", usedmem=1000, usedcores=5),
    )
    after = booked(devices, given)
    assert after[0] is devices[0]
    assert [(d.used, d.usedmem, d.usedcores) for d in after[1:]] == [(2, 8000, 40), (1, 1000, 5)]
    twice = booked(devices, (given[1], given[1]))  # one container given the same device twice
    assert (twice[2].used, twice[2].usedmem, twice[2].usedcores) == (2, 2000, 10)
    assert twice[:2] == devices[:2]
