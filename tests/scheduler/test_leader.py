"""Leader election on a Lease with client-go's rules, driven by virtual clocks."""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from hami_core.errors import KubeError
from hami_core.kube.objects import Lease
from hami_core.scheduler.leader import LeaderElector
from hami_core.testing.fake_kube import FakeKube


class Clock:
    """Monotonic seconds and wall time that move together, only when told."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return datetime(2026, 8, 1, tzinfo=UTC) + timedelta(seconds=self.seconds)


def elector(kube: FakeKube, clock: Clock, identity: str, changes: list[bool] | None = None) -> LeaderElector:
    return LeaderElector(
        kube,
        namespace="kube-system",
        name="hami-scheduler",
        identity=identity,
        monotonic=clock.monotonic,
        wall=clock.wall,
        on_change=changes.append if changes is not None else None,
    )


def lease(kube: FakeKube) -> Lease:
    return kube.get_lease("kube-system", "hami-scheduler")


def test_the_first_replica_creates_the_lease_and_leads() -> None:
    kube, clock, changes = FakeKube(), Clock(), []
    first = elector(kube, clock, "a", changes)
    assert first.step() is True
    spec = lease(kube)["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["renewTime"] == "2026-08-01T00:00:00.000000Z"
    assert changes == [True]


def test_a_second_replica_follows_while_the_leader_renews() -> None:
    kube, clock = FakeKube(), Clock()
    first, second = elector(kube, clock, "a"), elector(kube, clock, "b")
    first.step()
    for _ in range(10):
        clock.seconds += 2
        first.step()
        assert second.step() is False
    assert lease(kube)["spec"]["holderIdentity"] == "a"


def test_a_follower_takes_over_a_lease_nobody_renewed_for_its_duration() -> None:
    kube, clock = FakeKube(), Clock()
    first, second = elector(kube, clock, "a"), elector(kube, clock, "b")
    first.step()
    assert second.step() is False
    clock.seconds += 14
    assert second.step() is False
    clock.seconds += 1.5
    assert second.step() is True
    spec = lease(kube)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


def test_a_leader_that_cannot_renew_steps_down_after_the_renew_deadline() -> None:
    class Unreachable(FakeKube):
        broken = False

        def get_lease(self, namespace: str, name: str) -> Lease:
            if self.broken:
                raise KubeError("connection refused")
            return super().get_lease(namespace, name)

    kube, clock, changes = Unreachable(), Clock(), []
    leader = elector(kube, clock, "a", changes)
    leader.step()
    kube.broken = True
    clock.seconds += 9
    assert leader.step() is True
    clock.seconds += 1
    assert leader.step() is False
    assert changes == [True, False]


def test_a_stopping_leader_releases_the_lease_for_an_immediate_takeover() -> None:
    kube, clock = FakeKube(), Clock()
    first, second = elector(kube, clock, "a"), elector(kube, clock, "b")
    first.step()
    second.step()
    first.stop()
    assert first.is_leader is False
    assert lease(kube)["spec"]["holderIdentity"] == ""
    assert second.step() is True


def test_a_restarted_leader_keeps_its_acquire_time_when_renewing() -> None:
    kube, clock = FakeKube(), Clock()
    elector(kube, clock, "a").step()
    clock.seconds += 5
    again = elector(kube, clock, "a")
    assert again.step() is True
    spec = lease(kube)["spec"]
    assert spec["acquireTime"] == "2026-08-01T00:00:00.000000Z"
    assert spec["renewTime"] == "2026-08-01T00:00:05.000000Z"
    assert spec["leaseTransitions"] == 0


def test_the_thread_campaigns_until_stopped() -> None:
    kube = FakeKube()
    running = LeaderElector(
        kube, namespace="kube-system", name="hami-scheduler", identity="a", retry_period=0.01
    )
    running.start()
    try:
        for _ in range(500):
            if running.is_leader:
                break
            time.sleep(0.01)
        assert running.is_leader
    finally:
        running.stop()
    assert lease(kube)["spec"]["holderIdentity"] == ""
