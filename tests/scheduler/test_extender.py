"""The extender verbs: leader and sync gating, errors in the reply, reply shapes, prioritize."""

from __future__ import annotations

import threading
from collections.abc import Callable

from hami_core import codec
from hami_core.pods import PodView
from hami_core.scheduler.extender import Extender
from hami_core.scheduler.metrics import SchedulerMetrics
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import GPU
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import Harness
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node


def extender(
    made: Harness,
    *,
    synced: bool = True,
    leading: bool = True,
    wait_synced: Callable[[float], bool] | None = None,
    sync_wait: float = 0.0,
) -> tuple[Extender, SchedulerMetrics]:
    metrics = SchedulerMetrics(made.cache)
    verbs = Extender(
        made.filtering,
        made.binding,
        made.cache,
        metrics,
        synced=lambda: synced,
        leading=lambda: leading,
        identity="replica-b",
        wait_synced=wait_synced,
        sync_wait=sync_wait,
    )
    return verbs, metrics


def two_nodes() -> Harness:
    made = harness()
    made.add_node(registered_node("a", gpus("A", 1)))
    made.add_node(registered_node("b", gpus("B", 1)))
    return made


def test_a_follower_refuses_filter_and_bind_saying_it_is_not_the_leader() -> None:
    made = two_nodes()
    verbs, _ = extender(made, leading=False)
    pod = made.add_pod(gpu_pod("p", memory=100))
    reply = verbs.filter(PodView.from_object(pod), ["a"], None)
    assert reply["Error"] == "replica-b is not the leader"
    assert reply["NodeNames"] is None
    assert verbs.bind("default", "p", "", "a") == {"Error": "replica-b is not the leader"}
    assert verbs.readiness() == (False, "replica-b is not the leader")


def test_nothing_is_served_before_the_cache_synced() -> None:
    made = two_nodes()
    verbs, _ = extender(made, synced=False)
    reply = verbs.filter(PodView.from_object(made.add_pod(gpu_pod("p", memory=100))), ["a"], None)
    assert reply["Error"] == "the cluster cache has not synced yet"


def test_a_filter_before_the_first_lists_waits_for_them_a_bounded_time() -> None:
    made = two_nodes()
    synced = threading.Event()
    waits: list[float] = []

    def wait_synced(timeout: float) -> bool:
        waits.append(timeout)
        return synced.wait(timeout)

    metrics = SchedulerMetrics(made.cache)
    verbs = Extender(
        made.filtering,
        made.binding,
        made.cache,
        metrics,
        synced=synced.is_set,
        leading=lambda: True,
        wait_synced=wait_synced,
        sync_wait=5.0,
    )
    pod = PodView.from_object(made.add_pod(gpu_pod("p", memory=100)))
    threading.Timer(0.05, synced.set).start()
    assert verbs.filter(pod, ["a"], None)["NodeNames"] == ["a"]
    assert waits == [5.0]
    synced.clear()
    late = PodView.from_object(made.add_pod(gpu_pod("q", memory=100)))
    refused = extender(made, synced=False, wait_synced=lambda timeout: False, sync_wait=0.01)[0]
    assert refused.filter(late, ["b"], None)["Error"] == "the cluster cache has not synced yet"


def test_a_successful_filter_reply_carries_no_failed_nodes() -> None:
    made = two_nodes()
    verbs, _ = extender(made)
    made.filtering.filter(PodView.from_object(made.add_pod(gpu_pod("big", memory=7000))), ["a"])
    made.sync()
    reply = verbs.filter(PodView.from_object(made.add_pod(gpu_pod("p", memory=2000))), ["a", "b"], None)
    assert reply["NodeNames"] == ["b"]
    assert reply["FailedNodes"] is None
    assert reply["Error"] == ""


def test_prioritize_resolves_an_unknown_or_empty_policy_like_filter() -> None:
    made = two_nodes()
    verbs, _ = extender(made)
    made.filtering.filter(PodView.from_object(made.add_pod(gpu_pod("seed", memory=4000))), ["a"])
    made.sync()
    for value in ("", "fastest"):
        pod = gpu_pod("p", memory=100, annotations={codec.NODE_SCHEDULER_POLICY: value})
        assert [entry["Score"] for entry in verbs.prioritize(PodView.from_object(pod), ["a", "b"])] == [10, 0]


