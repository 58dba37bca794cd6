"""The host GPUs' own figures (``hami_host_gpu_*``), from NVML through nvidia-ml-py.

Only the monitor process loads NVML (the scheduler never does). On a node without the library the
monitor still exports every container metric and says once why the host metrics are missing.
"""

from __future__ import annotations

import logging
from typing import Any

from hami_core.monitor.snapshot import HostDevice

log = logging.getLogger(__name__)


class NvmlHost:
    """Reads every NVIDIA device's memory use and utilization on each call."""

    def __init__(self) -> None:
        import pynvml  # nvidia-ml-py: installed with the NVIDIA backend

        self._nvml: Any = pynvml
        pynvml.nvmlInit()

    def __call__(self) -> list[HostDevice]:
        nvml = self._nvml
        devices = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            devices.append(
                HostDevice(
                    index=index,
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    type=name.decode() if isinstance(name, bytes) else str(name),
                    memory_used_bytes=int(memory.used),
                    utilization=int(rates.gpu),
                    memory_utilization=int(rates.memory),
                )
            )
        return devices

    def close(self) -> None:
        self._nvml.nvmlShutdown()


def nvml_host() -> NvmlHost | None:
    """NVML's host figures, or None (logged) where NVML or its Python binding is missing."""
    try:
        return NvmlHost()
    except ImportError:
        log.warning("the NVML binding (pynvml) is not installed: no hami_host_gpu_* metrics")
    except Exception as err:  # pynvml.NVMLError and the like: no driver on this node
        log.warning("NVML unavailable (%s): no hami_host_gpu_* metrics", err)
    return None
