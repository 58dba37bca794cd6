"""The container environment of the mock: the HAMi-core shim's contract, plus the mock's device list.

A container given mock devices gets what HAMi's NVIDIA ``Allocate`` gives a container on HAMi-core
(names and units from :func:`hami_core.sdk.shim_env`, ``specs/shim.md`` section 2):
``CUDA_DEVICE_MEMORY_LIMIT_<i>=<MiB>m`` per device in the order the scheduler gave them,
``CUDA_DEVICE_SM_LIMIT`` from the first device's cores (HAMi sets one value for all), and
``CUDA_TASK_PRIORITY`` when the container asks a priority. ``MOCK_VISIBLE_DEVICES`` lists the
device ids the way ``NVIDIA_VISIBLE_DEVICES`` does, so demos and tests can check what a container
saw. The mock mounts nothing, so it sets no shared-region path: the shim uses its default.
"""

from __future__ import annotations

from hami_core.sdk import CUDA_DEVICE_MEMORY_LIMIT_PREFIX
from hami_core.sdk import CUDA_DEVICE_SM_LIMIT
from hami_core.sdk import CUDA_TASK_PRIORITY
from hami_core.sdk import ContainerDevices
from hami_core.sdk import shim_env

#: Comma-separated device ids given to the container (the mock's ``NVIDIA_VISIBLE_DEVICES``).
VISIBLE_DEVICES = "MOCK_VISIBLE_DEVICES"
#: Per-device memory limit; ``<i>`` is the device's position in the container's list.
MEMORY_LIMIT_PREFIX = CUDA_DEVICE_MEMORY_LIMIT_PREFIX
#: Compute limit in percent for all devices; 0 means no limit.
SM_LIMIT = CUDA_DEVICE_SM_LIMIT
#: Task priority; lower is more important.
TASK_PRIORITY = CUDA_TASK_PRIORITY


def visible_devices_env(devices: ContainerDevices) -> dict[str, str]:
    """``MOCK_VISIBLE_DEVICES`` with each device id once, in the given order."""
    return {VISIBLE_DEVICES: ",".join(dict.fromkeys(device.uuid for device in devices))}


def limits_env(devices: ContainerDevices, task_priority: int | None = None) -> dict[str, str]:
    """The shim's memory and compute limits for ``devices`` (empty for no devices), and the priority."""
    return shim_env(devices, task_priority=task_priority)
