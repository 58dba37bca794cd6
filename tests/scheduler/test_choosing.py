"""choose: a pure decision over a cache filled by hand, with no kube client; the kept no-fit answers."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from hami_core import codec
from hami_core.devices import DeviceUsage
from hami_core.hookspecs import ScoringPolicy
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.choosing import Ask
from hami_core.scheduler.choosing import Chooser
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import GPU
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import registered_node

BACKEND = NvidiaLikeBackend()
POLICIES = scoring.BuiltinPolicies().hami_scoring_policies()
BY_NAME = {policy.name: policy for policy in POLICIES}
#: HAMi's GenReason items, sorted as strings.
TWO_WIDE = "1/2 AllocatedCardsInsufficientRequest, 1/2 CardInsufficientMemory"


def fleet(*names: str, devices: int = 1) -> ClusterCache:
    cache = ClusterCache([BACKEND], scoring.node_policies(BY_NAME))
    for name in names:
        cache.apply_node("ADDED", registered_node(name, gpus(name, devices)), NOW)
    return cache


def holding(name: str, node: str, memory: int) -> PodView:
    """A bound pod holding ``memory`` MiB of ``<node>-0``."""
    annotations = {codec.VGPU_NODE: node, BACKEND.keys.allocated: f"{node}-0,NVIDIA,{memory},0:;"}
    return PodView.from_object(make_pod(name, annotations=annotations, node_name=node, phase="Running"))


def ask(chooser: Chooser, name: str, memory: int) -> Ask:
    found = chooser.ask(PodView.from_object(gpu_pod(name, memory=memory)))
    assert found is not None
    return found


def test_choose_needs_only_a_cache_and_the_backends() -> None:
    cache = fleet("a", "b")
    cache.apply_pod("ADDED", holding("busy", "b", 1000))
    chooser = Chooser({"nvidia": BACKEND}, BY_NAME, default_node="binpack", default_device="spread")
    decision = chooser.choose(cache, ask(chooser, "p", 2000), ["a", "b"])
    assert decision.ok
    assert decision.node == "b"  # binpack: the fuller node first
    assert decision.fit is not None
    assert [[d.uuid for d in c] for c in decision.fit.devices.for_backend("nvidia")] == [["b-0"]]
    assert decision.generation == cache.view("b").generation  # type: ignore[union-attr]
    assert decision.failed == {}
    assert cache.allocation(PodView.from_object(gpu_pod("p")).uid) is None  # nothing booked
    assert chooser.ask(PodView.from_object(make_pod("plain"))) is None


def test_a_kept_no_fit_answer_sees_capacity_freed_on_one_node() -> None:
    cache = fleet("a", "b", "c")
    for node in ("a", "b", "c"):
        cache.apply_pod("ADDED", holding(f"hog-{node}", node, 7000))
    chooser = Chooser({"nvidia": BACKEND}, BY_NAME)
    first = chooser.choose(cache, ask(chooser, "p1", 2000), ["a", "b", "c"])
    assert not first.ok
    assert first.failed == dict.fromkeys("abc", "1/1 CardInsufficientMemory")
    again = chooser.choose(cache, ask(chooser, "p2", 2000), ["a", "b", "c", "ghost"])
    assert again.failed == {
        **dict.fromkeys("abc", "1/1 CardInsufficientMemory"),
        "ghost": "node unregistered",
    }
    assert again.evaluated < first.evaluated  # answered from the kept reasons
    cache.apply_pod("DELETED", holding("hog-b", "b", 7000))
    freed = chooser.choose(cache, ask(chooser, "p3", 2000), ["a", "b", "c"])
    assert (freed.ok, freed.node) == (True, "b")


def test_a_kept_no_fit_answer_follows_a_node_whose_reason_changed_or_that_left() -> None:
    cache = fleet("a", "b", devices=2)
    for node in ("a", "b"):
        cache.apply_pod("ADDED", holding(f"hog-{node}", node, 7000))
    chooser = Chooser({"nvidia": BACKEND}, BY_NAME)
    wide = gpu_pod("p", count=2, memory=4000)
    first = chooser.choose(cache, _asked(chooser, wide), ["a", "b"])
    assert first.failed == dict.fromkeys("ab", TWO_WIDE)
    cache.apply_node("DELETED", registered_node("a", []), NOW)
    cache.apply_node("ADDED", registered_node("c", gpus("c", 1)), NOW)
    later = chooser.choose(cache, _asked(chooser, wide), ["a", "b", "c"])
    assert later.failed == {
        "a": "node unregistered",
        "b": TWO_WIDE,
        "c": "NodeInsufficientDevice",
    }


def _asked(chooser: Chooser, pod: object) -> Ask:
    found = chooser.ask(PodView.from_object(pod))
    assert found is not None
    return found


def test_a_reason_found_without_ordering_devices_is_the_ordered_fits_reason() -> None:
    rng = random.Random(7)
    chooser = Chooser({"nvidia": BACKEND}, BY_NAME)
    checked = 0
    for case in range(300):
        cache = fleet()
        node = f"n{case}"
        cache.apply_node(
            "ADDED", registered_node(node, gpus(node, rng.randint(1, 4), count=rng.randint(1, 3))), NOW
        )
        for held in range(rng.randint(0, 6)):
            device = f"{node}-{rng.randint(0, 3)}"
            value = f"{device},NVIDIA,{rng.randint(0, 8000)},{rng.choice((0, 30, 100))}:;"
            annotations = {codec.VGPU_NODE: node, BACKEND.keys.allocated: value}
            pod = make_pod(f"h{held}", annotations=annotations, node_name=node, phase="Running")
            pod["metadata"]["uid"] = f"{case}-{held}"
            cache.apply_pod("ADDED", PodView.from_object(pod))
        policy = rng.choice(("spread", "binpack", "topology-aware", "mutex"))
        pod = gpu_pod(
            "p",
            count=rng.randint(1, 4),
            memory=rng.choice((None, 1000, 6000)),
            cores=rng.choice((None, 50, 100)),
            annotations={codec.GPU_SCHEDULER_POLICY: policy},
        )
        asked = _asked(chooser, pod)
        view = cache.view(node)
        assert view is not None
        fit = chooser.fit(asked, view)
        shortcut = chooser._reason_unordered(asked, view)
        assert shortcut == (None if fit.ok else fit.reason)
        checked += not fit.ok
    assert checked > 50


@attrs.define
class Recorder:
    """A placement policy that prefers the node with the most free CPU and records what it is given."""

    deterministic: bool = True
    orders: list[tuple[int | None, int]] = attrs.Factory(list)
    scores: list[tuple[int | None, int, int | None]] = attrs.Factory(list)

    def revision(self, pod: PodShape) -> int:
        return 0

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        self.orders.append((node.cpu_left, pod.cpu))
        return node.devices

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        self.scores.append((before.cpu_left, pod.cpu, after.cpu_left))
        return float(before.cpu_left or 0)


def test_a_placement_policy_is_given_the_nodes_free_cpu_and_the_pods_cpu() -> None:
    recorder = Recorder()
    policies = {**BY_NAME, "cpu": ScoringPolicy("cpu", "node", lambda devices: 0.0, placement=recorder)}
    cache = ClusterCache([BACKEND], scoring.node_policies(policies))
    for name, cpu in (("a", "8"), ("b", "16")):
        node = registered_node(name, gpus(name, 1))
        node["status"]["allocatable"]["cpu"] = cpu
        cache.apply_node("ADDED", node, NOW)
    busy = make_pod(
        "busy", containers=[make_container(requests={"cpu": "12"})], node_name="b", phase="Running"
    )
    cache.apply_pod("ADDED", PodView.from_object(busy))
    chooser = Chooser({"nvidia": BACKEND}, policies, default_node="cpu")

    def gpu_and_cpu(name: str) -> Ask:
        container = make_container(limits={GPU: 1, MEM: 1000}, requests={"cpu": "1500m"})
        return _asked(chooser, make_pod(name, containers=[container]))

    first = gpu_and_cpu("p1")
    # The policy sees the request to a power of two of cores, so near-equal requests share a kind.
    assert (first.request.cpu, first.placement_cpu) == (1500, 2000)
    assert chooser.choose(cache, first, ["a", "b"]).node == "a"  # 8000 free against 4000
    # Each node is fitted once for the ranking; the winner once more when chosen (fits are not kept).
    assert sorted(recorder.orders) == [(4000, 2000), (8000, 2000), (8000, 2000)]
    assert sorted(recorder.scores) == [(4000, 2000, 2000), (8000, 2000, 6000)]
    # A CPU-only pod lands on a: the kind's kept ranking refits a (only a) and now prefers b.
    recorder.scores.clear()
    hog = make_pod("hog", containers=[make_container(requests={"cpu": "7"})], node_name="a", phase="Running")
    cache.apply_pod("ADDED", PodView.from_object(hog))
    assert chooser.choose(cache, gpu_and_cpu("p2"), ["a", "b"]).node == "b"
    assert recorder.scores == [(1000, 2000, 0)]


def test_the_dry_run_gives_a_placement_policy_the_node_objects_allocatable_cpu() -> None:
    recorder = Recorder()
    policies = {**BY_NAME, "cpu": ScoringPolicy("cpu", "node", lambda devices: 0.0, placement=recorder)}
    chooser = Chooser({"nvidia": BACKEND}, policies, default_node="cpu")
    node = registered_node("a", gpus("a", 1))
    node["status"]["allocatable"]["cpu"] = "2"
    container = make_container(limits={GPU: 1, MEM: 1000}, requests={"cpu": "500m"})
    decision = chooser.choose_transient(_asked(chooser, make_pod("p", containers=[container])), [node])
    assert decision.node == "a"
    assert recorder.scores == [(2000, 500, 1500)]  # 500m is a power of two of cores already
