"""What a container given NVIDIA GPUs receives from ``Allocate`` (``specs/hami-wire.md`` 5.4).

``NVIDIA_VISIBLE_DEVICES`` lists the GPUs (each once, in the scheduler's order). On HAMi-core nodes
(``hami-core`` and ``mps`` modes) the container also gets the shim's contract (names from
:func:`hami_core.sdk.shim_env`): ``CUDA_DEVICE_MEMORY_LIMIT_<i>=<MiB>m``, ``CUDA_DEVICE_SM_LIMIT``
from the first GPU, ``CUDA_DEVICE_MEMORY_SHARED_CACHE`` (one fresh file per container, in the
container's own host directory), ``CUDA_OVERSUBSCRIBE`` when memory is scaled up,
``LIBCUDA_LOG_LEVEL`` and ``GPU_CORE_UTILIZATION_POLICY``; and the mounts HAMi gives: the shim
library, the per-container cache directory ``<hook>/vgpu/containers/<pod uid>_<container>``,
``/tmp/vgpulock``, and ``/etc/ld.so.preload`` unless the container sets ``CUDA_DISABLE_CONTROL``.
MIG nodes skip the shim, as HAMi does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import PurePosixPath

import attrs

from hami_backend_nvidia import resources
from hami_core.sdk import CUDA_DISABLE_CONTROL
from hami_core.sdk import CodecError
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevices
from hami_core.sdk import Mount
from hami_core.sdk import ShimCorePolicy
from hami_core.sdk import parse_bool_go
from hami_core.sdk import shim_env

#: Shared lock directory HAMi mounts into every container (host and container path alike).
VGPU_LOCK_DIR = "/tmp/vgpulock"
#: Where the dynamic loader reads libraries to preload.
LD_SO_PRELOAD = "/etc/ld.so.preload"


@attrs.frozen
class ShimPaths:
    """The host layout under HAMi's hook path (``HOOK_PATH``, the chart's ``/usr/local``)."""

    hook_path: str

    @property
    def vgpu(self) -> PurePosixPath:
        """``<hook>/vgpu``: shim library, ``ld.so.preload``, and the per-container directories."""
        return PurePosixPath(self.hook_path) / "vgpu"

    def container_dir(self, pod_uid: str, container: str) -> PurePosixPath:
        """The host directory of one container's shared region: ``<hook>/vgpu/containers/<uid>_<name>``."""
        return self.vgpu / "containers" / f"{pod_uid}_{container}"


def visible_devices_env(devices: ContainerDevices) -> dict[str, str]:
    """``NVIDIA_VISIBLE_DEVICES`` with each GPU once, in the given order."""
    return {resources.VISIBLE_DEVICES: ",".join(dict.fromkeys(device.uuid for device in devices))}


def _control_disabled(env: Mapping[str, str]) -> bool:
    """``CUDA_DISABLE_CONTROL`` in the container spec parses as Go's true."""
    try:
        return parse_bool_go(env.get(CUDA_DISABLE_CONTROL, "false"))
    except CodecError:
        return False


def container_allocation(
    devices: ContainerDevices,
    *,
    container_name: str,
    env: Mapping[str, str],
    pod_uid: str,
    paths: ShimPaths,
    mode: str,
    oversubscribe: bool,
    log_level: str,
    core_policy: ShimCorePolicy,
) -> ContainerAllocation:
    """Env and mounts for a container given ``devices``; pure (the caller creates host directories).

    Args:
        devices: the container's entry of the pod's to-allocate annotation.
        container_name: the container's name, naming its host directory.
        env: the container spec's env (``CUDA_DISABLE_CONTROL`` switches the preload off).
        pod_uid: the pod's uid, naming the container's host directory.
        paths: the host hook layout.
        mode: the node's operating mode; ``mig`` gives the visible devices only.
        oversubscribe: device memory is scaled above the physical size.
        log_level: the shim's log level.
        core_policy: the compute-limit policy written for the shim.
    """
    envs = visible_devices_env(devices)
    if mode == resources.MODE_MIG:
        return ContainerAllocation(envs=envs)
    cache = paths.vgpu / f"{uuid.uuid4()}.cache"
    envs.update(
        shim_env(
            devices,
            shared_cache=str(cache),
            oversubscribe=oversubscribe,
            log_level=log_level,
            core_policy=core_policy,
        )
    )
    library = str(paths.vgpu / "libvgpu.so")
    mounts = [
        Mount(container_path=library, host_path=library, read_only=True),
        Mount(
            container_path=str(paths.vgpu),
            host_path=str(paths.container_dir(pod_uid, container_name)),
            read_only=False,
        ),
        Mount(container_path=VGPU_LOCK_DIR, host_path=VGPU_LOCK_DIR, read_only=False),
    ]
    if not _control_disabled(env):
        mounts.append(
            Mount(container_path=LD_SO_PRELOAD, host_path=str(paths.vgpu / "ld.so.preload"), read_only=True)
        )
    return ContainerAllocation(envs=envs, mounts=tuple(mounts))
