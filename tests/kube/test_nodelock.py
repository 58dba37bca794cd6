"""HAMi's node lock ``hami.io/mutex.lock`` on the FakeKube (specs/hami-wire.md 1.4.4, 3.8)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from hami_core import codec
from hami_core.codec import NodeLockState
from hami_core.errors import ConflictError
from hami_core.errors import LockError
from hami_core.errors import NotFoundError
from hami_core.kube.nodelock import LockHeldError
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.nodelock import lock_state
from hami_core.kube.objects import Node
from hami_core.testing.builders import make_node
from hami_core.testing.fake_kube import FakeKube

NOW = datetime(2026, 8, 1, 6, 0, 0, tzinfo=UTC)


def locked_kube(value: str | None = None) -> FakeKube:
    kube = FakeKube()
    kube.create_node(make_node("n", annotations={codec.NODE_LOCK: value} if value else {}))
    return kube


def lock_value(kube: FakeKube) -> str | None:
    return (kube.get_node("n")["metadata"].get("annotations") or {}).get(codec.NODE_LOCK)


def node_lock(kube: FakeKube, *, at: datetime = NOW, **kwargs: object) -> NodeLock:
    return NodeLock(kube, clock=lambda: at, sleep=lambda _: None, **kwargs)  # type: ignore[arg-type]


def test_taking_a_free_lock_writes_hamis_value() -> None:
    kube = locked_kube()
    node_lock(kube).acquire("n", "ns", "pod-a")
    assert lock_value(kube) == "2026-08-01T06:00:00Z,ns,pod-a"


def test_the_lock_is_reentrant_for_the_same_pod() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z,ns,pod-a")
    node_lock(kube).acquire("n", "ns", "pod-a")
    assert lock_value(kube) == "2026-08-01T05:59:00Z,ns,pod-a"


def test_a_live_lock_of_another_pod_is_contention_naming_the_holder() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z,ns,pod-b")
    with pytest.raises(LockHeldError, match="locked by ns/pod-b") as caught:
        node_lock(kube).acquire("n", "ns", "pod-a")
    assert caught.value.holder == NodeLockState(datetime(2026, 8, 1, 5, 59, tzinfo=UTC), "ns", "pod-b")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-08-01T05:54:59Z,ns,pod-b", id="older-than-expiry"),
        pytest.param("2026-08-01T05:54:59Z", id="legacy-expired"),
        pytest.param("lock", id="unreadable"),
        pytest.param("a,b", id="malformed"),
    ],
)
def test_a_stale_or_unreadable_lock_is_taken_over(value: str) -> None:
    kube = locked_kube(value)
    node_lock(kube).acquire("n", "ns", "pod-a")
    assert lock_value(kube) == "2026-08-01T06:00:00Z,ns,pod-a"


def test_a_legacy_lock_within_the_expiry_blocks() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z")
    with pytest.raises(LockHeldError, match="a legacy lock"):
        node_lock(kube).acquire("n", "ns", "pod-a")


def test_the_expiry_is_configurable() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z,ns,pod-b")
    node_lock(kube, expiry=30).acquire("n", "ns", "pod-a")
    assert lock_value(kube) == "2026-08-01T06:00:00Z,ns,pod-a"


def test_a_lock_whose_holder_is_gone_is_taken_over_at_once() -> None:
    kube = locked_kube("2026-08-01T05:59:59Z,ns,pod-b")
    asked: list[tuple[str, str]] = []

    def gone(namespace: str, name: str) -> bool:
        asked.append((namespace, name))
        return True

    node_lock(kube).acquire("n", "ns", "pod-a", holder_gone=gone)
    assert asked == [("ns", "pod-b")]
    assert lock_value(kube) == "2026-08-01T06:00:00Z,ns,pod-a"


class RacingKube(FakeKube):
    """A FakeKube where another writer changes the node right before the first ``times`` lock writes."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times
        self.gets = 0

    def get_node(self, name: str) -> Node:
        self.gets += 1
        return super().get_node(name)

    def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node:
        if self.times > 0 and resource_version:
            self.times -= 1
            super().patch_node(name, {"metadata": {"labels": {"touched": str(self.times)}}})
        return super().patch_node(name, patch, resource_version=resource_version)


