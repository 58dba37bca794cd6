"""GPU discovery through NVML with nvidia-ml-py (``pynvml``): the only module that reads GPUs.

Only the device-plugin process imports it (the backend imports it lazily in ``discover``), so the
scheduler and webhook never load NVML. It reads, per GPU, what HAMi's plugin registers: UUID,
index, model name, memory (``None`` when unsupported), NUMA node (NVML's affinity, else sysfs, else
0), MIG mode, and for pair scores the P2P common-ancestor level and NVLink count between GPUs. NVML
is found through the ordinary library search path (``libnvidia-ml.so.1``); on machines without a
GPU, ``native/fakes/nvml`` builds a fake one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

import pynvml

from hami_backend_nvidia.inventory import Gpu
from hami_core.sdk import BackendError

_log = logging.getLogger(__name__)

_SYSFS_PCI = Path("/sys/bus/pci/devices")


@contextlib.contextmanager
def session() -> Iterator[None]:
    """NVML initialised for the block (reference counted, as NVML itself is).

    Raises:
        BackendError: NVML cannot be loaded or initialised (no driver, no library).
    """
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        raise BackendError(f"NVML is not available: {err}") from err
    try:
        yield
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _numa(handle: object, bus_id: str) -> int:
    """NVML's NUMA node, else the PCI device's ``numa_node`` in sysfs (HAMi's source); negative is 0."""
    numa_node_id = getattr(pynvml, "nvmlDeviceGetNumaNodeId", None)  # newer bindings only
    if numa_node_id is not None:
        try:
            return max(int(numa_node_id(handle)), 0)
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
            pass
    try:
        text = (_SYSFS_PCI / bus_id.lower()[-12:] / "numa_node").read_text(encoding="ascii")
        return max(int(text.strip()), 0)
    except (OSError, ValueError):
        return 0


def _gpu(index: int) -> Gpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    try:
        memory: int | None = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // 2**20
    except pynvml.NVMLError_NotSupported:
        memory = None
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        mig = current == pynvml.NVML_DEVICE_MIG_ENABLE
    except pynvml.NVMLError_NotSupported:
        mig = False
    bus_id = _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
    return Gpu(
        index=int(pynvml.nvmlDeviceGetIndex(handle)),
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        memory_mib=memory,
        numa=_numa(handle, bus_id),
        mig_enabled=mig,
        bus_id=bus_id,
    )


def scan() -> list[Gpu]:
    """Every GPU NVML sees, in index order.

    Raises:
        BackendError: NVML is unavailable or a query failed.
    """
    with session():
        try:
            return [_gpu(index) for index in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as err:
            raise BackendError(f"NVML device query failed: {err}") from err


def _links_to(handle: object, bus_ids: Sequence[str]) -> list[int]:
    """How many active NVLinks of ``handle`` reach each GPU of ``bus_ids``."""
    counts = [0] * len(bus_ids)
    position = {bus_id.lower(): i for i, bus_id in enumerate(bus_ids)}
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            if not pynvml.nvmlDeviceGetNvLinkState(handle, link):
                continue
            remote = _text(pynvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId).lower()
        except pynvml.NVMLError:  # links past the device's last, or no NVLink at all
            continue
        if remote in position:
            counts[position[remote]] += 1
    return counts


def links(gpus: Sequence[Gpu]) -> tuple[list[list[int]], list[list[int]]]:
    """The P2P level and NVLink count matrices between ``gpus`` (their order).

    Raises:
        BackendError: NVML is unavailable or a topology query failed.
    """
    with session():
        try:
            handles = [pynvml.nvmlDeviceGetHandleByUUID(gpu.uuid) for gpu in gpus]
            levels = [
                [
                    0 if i == j else int(pynvml.nvmlDeviceGetTopologyCommonAncestor(first, second))
                    for j, second in enumerate(handles)
                ]
                for i, first in enumerate(handles)
            ]
            nvlinks = [_links_to(handle, [gpu.bus_id for gpu in gpus]) for handle in handles]
        except pynvml.NVMLError as err:
            raise BackendError(f"NVML topology query failed: {err}") from err
    return levels, nvlinks
