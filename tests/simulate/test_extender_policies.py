"""The placement policies in the extender's filter: chosen by annotation or by the config default."""

from __future__ import annotations

from collections.abc import Sequence

from hami_core import codec
from hami_core.config import SchedulerConfig
from hami_core.pods import PodView
from hami_core.scheduler.choosing import Chooser
from hami_core.scheduler.filtering import FilterOutcome
from tests.scheduler.fakes import Harness
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import annotations_of
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node

KEYS = NvidiaLikeBackend().keys


def two_nodes(config: SchedulerConfig | None = None) -> Harness:
    made = harness(config=config)
    made.add_node(registered_node("node-a", gpus("A", 2)))
    made.add_node(registered_node("node-b", gpus("B", 2)))
    return made


def schedule(made: Harness, pod: dict[str, object], names: Sequence[str] | None = None) -> FilterOutcome:
    created = made.add_pod(pod)  # type: ignore[arg-type]
    return made.filtering.filter(
        PodView.from_object(created), names if names is not None else made.node_names()
    )


def share(name: str, percent: int, policy: str | None = None) -> dict[str, object]:
    annotations = {codec.NODE_SCHEDULER_POLICY: policy} if policy else None
    return gpu_pod(name, percent=percent, cores=percent, annotations=annotations)  # type: ignore[return-value]


def test_a_fragmentation_aware_pod_fills_the_gap_instead_of_breaking_an_idle_gpu() -> None:
    made = two_nodes()
    # node-b's first GPU keeps 60 % free after this pod.
    assert schedule(made, share("first", 40), names=["node-b"]).node == "node-b"
    outcome = schedule(made, share("second", 60, "fgd"))
    # On node-a the 60 % share would leave 40 % on an idle GPU, too small for a 60 % pod: fragment.
    # On node-b it fills the gap exactly; the name order alone would have picked node-a.
    assert outcome.result == "scheduled"
    assert outcome.node == "node-b"
    first_gpu = annotations_of(made.kube, "first")[KEYS.to_allocate].split(",")[0]
    assert annotations_of(made.kube, "second")[KEYS.to_allocate].split(",")[0] == first_gpu
    assert outcome.evaluated == 2


def test_spread_picks_the_emptier_node_for_contrast() -> None:
    made = two_nodes()
    schedule(made, share("first", 40), names=["node-b"])
    assert schedule(made, share("second", 60, "spread")).node == "node-a"


def test_the_config_default_can_be_a_placement_policy() -> None:
    made = two_nodes(SchedulerConfig(node_scheduler_policy="fgd"))
    schedule(made, share("first", 40), names=["node-b"])
    assert schedule(made, share("second", 60)).node == "node-b"


def test_a_placement_policy_still_reports_why_each_node_failed() -> None:
    made = two_nodes()
    outcome = schedule(made, gpu_pod("big", count=3, annotations={codec.NODE_SCHEDULER_POLICY: "fgd"}))  # type: ignore[arg-type]
    assert outcome.result == "unschedulable"
    assert set(outcome.failed) == {"node-a", "node-b"}
    assert all("NodeInsufficientDevice" in reason for reason in outcome.failed.values())


def test_fgd_keeps_its_ranking_and_refits_only_the_nodes_that_changed() -> None:
    made = harness(config=SchedulerConfig(node_scheduler_policy="fgd"))
    for index in range(8):
        made.add_node(registered_node(f"node-{index}", gpus(f"G{index}", 2)))
    names = made.node_names()
    shapes = [40, 60, 30]
    for step in range(18):
        pod = made.add_pod(share(f"pod-{step}", shapes[step % len(shapes)]))  # type: ignore[arg-type]
        view = PodView.from_object(pod)
        # A chooser without kept rankings fits every node: the kept ranking must agree with it.
        fresh = Chooser(made.backends.by_name, made.backends.scoring_policies, default_node="fgd")
        ask = fresh.ask(view)
        assert ask is not None
        expected = fresh.choose(made.cache, ask, names)
        outcome = made.filter(pod, names)
        assert outcome.result == "scheduled"
        assert outcome.node == expected.node
        if step >= 2 * len(shapes):  # every shape seen, and every kind ranked once since
            # Only the nodes changed since this kind's last pod (at most one per pod since) are refitted.
            assert outcome.evaluated <= len(shapes)


def test_fgd_strand_in_the_extender_keeps_cpu_heavy_pods_off_the_node_whose_cpu_runs_out() -> None:
    def cluster(policy: str) -> Harness:
        made = harness(config=SchedulerConfig(node_scheduler_policy=policy))
        for name, cores in (("node-a", "32"), ("node-b", "100")):
            node = registered_node(name, gpus(name[-1].upper(), 8))
            node["status"]["allocatable"]["cpu"] = cores
            made.add_node(node)
        # The learned workload: this 1-core pod and the 8-core one below, 4.5 cores per GPU.
        assert schedule(made, pod("light", "1"), names=["node-b"]).node == "node-b"
        return made

    def pod(name: str, cores: str) -> dict[str, object]:
        made_pod = gpu_pod(name)
        made_pod["spec"]["containers"][0]["resources"]["requests"] = {"cpu": cores}  # type: ignore[index]
        return made_pod  # type: ignore[return-value]

    # FGD sees no fragment either way (whole GPUs, CPU for more pods on both) and takes the name order.
    assert schedule(cluster("fgd"), pod("heavy", "8")).node == "node-a"
    # On node-a 24 cores would be left for 7 idle GPUs: about 1.7 GPUs its CPU cannot feed.
    assert schedule(cluster("fgd-strand"), pod("heavy", "8")).node == "node-b"