def test_a_write_that_loses_a_race_is_retried_on_the_fresh_node() -> None:
    kube = RacingKube(times=2)
    kube.create_node(make_node("n"))
    node_lock(kube).acquire("n", "ns", "pod-a")
    assert kube.get_node("n")["metadata"]["annotations"][codec.NODE_LOCK].endswith(",ns,pod-a")


def test_a_lock_that_keeps_losing_races_is_an_error() -> None:
    kube = RacingKube(times=10)
    kube.create_node(make_node("n"))
    with pytest.raises(LockError, match="after 3 attempts"):
        node_lock(kube, attempts=3).acquire("n", "ns", "pod-a")


def test_a_known_unlocked_node_is_written_without_reading_it_first() -> None:
    kube = RacingKube(times=0)
    created = kube.create_node(make_node("n"))
    node_lock(kube).acquire("n", "ns", "pod-a", known=created)
    assert kube.gets == 0
    assert kube.get_node("n")["metadata"]["annotations"][codec.NODE_LOCK].endswith(",ns,pod-a")


def test_a_stale_known_copy_costs_only_the_read_it_saved() -> None:
    kube = RacingKube(times=0)
    created = kube.create_node(make_node("n"))
    kube.patch_node("n", {"metadata": {"annotations": {codec.NODE_LOCK: "2026-08-01T05:59:59Z,ns,pod-b"}}})
    with pytest.raises(LockHeldError):
        node_lock(kube).acquire("n", "ns", "pod-a", known=created)
    assert kube.gets == 1


def test_release_removes_only_the_owners_lock() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z,ns,pod-b")
    lock = node_lock(kube)
    assert lock.release("n", "ns", "pod-a") is False
    assert lock_value(kube) == "2026-08-01T05:59:00Z,ns,pod-b"
    assert lock.release("n", "ns", "pod-b") is True
    assert lock_value(kube) is None
    assert lock.release("n", "ns", "pod-b") is False


def test_a_forced_release_removes_any_lock() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z")
    assert node_lock(kube).release("n", "", "", force=True) is True
    assert lock_value(kube) is None


def test_locking_a_missing_node_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        node_lock(FakeKube()).acquire("nowhere", "ns", "pod-a")


def test_the_lock_state_is_read_from_annotations() -> None:
    assert lock_state({}) is None
    state = lock_state({codec.NODE_LOCK: "2026-07-03T15:35:10+08:00"})
    assert state is not None
    assert (state.taken, state.namespace, state.name) == (
        datetime(2026, 7, 3, 7, 35, 10, tzinfo=UTC),
        "",
        "",
    )
    assert not state.owned_by("", "")


def test_the_clock_decides_expiry() -> None:
    kube = locked_kube("2026-08-01T05:59:00Z,ns,pod-b")
    with pytest.raises(LockHeldError):
        node_lock(kube, at=NOW).acquire("n", "ns", "pod-a")
    node_lock(kube, at=NOW + timedelta(minutes=5)).acquire("n", "ns", "pod-a")
    assert lock_value(kube).endswith(",ns,pod-a")  # type: ignore[union-attr]


def test_a_write_refused_on_every_attempt_is_a_lock_error() -> None:
    class Broken(FakeKube):
        def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node:
            raise ConflictError("AlreadyExists", status=409)

    kube = Broken()
    kube.create_node(make_node("n"))
    with pytest.raises(LockError):
        node_lock(kube, attempts=2).acquire("n", "ns", "pod-a")


def test_a_known_copy_with_a_stale_version_is_retried_at_once_on_the_fresh_node() -> None:
    kube = RacingKube(times=0)
    created = kube.create_node(make_node("n"))
    kube.patch_node("n", {"metadata": {"labels": {"changed": "yes"}}})
    slept: list[float] = []
    NodeLock(kube, clock=lambda: NOW, sleep=slept.append).acquire("n", "ns", "pod-a", known=created)
    assert slept == []
    assert kube.gets == 1
    assert lock_value(kube) == "2026-08-01T06:00:00Z,ns,pod-a"
