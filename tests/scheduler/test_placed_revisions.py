"""Kept placement rankings across a learning policy's revisions: kept fits are re-scored, not redone."""

from __future__ import annotations

import random
from collections.abc import Callable
from collections.abc import Sequence

import pytest

from hami_core import allocation
from hami_core import codec
from hami_core.devices import DeviceUsage
from hami_core.hookspecs import ScoringPolicy
from hami_core.placement import NodeState
from hami_core.placement import Placement
from hami_core.placement import PodShape
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.choosing import Chooser
from hami_core.scheduler.choosing import Decision
from hami_core.scheduler.policies.fgd import Fgd
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import registered_node

BACKEND = NvidiaLikeBackend()
#: Three workloads that order a share's devices differently on some nodes and alike on others.
WORKLOADS = (
    Workload.of_pods([PodShape(cpu=0, gpus=1, milli=500), PodShape(cpu=0, gpus=1, milli=1000)]),
    Workload.of_pods([PodShape(cpu=0, gpus=1, milli=300), PodShape(cpu=0, gpus=2, milli=1000)]),
    Workload.of_pods([PodShape(cpu=0, gpus=1, milli=700), PodShape(cpu=0, gpus=1, milli=200)]),
)


class Revised:
    """FGD under the workload the test selects; the revision is the workload's position from 1."""

    deterministic = True

    def __init__(self) -> None:
        self.policies = [Fgd(workload) for workload in WORKLOADS]
        self.current = 0

    def revision(self, pod: PodShape) -> int:
        return self.current + 1

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        return self.policies[self.current].order(node, pod)

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        return self.policies[self.current].score(before, pod, after)


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device requests fitted (one entry per call of the shared per-container fit)."""
    calls: list[str] = []
    real = allocation.fit_container

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("fit")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(allocation, "fit_container", counting)
    return calls


def setup(
    nodes: int, seed: int, placement: Placement | None = None
) -> tuple[ClusterCache, Revised, Callable[[], Chooser]]:
    """``nodes`` nodes of 4 GPUs, some partly held, and new choosers placing by ``placement`` or a :class:`Revised`."""
    revised = Revised()
    policy = ScoringPolicy("placed", "node", lambda devices: 0.0, placement=placement or revised)
    policies = {"placed": policy}
    cache = ClusterCache([BACKEND], scoring.node_policies(policies))
    rng = random.Random(seed)
    for index in range(nodes):
        name = f"n{index}"
        cache.apply_node("ADDED", registered_node(name, gpus(name, 4)), NOW)
        for device in range(4):
            held = rng.choice((0, 0, 2000, 4000, 6000))
            if held:
                allocated = f"{name}-{device},NVIDIA,{held},{held // 80}:;"
                cache.apply_pod("ADDED", bound(f"pre-{name}-{device}", name, allocated))
    return cache, revised, lambda: Chooser({"nvidia": BACKEND}, policies, default_node="placed")


def bound(name: str, node: str, allocated: str) -> PodView:
    annotations = {codec.VGPU_NODE: node, BACKEND.keys.allocated: allocated}
    return PodView.from_object(make_pod(name, annotations=annotations, node_name=node, phase="Running"))


def devices_of(decision: Decision) -> list[list[str]]:
    assert decision.fit is not None
    return [[device.uuid for device in container] for container in decision.fit.devices.for_backend("nvidia")]


def choose(chooser: Chooser, cache: ClusterCache, pod: dict[str, object], names: list[str]) -> Decision:
    ask = chooser.ask(PodView.from_object(pod))  # type: ignore[arg-type]
    assert ask is not None
    return chooser.choose(cache, ask, names)


@pytest.mark.parametrize("seed", range(8))
def test_rankings_carried_across_revisions_choose_what_a_fresh_chooser_chooses(seed: int) -> None:
    cache, revised, chooser_of = setup(12, seed)
    names = [f"n{index}" for index in range(12)]
    kept = chooser_of()
    rng = random.Random(seed)
    for step in range(60):
        if rng.random() < 0.3:
            revised.current = rng.randrange(len(WORKLOADS))
        percent = rng.choice((20, 30, 50, 70))
        pod = rng.choice(
            (
                gpu_pod(f"p{step}", percent=percent, cores=percent),
                gpu_pod(f"p{step}", count=rng.choice((1, 2))),
            )
        )
        expected = choose(chooser_of(), cache, pod, names)  # no kept rankings: every node fitted
        decision = choose(kept, cache, pod, names)
        assert decision.node == expected.node
        if not decision.ok:
            continue
        assert devices_of(decision) == devices_of(expected)
        assert decision.fit is not None
        allocated = codec.encode_pod_devices(decision.fit.devices.for_backend("nvidia"))
        cache.apply_pod("ADDED", bound(f"p{step}", decision.node, allocated))


def test_a_new_revision_rescores_unchanged_nodes_without_fitting_them_again(fits: list[str]) -> None:
    cache, revised, chooser_of = setup(8, 1)
    names = [f"n{index}" for index in range(8)]
    chooser = chooser_of()
    whole = gpu_pod("whole", count=1)
    choose(chooser, cache, whole, names)
    first = len(fits)
    assert first == 8 + 1  # every node fitted for the ranking, the winner once more when chosen
    fits.clear()
    revised.current = 1
    decision = choose(chooser, cache, whole, names)
    # A whole device's order ignores the workload: the kept fits stand, only the winner is fitted again.
    assert fits == ["fit"]
    assert decision.node == choose(chooser_of(), cache, whole, names).node


def test_a_policy_that_never_changes_keeps_nothing_for_a_later_revision() -> None:
    cache, _, chooser_of = setup(4, 2, Fgd(WORKLOADS[0]))
    chooser = chooser_of()
    choose(chooser, cache, gpu_pod("whole", count=1), [f"n{index}" for index in range(4)])
    (ranking,) = chooser._rankings._kinds.values()
    assert len(ranking.outcomes) == 4
    assert all(outcome.order is None for outcome in ranking.outcomes.values())
