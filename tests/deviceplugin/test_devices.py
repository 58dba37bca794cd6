"""Split replicas as kubelet devices, their stable order, and the health change feed."""

from __future__ import annotations

import threading

import pytest

from hami_core.deviceplugin.devices import DeviceState
from hami_core.deviceplugin.devices import VirtualDevice
from hami_core.deviceplugin.devices import ordered
from hami_core.deviceplugin.devices import replica_ids
from hami_core.devices import DeviceInfo

GPU_A = DeviceInfo(id="GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76", index=0, count=3, health=True)
GPU_B = DeviceInfo(id="GPU-ebe7c3f7-303d-558d-435e-99a160631fe4", index=1, count=2, health=True)


def test_each_device_is_advertised_once_per_split_as_id_dash_replica() -> None:
    assert replica_ids(GPU_B) == [f"{GPU_B.id}-0", f"{GPU_B.id}-1"]
    version, devices = DeviceState([GPU_B, GPU_A]).replicas()
    assert version == 0
    assert [device.id for device in devices] == [*replica_ids(GPU_A), *replica_ids(GPU_B)]
    assert devices[0] == VirtualDevice(f"{GPU_A.id}-0", GPU_A.id, healthy=True)


def test_devices_are_ordered_by_index_then_id() -> None:
    late = DeviceInfo(id="a", index=2)
    tie = DeviceInfo(id="b", index=0)
    assert ordered([late, GPU_B, tie, GPU_A]) == (GPU_A, tie, GPU_B, late)


def test_replica_ids_map_back_to_their_device_and_foreign_ids_to_none() -> None:
    state = DeviceState([GPU_A, GPU_B])
    assert state.physical_id(f"{GPU_A.id}-2") == GPU_A.id
    assert state.physical_id(f"{GPU_A.id}-3") is None
    assert state.physical_id(GPU_A.id) is None


def test_a_health_report_changes_the_devices_and_bumps_the_version() -> None:
    state = DeviceState([GPU_A, GPU_B])
    assert not state.set_health({GPU_A.id: True, "unknown": False})
    assert state.set_health({GPU_B.id: False})
    version, devices = state.replicas()
    assert version == 1
    assert [device.healthy for device in devices] == [True, True, True, False, False]
    assert [device.health for device in state.devices] == [True, False]


def test_a_waiting_stream_wakes_up_with_the_new_list() -> None:
    state = DeviceState([GPU_A])
    seen: list[object] = []
    waiter = threading.Thread(target=lambda: seen.append(state.wait_for_change(0, timeout=10)))
    waiter.start()
    state.set_health({GPU_A.id: False})
    waiter.join()
    assert seen == [(1, tuple(VirtualDevice(i, GPU_A.id, healthy=False) for i in replica_ids(GPU_A)))]


def test_waiting_without_a_change_returns_none_and_a_closed_state_ends_waits() -> None:
    state = DeviceState([GPU_A])
    assert state.wait_for_change(0, timeout=0.01) is None
    state.close()
    state.set_health({GPU_A.id: False})
    assert state.wait_for_change(0, timeout=10) is None
    assert state.closed


@pytest.mark.parametrize(
    "devices",
    [
        pytest.param([GPU_A, GPU_A], id="duplicate-ids"),
        pytest.param([DeviceInfo(id="x" * 62, count=10)], id="replica-id-over-63-characters"),
    ],
)
def test_devices_the_kubelet_cannot_take_are_refused(devices: list[DeviceInfo]) -> None:
    with pytest.raises(ValueError, match=r"unique|longer than 63"):
        DeviceState(devices)
