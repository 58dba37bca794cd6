"""What the device plugin registers for the GPUs NVML reported; pure, no NVML.

:class:`Gpu` holds the facts :mod:`hami_backend_nvidia.discovery` reads; :func:`register_devices`
turns them into HAMi's ``DeviceInfo`` list under the node's settings (``specs/hami-wire.md`` 5.3):
``count`` = split count, ``devmem`` = MiB x memory scaling (rounded down), ``devcore`` = 100 x core
scaling (100 in MIG mode), ``type`` = NVML name with HAMi's ``NVIDIA-`` prefix rule, the node's
operating mode, and no entry for GPUs in ``filterdevices`` or whose memory is unknown and not
pre-configured.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import attrs

from hami_backend_nvidia import resources
from hami_backend_nvidia.settings import NodeSettings
from hami_core.sdk import DeviceInfo

_log = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1


@attrs.frozen
class Gpu:
    """One GPU as NVML describes it.

    Args:
        index: NVML index.
        uuid: ``GPU-...``.
        name: NVML's model name (``NVIDIA A100-SXM4-80GB``, ``Tesla T4``).
        memory_mib: total memory; ``None`` when NVML cannot tell (unified-memory GPUs).
        numa: NUMA node; 0 when the driver reports none.
        mig_enabled: MIG mode is on.
        bus_id: PCI bus id.
    """

    index: int
    uuid: str
    name: str
    memory_mib: int | None
    numa: int = 0
    mig_enabled: bool = False
    bus_id: str = ""


def model_type(name: str) -> str:
    """The registered type: NVML's name, with ``NVIDIA-`` in front unless it starts with ``NVIDIA``."""
    return name if name.startswith(resources.MODEL_PREFIX) else f"{resources.MODEL_PREFIX}-{name}"


def register_devices(gpus: Sequence[Gpu], node: NodeSettings) -> list[DeviceInfo]:
    """The devices to register for ``gpus`` on a node with settings ``node``, in NVML index order."""
    devices = []
    for gpu in sorted(gpus, key=lambda g: g.index):
        if gpu.uuid in node.filter_uuids or gpu.index in node.filter_indexes:
            continue
        memory = gpu.memory_mib if gpu.memory_mib is not None else node.preconfigured_memory
        if not memory:
            _log.warning(
                "GPU %s: NVML reports no memory size and none is pre-configured; not registered", gpu.uuid
            )
            continue
        mig = node.mode == resources.MODE_MIG
        devices.append(
            DeviceInfo(
                id=gpu.uuid,
                index=gpu.index,
                count=node.split_count,
                devmem=min(_INT32_MAX, math.floor(memory * node.memory_scaling)) if not mig else memory,
                devcore=100 if mig else min(_INT32_MAX, int(node.core_scaling * 100)),
                type=model_type(gpu.name),
                numa=max(gpu.numa, 0),
                mode=node.mode,
                health=True,
                device_vendor=resources.NAME,
            )
        )
    return devices
