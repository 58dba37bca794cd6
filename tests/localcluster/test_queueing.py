"""kube-scheduler's queue rules, driven by a virtual clock (plain numbers)."""

from __future__ import annotations

import pytest

from hami_core.localcluster.queueing import SchedulingQueue
from hami_core.localcluster.queueing import backoff_seconds


def failed_once(queue: SchedulingQueue, key: str, now: float) -> None:
    queue.add(key, priority=0, now=now)
    assert queue.pop(now) == key
    queue.unschedulable(key, now)


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [
        pytest.param(1, 1.0, id="first"),
        pytest.param(2, 2.0, id="second"),
        pytest.param(4, 8.0, id="fourth"),
        pytest.param(5, 10.0, id="capped"),
        pytest.param(30, 10.0, id="stays-capped"),
    ],
)
def test_backoff_doubles_from_one_second_up_to_ten(attempts: int, seconds: float) -> None:
    assert backoff_seconds(attempts) == seconds


def test_higher_priority_pods_pop_first_then_older_ones() -> None:
    queue = SchedulingQueue()
    queue.add("default/late", priority=0, now=2.0)
    queue.add("default/early", priority=0, now=1.0)
    queue.add("default/urgent", priority=100, now=3.0)
    assert [queue.pop(10.0), queue.pop(10.0), queue.pop(10.0), queue.pop(10.0)] == [
        "default/urgent",
        "default/early",
        "default/late",
        None,
    ]


def test_an_unschedulable_pod_waits_for_an_event() -> None:
    queue = SchedulingQueue()
    failed_once(queue, "default/p", 0.0)
    assert queue.state("default/p") == "unschedulable"
    assert queue.pop(60.0) is None


def test_a_node_event_during_backoff_moves_the_pod_to_backoff_then_active() -> None:
    queue = SchedulingQueue()
    failed_once(queue, "default/p", 0.0)
    queue.move_all(0.5)
    assert queue.state("default/p") == "backoff"
    assert queue.pop(0.9) is None
    assert queue.next_due(0.9) == 1.0
    assert queue.pop(1.0) == "default/p"


def test_a_node_event_after_the_backoff_makes_the_pod_active_at_once() -> None:
    queue = SchedulingQueue()
    failed_once(queue, "default/p", 0.0)
    queue.move_all(5.0)
    assert queue.state("default/p") == "active"


def test_an_unschedulable_pod_is_retried_after_five_minutes_without_events() -> None:
    queue = SchedulingQueue()
    failed_once(queue, "default/p", 0.0)
    assert queue.next_due(1.0) == 300.0
    assert queue.pop(299.0) is None
    assert queue.pop(300.0) == "default/p"


def test_only_a_real_update_of_the_pending_pod_requeues_it() -> None:
    queue = SchedulingQueue()
    failed_once(queue, "default/p", 0.0)
    queue.update("default/p", priority=0, now=5.0, changed=False)
    assert queue.state("default/p") == "unschedulable"
    queue.update("default/p", priority=0, now=5.0, changed=True)
    assert queue.state("default/p") == "active"


def test_an_event_while_the_pod_is_tried_sends_it_to_backoff_instead_of_waiting() -> None:
    queue = SchedulingQueue()
    queue.add("default/p", priority=0, now=0.0)
    assert queue.pop(0.0) == "default/p"
    queue.move_all(0.1)
    queue.unschedulable("default/p", 0.2)
    assert queue.state("default/p") == "backoff"


def test_an_update_while_the_pod_is_tried_sends_it_to_backoff() -> None:
    queue = SchedulingQueue()
    queue.add("default/p", priority=0, now=0.0)
    assert queue.pop(0.0) == "default/p"
    queue.update("default/p", priority=0, now=0.1, changed=True)
    queue.unschedulable("default/p", 0.2)
    assert queue.state("default/p") == "backoff"


def test_an_error_backs_off_for_longer_each_attempt() -> None:
    queue = SchedulingQueue()
    queue.add("default/p", priority=0, now=0.0)
    now = 0.0
    waits = []
    for _ in range(5):
        assert queue.pop(now) == "default/p"
        queue.failed("default/p", now)
        due = queue.next_due(now)
        assert due is not None
        waits.append(due - now)
        now = due
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_a_bound_or_deleted_pod_leaves_the_queue() -> None:
    queue = SchedulingQueue()
    queue.add("default/a", priority=0, now=0.0)
    queue.add("default/b", priority=0, now=0.0)
    assert queue.pop(0.0) == "default/a"
    queue.done("default/a")
    queue.delete("default/b")
    assert len(queue) == 0
    assert queue.next_due(0.0) is None
