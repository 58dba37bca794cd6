"""The environment contract of the HAMi-core shim (``libvgpu.so``), ``specs/shim.md`` section 2.

This module owns the variable names the shim reads and the units HAMi writes them in; every backend
that hands limits to a HAMi-core-style shim builds its container environment with
:func:`container_env`, so NVIDIA, the mock and any vendor speak the same contract. The names must
match ``native/include/hami_shim.h`` (a meta-test compares :data:`ENV_NAMES` with it). It knows no
vendor and does no I/O.
"""

from __future__ import annotations

from typing import Literal

from hami_core.devices import ContainerDevices

#: Memory limit for every device without its own; bytes, or an integer with a ``k``/``m``/``g`` suffix.
CUDA_DEVICE_MEMORY_LIMIT = "CUDA_DEVICE_MEMORY_LIMIT"
#: Per-device memory limit: the prefix of ``CUDA_DEVICE_MEMORY_LIMIT_<i>``, ``<i>`` the CUDA ordinal.
CUDA_DEVICE_MEMORY_LIMIT_PREFIX = "CUDA_DEVICE_MEMORY_LIMIT_"
#: Compute limit in percent for every device without its own; 0 or unset means no limit.
CUDA_DEVICE_SM_LIMIT = "CUDA_DEVICE_SM_LIMIT"
#: Per-device compute limit: the prefix of ``CUDA_DEVICE_SM_LIMIT_<i>``.
CUDA_DEVICE_SM_LIMIT_PREFIX = "CUDA_DEVICE_SM_LIMIT_"
#: Path of the container's shared region (``hami monitor`` reads it from the host side).
CUDA_DEVICE_MEMORY_SHARED_CACHE = "CUDA_DEVICE_MEMORY_SHARED_CACHE"
#: ``true`` when device memory is scaled above the physical size (HAMi sets it; HAMi-core ignores it).
CUDA_OVERSUBSCRIBE = "CUDA_OVERSUBSCRIBE"
#: Task priority: lower is more important; HAMi's two classes are 0 (high) and 1 (low, the default).
CUDA_TASK_PRIORITY = "CUDA_TASK_PRIORITY"
#: ``force`` always limits compute, ``disable`` never does; anything else follows the monitor's switch.
GPU_CORE_UTILIZATION_POLICY = "GPU_CORE_UTILIZATION_POLICY"
#: Shim log verbosity, 0-4 (2 is the shim's default).
LIBCUDA_LOG_LEVEL = "LIBCUDA_LOG_LEVEL"
#: Whether the shim kills a process over its memory limit (parsed, not acted on by HAMi-core).
ACTIVE_OOM_KILLER = "ACTIVE_OOM_KILLER"
#: Minimum seconds between two kernel-time records in the shared region.
RECORD_KERNEL_INTERVAL = "RECORD_KERNEL_INTERVAL"
#: Where the shim finds itself for its self-``dlopen``.
CUDA_REDIRECT = "CUDA_REDIRECT"
#: Read by the device plugin only: a true value in the container spec omits the ``ld.so.preload`` mount.
CUDA_DISABLE_CONTROL = "CUDA_DISABLE_CONTROL"

#: Every variable the shim reads, prefixes included, in the order of ``specs/shim.md`` section 2
#: (``CUDA_VISIBLE_DEVICES``, CUDA's own, is left out). ``native/include/hami_shim.h`` names the same.
ENV_NAMES = (
    CUDA_DEVICE_MEMORY_LIMIT,
    CUDA_DEVICE_MEMORY_LIMIT_PREFIX,
    CUDA_DEVICE_SM_LIMIT,
    CUDA_DEVICE_SM_LIMIT_PREFIX,
    CUDA_DEVICE_MEMORY_SHARED_CACHE,
    CUDA_TASK_PRIORITY,
    GPU_CORE_UTILIZATION_POLICY,
    LIBCUDA_LOG_LEVEL,
    ACTIVE_OOM_KILLER,
    RECORD_KERNEL_INTERVAL,
    CUDA_REDIRECT,
)

#: Variables of HAMi's contract the shim does not read: one the plugin writes for compatibility,
#: one the plugin reads from the container spec.
PLUGIN_ONLY_NAMES = (CUDA_OVERSUBSCRIBE, CUDA_DISABLE_CONTROL)

#: Values of :data:`GPU_CORE_UTILIZATION_POLICY` (HAMi's ``gpuCorePolicy``; ``default`` writes nothing).
CorePolicy = Literal["default", "force", "disable"]


def memory_limit_name(position: int) -> str:
    """``CUDA_DEVICE_MEMORY_LIMIT_<position>``: the limit of the container's ``position``-th device."""
    return f"{CUDA_DEVICE_MEMORY_LIMIT_PREFIX}{position}"


def memory_limit_value(mib: int) -> str:
    """A memory limit in HAMi's unit, e.g. ``3000m`` for 3000 MiB (the shim reads ``m`` as MiB)."""
    return f"{mib}m"


def container_env(
    devices: ContainerDevices,
    *,
    shared_cache: str = "",
    task_priority: int | None = None,
    core_policy: CorePolicy = "default",
    oversubscribe: bool = False,
    log_level: str = "",
) -> dict[str, str]:
    """The shim's environment for a container given ``devices``, as HAMi's NVIDIA ``Allocate`` writes it.

    ``CUDA_DEVICE_MEMORY_LIMIT_<i>`` per device in the order given (the container sees them as
    CUDA ordinals 0, 1, ...) and one ``CUDA_DEVICE_SM_LIMIT`` from the first device's cores (HAMi
    sets one value for all devices); then the optional variables. No devices give no limits.

    Args:
        devices: the container's entry of the pod's to-allocate annotation.
        shared_cache: the shared region's path inside the container; empty leaves the shim's default.
        task_priority: the container's priority; ``None`` leaves the shim's default (1).
        core_policy: anything but ``default`` is written to ``GPU_CORE_UTILIZATION_POLICY``.
        oversubscribe: write ``CUDA_OVERSUBSCRIBE=true`` (memory scaled above the physical size).
        log_level: the shim's log level; empty leaves its default.

    Returns:
        Variable name to value, in a stable order.
    """
    env = {memory_limit_name(i): memory_limit_value(device.usedmem) for i, device in enumerate(devices)}
    if devices:
        env[CUDA_DEVICE_SM_LIMIT] = str(devices[0].usedcores)
    if shared_cache:
        env[CUDA_DEVICE_MEMORY_SHARED_CACHE] = shared_cache
    if oversubscribe:
        env[CUDA_OVERSUBSCRIBE] = "true"
    if log_level:
        env[LIBCUDA_LOG_LEVEL] = log_level
    if core_policy != "default":
        env[GPU_CORE_UTILIZATION_POLICY] = core_policy
    if task_priority is not None:
        env[CUDA_TASK_PRIORITY] = str(task_priority)
    return env
