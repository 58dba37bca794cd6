"""The container environment of the mock: the same contract the NVIDIA shim reads.

A container given mock devices gets the variables HAMi-core reads (``specs/shim.md`` section 2),
with HAMi's units: ``CUDA_DEVICE_MEMORY_LIMIT_<i>=<MiB>m`` per device in the order the scheduler
gave them, ``CUDA_DEVICE_SM_LIMIT`` from the first device's cores (HAMi sets one value for all),
and ``CUDA_TASK_PRIORITY`` from the priority resource. ``MOCK_VISIBLE_DEVICES`` lists the device
ids the way ``NVIDIA_VISIBLE_DEVICES`` does, so demos and tests can check what a container saw.
"""

from __future__ import annotations

from hami_core import ContainerDevices

#: Comma-separated device ids given to the container (the mock's ``NVIDIA_VISIBLE_DEVICES``).
VISIBLE_DEVICES = "MOCK_VISIBLE_DEVICES"
#: Per-device memory limit; ``<i>`` is the device's position in the container's list.
MEMORY_LIMIT_PREFIX = "CUDA_DEVICE_MEMORY_LIMIT_"
#: Compute limit in percent for all devices; 0 means no limit.
SM_LIMIT = "CUDA_DEVICE_SM_LIMIT"
#: Task priority; lower is more important.
TASK_PRIORITY = "CUDA_TASK_PRIORITY"


def visible_devices_env(devices: ContainerDevices) -> dict[str, str]:
    """``MOCK_VISIBLE_DEVICES`` with each device id once, in the given order."""
    return {VISIBLE_DEVICES: ",".join(dict.fromkeys(device.uuid for device in devices))}


def limits_env(devices: ContainerDevices) -> dict[str, str]:
    """The shim's memory and compute limits for ``devices`` (empty for no devices)."""
    env = {
        f"{MEMORY_LIMIT_PREFIX}{position}": f"{device.usedmem}m" for position, device in enumerate(devices)
    }
    if devices:
        env[SM_LIMIT] = str(devices[0].usedcores)
    return env
