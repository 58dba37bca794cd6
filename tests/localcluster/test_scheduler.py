"""The kube-scheduler stand-in on FakeKube, with an in-test HTTP extender and a virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from hami_core.kube import objects
from hami_core.localcluster.scheduler import Scheduler
from hami_core.localcluster.scheduler import node_scheduling_changed
from hami_core.localcluster.scheduler import pod_changed
from hami_core.localcluster.scheduler import truncate_message
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.localcluster.fake_extender import FakeExtender
from tests.localcluster.fake_extender import Reply
from tests.localcluster.fake_extender import keep_every_node
from tests.localcluster.polling import eventually

GPU = "example.com/gpu"


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def kube(fake_kube: FakeKube) -> FakeKube:
    fake_kube.create_node(make_node("node-a", allocatable={"cpu": 1, "memory": "1Gi", "pods": 10}))
    fake_kube.create_node(make_node("node-b", allocatable={"cpu": 4, "memory": "4Gi", "pods": 10}))
    return fake_kube


@pytest.fixture
def run_scheduler(kube: FakeKube, clock: VirtualClock) -> Iterator[Callable[..., Scheduler]]:
    started: list[Scheduler] = []

    def run(config: Any = None) -> Scheduler:
        scheduler = Scheduler(kube, config, clock=clock)
        scheduler.start()
        started.append(scheduler)
        return scheduler

    yield run
    for scheduler in started:
        scheduler.stop()


def extender_config(url: str, **extra: object) -> dict[str, object]:
    return {
        "profiles": [{"schedulerName": "hami-scheduler"}],
        "extenders": [
            {
                "urlPrefix": url,
                "filterVerb": "filter",
                "nodeCacheCapable": True,
                "managedResources": [{"name": GPU, "ignoredByScheduler": True}],
                **extra,
            }
        ],
    }


def pod(name: str, *, cpu: str = "500m", gpu: int = 0, scheduler: str = "") -> objects.Pod:
    limits: dict[str, str | int] = {"cpu": cpu}
    if gpu:
        limits[GPU] = gpu
    return make_pod(name, containers=[make_container(limits=limits)], scheduler_name=scheduler)


def node_of(kube: FakeKube, name: str) -> str:
    return kube.get_pod("default", name).get("spec", {}).get("nodeName", "")


def events(kube: FakeKube, name: str, reason: str) -> list[str]:
    return [
        event.get("message", "")
        for event in kube.list_events("default")["items"]
        if event.get("involvedObject", {}).get("name") == name and event.get("reason") == reason
    ]


def test_a_pod_that_fits_is_bound_to_the_emptiest_node(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    run_scheduler()
    kube.create_pod("default", pod("p", cpu="500m"))
    eventually(lambda: node_of(kube, "p"), what="p bound")
    assert node_of(kube, "p") == "node-b"
    assert events(kube, "p", "Scheduled") == ["Successfully assigned default/p to node-b"]


def test_a_pod_that_fits_nowhere_gets_failed_scheduling_and_a_condition(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    scheduler = run_scheduler()
    kube.create_pod("default", pod("big", cpu="8"))
    messages = eventually(lambda: events(kube, "big", "FailedScheduling"))
    assert messages == ["0/2 nodes are available: 2 Insufficient cpu."]
    condition = kube.get_pod("default", "big")["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert condition["message"] == messages[0]
    eventually(lambda: scheduler.queue_state("default", "big") == "unschedulable")


def test_a_node_update_requeues_an_unschedulable_pod(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler], clock: VirtualClock
) -> None:
    scheduler = run_scheduler()
    kube.create_pod("default", pod("big", cpu="8"))
    eventually(lambda: scheduler.queue_state("default", "big") == "unschedulable")
    clock.now += 20  # past any backoff, so the event makes the pod active at once
    kube.patch_node_status("node-b", {"status": {"allocatable": {"cpu": "16"}}})
    eventually(lambda: node_of(kube, "big") == "node-b", what="big bound after the node grew")


def test_deleting_an_assigned_pod_requeues_pods_waiting_for_room(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler], clock: VirtualClock
) -> None:
    scheduler = run_scheduler()
    kube.create_pod("default", pod("first", cpu="3"))
    eventually(lambda: node_of(kube, "first") == "node-b")
    kube.create_pod("default", pod("second", cpu="3"))
    eventually(lambda: scheduler.queue_state("default", "second") == "unschedulable")
    clock.now += 20
    kube.delete_pod("default", "first")
    eventually(lambda: node_of(kube, "second") == "node-b")


def test_pods_of_another_scheduler_are_left_alone(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    run_scheduler()
    kube.create_pod("default", pod("mine"))
    kube.create_pod("default", pod("theirs", scheduler="hami-scheduler"))
    eventually(lambda: node_of(kube, "mine"))
    assert node_of(kube, "theirs") == ""


def test_the_extender_filters_and_binds_with_pascal_case_json(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    def handler(verb: str, body: Any) -> Reply:
        if verb == "filter":
            return 200, {"NodeNames": ["node-b"], "FailedNodes": {"node-a": "no GPU"}, "Error": ""}
        kube.bind_pod(body["PodNamespace"], body["PodName"], body["Node"], uid=body["PodUID"])
        return 200, {"Error": ""}

    with FakeExtender(handler) as extender:
        run_scheduler(extender_config(extender.url, bindVerb="bind"))
        created = kube.create_pod("default", pod("gpu", gpu=1, scheduler="hami-scheduler"))
        eventually(lambda: node_of(kube, "gpu") == "node-b")
    assert extender.verbs() == ["filter", "bind"]
    sent = extender.received[0].body
    assert list(sent) == ["Pod", "Nodes", "NodeNames"]
    assert sent["NodeNames"] == ["node-a", "node-b"]
    assert sent["Nodes"] is None
    assert sent["Pod"]["metadata"]["name"] == "gpu"
    assert extender.received[1].body == {
        "PodName": "gpu",
        "PodNamespace": "default",
        "PodUID": created["metadata"]["uid"],
        "Node": "node-b",
    }


def test_extender_failure_reasons_appear_in_failed_scheduling(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    def handler(verb: str, body: Any) -> Reply:
        return 200, {
            "NodeNames": [],
            "FailedNodes": dict.fromkeys(body["NodeNames"], "no GPU with 8000Mi free"),
        }

    with FakeExtender(handler) as extender:
        run_scheduler(extender_config(extender.url))
        kube.create_pod("default", pod("gpu", cpu="2", gpu=1, scheduler="hami-scheduler"))
        messages = eventually(lambda: events(kube, "gpu", "FailedScheduling"))
    assert messages == ["0/2 nodes are available: 1 Insufficient cpu, 1 no GPU with 8000Mi free."]


def test_pods_without_managed_resources_skip_the_extender(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    with FakeExtender() as extender:
        run_scheduler(extender_config(extender.url))
        kube.create_pod("default", pod("plain", scheduler="hami-scheduler"))
        eventually(lambda: node_of(kube, "plain"))
    assert extender.received == []


def test_an_ignorable_extender_that_fails_is_skipped(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler]
) -> None:
    with FakeExtender(lambda verb, body: (503, {})) as extender:
        run_scheduler(extender_config(extender.url, ignorable=True))
        kube.create_pod("default", pod("gpu", gpu=1, scheduler="hami-scheduler"))
        eventually(lambda: node_of(kube, "gpu"))


def test_a_failing_extender_backs_the_pod_off_and_it_is_retried(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler], clock: VirtualClock
) -> None:
    replies: Iterator[Reply] = iter([(500, {}), (200, None)])

    def handler(verb: str, body: Any) -> Reply:
        status, _ = next(replies, (200, None))
        return (status, {}) if status != 200 else keep_every_node(verb, body)

    with FakeExtender(handler) as extender:
        scheduler = run_scheduler(extender_config(extender.url))
        kube.create_pod("default", pod("gpu", gpu=1, scheduler="hami-scheduler"))
        messages = eventually(lambda: events(kube, "gpu", "FailedScheduling"))
        assert messages == [f"failed filter with extender at URL {extender.url}/filter, code 500"]
        eventually(lambda: scheduler.queue_state("default", "gpu") == "backoff")
        clock.now += 1
        scheduler.wake()
        eventually(lambda: node_of(kube, "gpu"), what="gpu bound after its backoff")


def test_an_unschedulable_pod_is_retried_after_five_minutes(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler], clock: VirtualClock
) -> None:
    calls = []

    def handler(verb: str, body: Any) -> Reply:
        calls.append(verb)
        if len(calls) == 1:
            return 200, {"NodeNames": [], "FailedNodes": dict.fromkeys(body["NodeNames"], "busy")}
        return keep_every_node(verb, body)

    with FakeExtender(handler) as extender:
        scheduler = run_scheduler(extender_config(extender.url))
        kube.create_pod("default", pod("gpu", gpu=1, scheduler="hami-scheduler"))
        eventually(lambda: scheduler.queue_state("default", "gpu") == "unschedulable")
        clock.now += 299
        scheduler.wake()
        assert scheduler.queue_state("default", "gpu") == "unschedulable"
        clock.now += 1
        scheduler.wake()
        eventually(lambda: node_of(kube, "gpu"), what="gpu bound after the flush")
    assert calls == ["filter", "filter"]


def test_an_update_of_the_pending_pod_requeues_it(
    kube: FakeKube, run_scheduler: Callable[..., Scheduler], clock: VirtualClock
) -> None:
    def handler(verb: str, body: Any) -> Reply:
        if body["Pod"]["metadata"].get("labels", {}).get("ready") != "yes":
            return 200, {"NodeNames": [], "FailedNodes": dict.fromkeys(body["NodeNames"], "not ready")}
        return keep_every_node(verb, body)

    with FakeExtender(handler) as extender:
        scheduler = run_scheduler(extender_config(extender.url))
        kube.create_pod("default", pod("gpu", gpu=1, scheduler="hami-scheduler"))
        eventually(lambda: scheduler.queue_state("default", "gpu") == "unschedulable")
        kube.patch_pod("default", "gpu", {"metadata": {"labels": {"ready": "yes"}}})
        eventually(lambda: scheduler.queue_state("default", "gpu") == "backoff")
        clock.now += 1
        scheduler.wake()
        eventually(lambda: node_of(kube, "gpu"))


def test_prioritize_scores_pick_the_node(kube: FakeKube, run_scheduler: Callable[..., Scheduler]) -> None:
    def handler(verb: str, body: Any) -> Reply:
        if verb == "prioritize":
            return 200, [{"Host": "node-a", "Score": 10}, {"Host": "node-b", "Score": 0}]
        return keep_every_node(verb, body)

    with FakeExtender(handler) as extender:
        run_scheduler(extender_config(extender.url, prioritizeVerb="prioritize", weight=1))
        kube.create_pod("default", pod("gpu", cpu="100m", gpu=1, scheduler="hami-scheduler"))
        eventually(lambda: node_of(kube, "gpu"))
    assert node_of(kube, "gpu") == "node-a"
    assert extender.verbs() == ["filter", "prioritize"]


def test_only_spec_and_metadata_changes_count_as_pod_updates() -> None:
    before = make_pod("p")
    status_only = make_pod("p", phase="Running")
    status_only["metadata"]["resourceVersion"] = "99"
    assert not pod_changed(before, status_only)
    assert pod_changed(before, make_pod("p", labels={"a": "b"}))


def test_node_heartbeats_do_not_count_as_scheduling_changes() -> None:
    node = make_node("n", allocatable={"cpu": 1})
    beat = make_node("n", allocatable={"cpu": 1})
    beat["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "later"}]
    node["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "now"}]
    assert not node_scheduling_changed(node, beat)
    assert node_scheduling_changed(node, make_node("n", allocatable={"cpu": 2}))
    assert node_scheduling_changed(node, make_node("n", allocatable={"cpu": 1}, annotations={"x": "y"}))


def test_long_event_messages_are_cut_like_kube_schedulers() -> None:
    assert truncate_message("x" * 2000) == "x" * 1020 + " ..."
    assert truncate_message("short") == "short"
