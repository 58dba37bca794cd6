"""Registered devices outside the sanity bounds are rejected one by one; the rest register."""

from __future__ import annotations

import attrs
import pytest

from hami_core.devices import DeviceInfo
from hami_core.scheduler import register_bounds
from hami_core.scheduler.nodes import DEVICES_REJECTED
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import gpu
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"devmem": -1}, "devmem -1 is outside"),
        ({"devmem": 0}, "devmem 0 is outside"),
        ({"devmem": 2_000_000_000}, "devmem 2000000000 is outside"),
        ({"devcore": -5}, "devcore -5 is outside"),
        ({"devcore": 10_001}, "devcore 10001 is outside"),
        ({"count": -3}, "count -3 is outside"),
        ({"count": 0}, "count 0 is outside"),
        ({"count": 1_000_000}, "count 1000000 is outside"),
    ],
)
def test_an_insane_value_rejects_the_device(change: dict[str, int], message: str) -> None:
    assert message in register_bounds.out_of_bounds(attrs.evolve(gpu("GPU-0"), **change))  # type: ignore[arg-type]


def test_real_devices_are_within_the_bounds() -> None:
    for device in [gpu("a", memory=81920, cores=100, count=10), gpu("b", memory=1, cores=0, count=1)]:
        assert register_bounds.out_of_bounds(device) == ""
    assert register_bounds.out_of_bounds(gpu("c", cores=400)) == ""  # a core scaling of 4


def test_more_devices_than_a_node_can_hold_keeps_the_first_ones() -> None:
    devices: list[DeviceInfo] = gpus("GPU", register_bounds.MAX_DEVICES + 2)
    kept, rejected = register_bounds.within_bounds(devices)
    assert kept == tuple(devices[: register_bounds.MAX_DEVICES])
    assert len(rejected) == 2
    assert "more than 128 devices" in rejected[0]


def test_the_cache_registers_the_sane_devices_and_warns_once_about_the_others() -> None:
    made = harness()
    devices = [gpu("GPU-0"), gpu("GPU-1", memory=-4096), gpu("GPU-2", count=-1, index=2)]
    first = made.cache.apply_node("ADDED", registered_node("n", devices), NOW)
    again = made.cache.apply_node("MODIFIED", registered_node("n", devices), NOW)
    view = made.cache.view("n")
    assert view is not None
    assert [device.id for device in view.all_devices()] == ["GPU-0"]
    (warning,) = first.warnings
    assert (warning.kind, warning.name, warning.reason, warning.items) == ("Node", "n", DEVICES_REJECTED, 2)
    assert "'GPU-1': devmem -4096" in warning.message
    assert "'GPU-2': count -1" in warning.message
    assert again.warnings == ()
