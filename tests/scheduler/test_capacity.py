"""The cheap capacity check: it only rules out nodes the shared fit would refuse."""

from __future__ import annotations

import pytest

from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import MigProfile
from hami_core.scheduler.capacity import BackendSummary
from hami_core.scheduler.capacity import RoomTier


def usage(
    uuid: str, *, used: int = 0, usedmem: int = 0, usedcores: int = 0, health: bool = True
) -> DeviceUsage:
    return DeviceUsage(
        id=uuid,
        count=10,
        used=used,
        totalmem=8000,
        usedmem=usedmem,
        totalcore=100,
        usedcores=usedcores,
        health=health,
    )


@pytest.mark.parametrize(
    ("devices", "request_", "fits"),
    [
        pytest.param([usage("a")], DeviceRequest(1, "NVIDIA", memreq=8000), True, id="whole-memory"),
        pytest.param(
            [usage("a", usedmem=1)], DeviceRequest(1, "NVIDIA", memreq=8000), False, id="one-mib-short"
        ),
        pytest.param(
            [usage("a", usedmem=4000)],
            DeviceRequest(1, "NVIDIA", mem_percentage_req=50),
            True,
            id="half-left",
        ),
        pytest.param(
            [usage("a", usedmem=4001)],
            DeviceRequest(1, "NVIDIA", mem_percentage_req=50),
            False,
            id="under-half",
        ),
        pytest.param(
            [usage("a", usedmem=7000), usage("b", usedcores=90)],
            DeviceRequest(1, "NVIDIA", memreq=2000, coresreq=20),
            False,
            id="memory-and-cores-on-different-devices",
        ),
        pytest.param(
            [usage("a", used=1)], DeviceRequest(1, "NVIDIA", coresreq=100), False, id="exclusive-needs-idle"
        ),
        pytest.param([usage("a", usedcores=100)], DeviceRequest(1, "NVIDIA"), False, id="cores-exhausted"),
        pytest.param([usage("a", health=False)], DeviceRequest(1, "NVIDIA"), False, id="unhealthy"),
        pytest.param([usage("a"), usage("b")], DeviceRequest(3, "NVIDIA"), False, id="too-few-devices"),
    ],
)
def test_the_cheap_check_only_rules_out_nodes_the_fit_would_refuse(
    devices: list[DeviceUsage], request_: DeviceRequest, fits: bool
) -> None:
    assert BackendSummary.of(devices).may_fit(request_, strict=True) is fits


def test_without_the_shared_fit_only_free_slots_are_counted() -> None:
    summary = BackendSummary.of([usage("a", usedmem=8000)])
    assert summary.may_fit(DeviceRequest(1, "NVIDIA", memreq=4000), strict=False)
    assert not summary.may_fit(DeviceRequest(2, "NVIDIA"), strict=False)


def test_room_tiers_count_devices_that_can_still_give_the_share() -> None:
    summary = BackendSummary.of([usage("a"), usage("b", usedmem=4000), usage("c", usedcores=90)])
    assert summary.qualifies(RoomTier("memory", 100, 2))
    assert not summary.qualifies(RoomTier("memory", 100, 4))
    assert summary.qualifies(RoomTier("cores", 100))
    assert not summary.qualifies(RoomTier("cores", 100, 4))


def test_mig_devices_never_pass_the_shared_fits_check() -> None:
    mig = DeviceUsage(
        id="m", count=7, totalmem=40960, totalcore=100, mode="mig", mig_profiles=(MigProfile("1g.5gb", 5120),)
    )
    assert not BackendSummary.of([mig]).may_fit(DeviceRequest(1, "NVIDIA", memreq=1000), strict=True)
    assert BackendSummary.of([mig]).may_fit(DeviceRequest(1, "NVIDIA", memreq=1000), strict=False)


def test_freed_capacity_is_recognised() -> None:
    before = BackendSummary.of([usage("a", used=2, usedmem=4000, usedcores=20)])
    after = BackendSummary.of([usage("a", used=1, usedmem=2000, usedcores=10)])
    assert after.better_than(before)
    assert not before.better_than(after)
