"""Simulated device discovery: the mock's stand-in for a vendor SDK.

Where a vendor backend asks NVML or DCMI, the mock builds its devices from
:class:`~hami_backend_mock.settings.MockSettings`. Device ids are derived from the node name and
the device index (UUID version 5), so a node keeps its ids across restarts and two nodes never
share one, just as real GPUs have stable, unique UUIDs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hami_backend_mock import resources
from hami_backend_mock.settings import DeviceGroup
from hami_core.sdk import DeviceInfo


def device_id(node_name: str, index: int) -> str:
    """The stable id of device ``index`` on ``node_name``, e.g. ``MOCK-2b1f...``."""
    return f"{resources.UUID_PREFIX}{uuid.uuid5(resources.UUID_NAMESPACE, f'{node_name}/{index}')}"


def simulate(groups: Sequence[DeviceGroup], node_name: str) -> list[DeviceInfo]:
    """The devices of ``node_name``: each group's devices in order, indexes counting from 0.

    Args:
        groups: the node's device groups from the settings.
        node_name: the node the device plugin runs on.

    Returns:
        One :class:`DeviceInfo` per simulated device.
    """
    devices: list[DeviceInfo] = []
    for group in groups:
        for _ in range(group.count):
            index = len(devices)
            devices.append(
                DeviceInfo(
                    id=device_id(node_name, index),
                    index=index,
                    count=group.split,
                    devmem=group.memory_mib,
                    devcore=group.cores,
                    type=group.type,
                    numa=group.numa,
                    mode=group.mode,
                    health=group.healthy,
                    device_vendor=resources.NAME,
                )
            )
    return devices