def test_a_scheduled_pod_gets_one_node_name_and_is_then_bound() -> None:
    made = two_nodes()
    verbs, metrics = extender(made)
    pod = made.add_pod(gpu_pod("p", memory=100))
    reply = verbs.filter(PodView.from_object(pod), ["a", "b"], None)
    assert reply == {
        "Nodes": None,
        "NodeNames": ["a"],
        "FailedNodes": None,
        "FailedAndUnresolvableNodes": None,
        "Error": "",
    }
    made.sync()
    assert verbs.bind("default", "p", pod["metadata"]["uid"], "a") == {"Error": ""}
    assert metrics.registry.get_sample_value("hami_scheduler_filter_total", {"result": "scheduled"}) == 1
    assert (
        metrics.registry.get_sample_value("hami_scheduler_bind_duration_seconds_count", {"result": "bound"})
        == 1
    )


def test_an_unschedulable_pod_gets_failed_nodes_and_reasons_are_counted() -> None:
    made = two_nodes()
    verbs, metrics = extender(made)
    reply = verbs.filter(
        PodView.from_object(made.add_pod(gpu_pod("p", memory=9000))), ["a", "b", "ghost"], None
    )
    assert reply["NodeNames"] is None
    assert reply["FailedNodes"] == {
        "a": "1/1 CardInsufficientMemory",
        "b": "1/1 CardInsufficientMemory",
        "ghost": "node unregistered",
    }
    assert (
        metrics.registry.get_sample_value(
            "hami_scheduler_filter_node_rejections_total", {"reason": "CardInsufficientMemory"}
        )
        == 2
    )
    assert (
        metrics.registry.get_sample_value(
            "hami_scheduler_filter_node_rejections_total", {"reason": "NodeUnregistered"}
        )
        == 1
    )


def test_a_pod_with_bad_input_gets_the_error_in_the_reply() -> None:
    made = two_nodes()
    verbs, metrics = extender(made)
    pod = made.add_pod(make_pod("p", containers=[make_container(limits={GPU: 1, MEM: "lots"})]))
    reply = verbs.filter(PodView.from_object(pod), ["a"], None)
    assert "container main" in reply["Error"]
    assert metrics.registry.get_sample_value("hami_scheduler_filter_total", {"result": "error"}) == 1


def test_a_pod_asking_no_device_keeps_every_node() -> None:
    made = two_nodes()
    verbs, _ = extender(made)
    reply = verbs.filter(PodView.from_object(made.add_pod(make_pod("p"))), ["a", "b"], None)
    assert reply["NodeNames"] == ["a", "b"]


def test_the_dry_run_path_answers_with_node_objects() -> None:
    made = two_nodes()
    verbs, _ = extender(made)
    nodes = [registered_node("x", gpus("X", 1))]
    reply = verbs.filter(PodView.from_object(made.add_pod(gpu_pod("p", memory=100))), None, nodes)
    assert reply["Nodes"] == {"apiVersion": "v1", "kind": "NodeList", "items": nodes}
    assert reply["NodeNames"] is None


def test_a_failed_bind_is_an_error_reply() -> None:
    made = two_nodes()
    verbs, _ = extender(made)
    assert "not found" in verbs.bind("default", "ghost", "", "a")["Error"]


def test_prioritize_scales_the_policy_score_to_zero_to_ten() -> None:
    made = two_nodes()
    verbs, _ = extender(made)
    made.filtering.filter(PodView.from_object(made.add_pod(gpu_pod("seed", memory=4000))), ["a"])
    made.sync()
    pod = gpu_pod("p", memory=100)
    assert verbs.prioritize(PodView.from_object(pod), ["a", "b", "ghost"]) == [
        {"Host": "a", "Score": 10},
        {"Host": "b", "Score": 0},
        {"Host": "ghost", "Score": 0},
    ]
    spread = gpu_pod("q", memory=100, annotations={codec.NODE_SCHEDULER_POLICY: "spread"})
    assert [entry["Score"] for entry in verbs.prioritize(PodView.from_object(spread), ["a", "b"])] == [0, 10]
