"""Prompt retries: pending pods rejected for capacity are touched when capacity is freed."""

from __future__ import annotations

from hami_core import codec
from hami_core.devices import DeviceRequest
from hami_core.pods import PodView
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.index import NodeView
from hami_core.scheduler.pod_requests import PodRequest
from hami_core.scheduler.retrying import RetryBook
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import annotations_of
from tests.scheduler.fakes import gpu
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node

KEYS = NvidiaLikeBackend().keys


def asking(memory: int) -> PodRequest:
    return PodRequest(
        containers=({"nvidia": DeviceRequest(1, "NVIDIA", memreq=memory)},), backends=("nvidia",)
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def views_with(free_mib: int) -> dict[str, NodeView]:
    from hami_core.devices import DeviceUsage
    from hami_core.scheduler.capacity import BackendSummary

    device = DeviceUsage(id="d", count=10, totalmem=8000, usedmem=8000 - free_mib, totalcore=100)
    view = NodeView(
        name="n",
        generation=1,
        devices={"nvidia": (device,)},
        summaries={"nvidia": BackendSummary.of([device])},
    )
    return {"n": view}


def test_a_pod_is_due_when_a_freed_node_might_fit_it() -> None:
    book = RetryBook({"nvidia": True}, min_interval=1.0)
    book.rejected("default", "small", "u1", asking(1000))
    book.rejected("default", "large", "u2", asking(6000))
    book.freed(Changes(freed_nodes=frozenset({"n"})), views_with(2000).get)
    ready, later = book.due(100.0)
    assert [pod.name for pod in ready] == ["small"]
    assert later is None


def test_a_pod_held_back_by_its_quota_is_due_when_the_namespaces_use_shrinks() -> None:
    book = RetryBook({"nvidia": True})
    book.rejected("team", "quota", "u1", asking(6000), quota_limited=True)
    book.rejected("team", "capacity", "u2", asking(6000))
    book.freed(Changes(freed_namespaces=frozenset({"team"})), lambda name: None)
    assert [pod.name for pod in book.due(0.0)[0]] == ["quota"]


def test_a_pod_is_touched_at_most_once_per_interval() -> None:
    book = RetryBook({"nvidia": True}, min_interval=1.0)
    book.rejected("default", "p", "u1", asking(1000))
    freed = Changes(freed_nodes=frozenset({"n"}))
    book.freed(freed, views_with(2000).get)
    (pod,) = book.due(100.0)[0]
    book.touched(pod, 100.0)
    book.freed(freed, views_with(2000).get)
    assert book.due(100.5) == ([], 101.0)
    assert [p.name for p in book.due(101.0)[0]] == ["p"]


def test_a_settled_pod_is_forgotten() -> None:
    book = RetryBook({"nvidia": True})
    book.rejected("default", "p", "u1", asking(1000))
    book.settled("default/p")
    assert "default/p" not in book
    assert len(book) == 0


def test_a_pod_that_ends_gets_a_rejected_pending_pod_retried() -> None:
    made = harness()
    made.add_node(registered_node("n", [gpu("GPU-0")]))
    holder = made.add_pod(gpu_pod("holder", memory=8000))
    assert made.filtering.filter(PodView.from_object(holder), ["n"]).result == "scheduled"
    made.sync()
    waiting = made.add_pod(gpu_pod("waiting", memory=4000))
    assert made.filtering.filter(PodView.from_object(waiting), ["n"]).result == "unschedulable"
    made.kube.patch_pod_status("default", "holder", {"status": {"phase": "Succeeded"}})
    made.sync()
    made.retrier.run_once()
    assert codec.SCHEDULING_RETRY in annotations_of(made.kube, "waiting")
    assert made.retrier.touches == 1


def test_a_pod_that_cannot_fit_the_freed_capacity_is_left_alone() -> None:
    made = harness()
    made.add_node(registered_node("n", [gpu("GPU-0")]))
    holder = made.add_pod(gpu_pod("holder", memory=2000))
    made.filtering.filter(PodView.from_object(holder), ["n"])
    made.sync()
    waiting = made.add_pod(gpu_pod("waiting", memory=9000))
    made.filtering.filter(PodView.from_object(waiting), ["n"])
    made.kube.delete_pod("default", "holder")
    made.sync()
    made.retrier.run_once()
    assert codec.SCHEDULING_RETRY not in annotations_of(made.kube, "waiting")


def test_a_follower_does_not_touch_pods() -> None:
    made = harness()
    made.retrier._is_leader = lambda: False
    made.add_node(registered_node("n", [gpu("GPU-0")]))
    holder = made.add_pod(gpu_pod("holder", memory=8000))
    made.filtering.filter(PodView.from_object(holder), ["n"])
    made.sync()
    waiting = made.add_pod(gpu_pod("waiting", memory=4000))
    made.filtering.filter(PodView.from_object(waiting), ["n"])
    made.kube.delete_pod("default", "holder")
    made.sync()
    made.retrier.run_once()
    assert codec.SCHEDULING_RETRY not in annotations_of(made.kube, "waiting")


def test_a_pod_deleted_before_its_retry_is_forgotten() -> None:
    made = harness()
    made.add_node(registered_node("n", [gpu("GPU-0")]))
    holder = made.add_pod(gpu_pod("holder", memory=8000))
    made.filtering.filter(PodView.from_object(holder), ["n"])
    made.sync()
    waiting = made.add_pod(gpu_pod("waiting", memory=4000))
    made.filtering.filter(PodView.from_object(waiting), ["n"])
    made.kube.delete_pod("default", "waiting")
    made.kube.delete_pod("default", "holder")
    made.sync()
    made.retrier.run_once()
    assert made.retrier.touches == 0


def test_the_retrier_thread_touches_pods_on_its_own() -> None:
    import time

    made = harness()
    made.add_node(registered_node("n", [gpu("GPU-0")]))
    holder = made.add_pod(gpu_pod("holder", memory=8000))
    made.filtering.filter(PodView.from_object(holder), ["n"])
    made.sync()
    waiting = made.add_pod(gpu_pod("waiting", memory=4000))
    made.filtering.filter(PodView.from_object(waiting), ["n"])
    made.retrier.start()
    try:
        made.kube.delete_pod("default", "holder")
        made.sync()
        deadline = time.monotonic() + 5
        while (
            codec.SCHEDULING_RETRY not in annotations_of(made.kube, "waiting") and time.monotonic() < deadline
        ):
            time.sleep(0.01)
    finally:
        made.retrier.stop()
    assert codec.SCHEDULING_RETRY in annotations_of(made.kube, "waiting")
