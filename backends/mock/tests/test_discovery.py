"""Simulated discovery: stable, node-specific ids and devices shaped by the settings."""

from __future__ import annotations

from hami_backend_mock.discovery import device_id
from hami_backend_mock.discovery import simulate
from hami_backend_mock.settings import DeviceGroup

from hami_core.sdk import DeviceInfo


def test_devices_follow_their_groups_with_consecutive_indexes() -> None:
    groups = (
        DeviceGroup(count=2, memory_mib=24576, type="MOCK-A100", split=5, numa=0),
        DeviceGroup(count=1, memory_mib=81920, type="MOCK-H100", cores=200, numa=1, healthy=False),
    )
    devices = simulate(groups, "node-a")
    assert [(d.index, d.type, d.devmem, d.count, d.devcore, d.numa, d.health) for d in devices] == [
        (0, "MOCK-A100", 24576, 5, 100, 0, True),
        (1, "MOCK-A100", 24576, 5, 100, 0, True),
        (2, "MOCK-H100", 81920, 10, 200, 1, False),
    ]
    assert devices[0] == DeviceInfo(
        id=device_id("node-a", 0),
        index=0,
        count=5,
        devmem=24576,
        devcore=100,
        type="MOCK-A100",
        mode="hami-core",
        health=True,
        device_vendor="mock",
    )


def test_ids_are_stable_per_node_and_differ_between_nodes() -> None:
    groups = (DeviceGroup(count=3, memory_mib=1024),)
    first = [d.id for d in simulate(groups, "node-a")]
    assert first == [d.id for d in simulate(groups, "node-a")]
    assert not set(first) & {d.id for d in simulate(groups, "node-b")}
    assert len(set(first)) == 3
    assert all(identifier.startswith("MOCK-") for identifier in first)
