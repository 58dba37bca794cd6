"""Reading the node lock's owner and deciding which locks are stale."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from hami_core import codec
from hami_core.deviceplugin import locking
from hami_core.kube.objects import Pod
from hami_core.pods import PodView
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod

NOW = datetime(2026, 8, 1, 6, 0, 0, tzinfo=UTC)
LOCK = codec.format_node_lock(NOW, "ns", "pod-a")


@pytest.mark.parametrize(
    ("value", "owner"),
    [
        pytest.param(LOCK, ("ns", "pod-a"), id="new-format"),
        pytest.param("2026-07-03T15:35:10+08:00", None, id="legacy-timestamp-only"),
        pytest.param("lock", None, id="unparsable"),
        pytest.param("a,b", None, id="two-parts"),
    ],
)
def test_a_lock_names_its_owner_unless_legacy_or_malformed(value: str, owner: tuple[str, str] | None) -> None:
    lock = locking.pod_lock(make_node("n", annotations={codec.NODE_LOCK: value}))
    assert (lock.owner if lock is not None else None) == owner


def test_an_unlocked_node_has_no_pod_lock() -> None:
    assert locking.pod_lock(make_node("n")) is None


def _pod(phase: str = "Pending", bind_phase: str | None = "allocating", bind_time: datetime = NOW) -> Pod:
    annotations = {codec.BIND_TIME: str(int(bind_time.timestamp()))}
    if bind_phase is not None:
        annotations[codec.BIND_PHASE] = bind_phase
    return make_pod("pod-a", namespace="ns", annotations=annotations, phase=phase)  # type: ignore[arg-type]


def _deleting() -> Pod:
    pod = _pod()
    pod["metadata"]["deletionTimestamp"] = "2026-08-01T06:00:00Z"
    return pod


@pytest.mark.parametrize(
    ("pod", "elapsed", "action"),
    [
        pytest.param(_pod(), 10, "keep", id="allocation-in-progress"),
        pytest.param(None, 10, "release", id="pod-vanished"),
        pytest.param(_pod(phase="Failed"), 10, "fail", id="kubelet-failed-the-pod-mid-allocation"),
        pytest.param(_deleting(), 10, "fail", id="pod-being-deleted-mid-allocation"),
        pytest.param(_pod(phase="Failed", bind_phase="failed"), 10, "release", id="failed-and-settled"),
        pytest.param(_pod(phase="Running", bind_phase="success"), 10, "release", id="success-left-the-lock"),
        pytest.param(_pod(bind_phase="failed"), 10, "release", id="failed-pending-pod"),
        pytest.param(
            _pod(bind_phase="failed", bind_time=NOW - timedelta(minutes=1)),
            10,
            "keep",
            id="phase-of-an-older-bind",
        ),
        pytest.param(_pod(), 301, "release", id="expired"),
    ],
)
def test_stale_locks_are_those_whose_allocation_cannot_finish(
    pod: Pod | None, elapsed: float, action: locking.LockAction
) -> None:
    assert (
        locking.stale_lock_action(
            codec.parse_node_lock(LOCK),
            None if pod is None else PodView.from_object(pod),
            NOW + timedelta(seconds=elapsed),
            300,
        )
        == action
    )


def test_legacy_locks_are_left_to_the_schedulers_expiry() -> None:
    legacy = codec.parse_node_lock("2026-07-03T15:35:10+08:00")
    assert locking.stale_lock_action(legacy, None, NOW + timedelta(days=1), 300) == "keep"
