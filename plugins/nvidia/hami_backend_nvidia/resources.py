"""The NVIDIA backend's names: resources, annotation keys, pod annotations, env names, defaults.

Every string another component matches on is spelled here once, exactly as HAMi v2.10 spells it
(``specs/hami-wire.md`` sections 1-2, 5). Annotation keys are built with the core's key helpers
(:mod:`hami_core.sdk`): ``hami.io/node-nvidia-register``, the bare ``hami.io/node-handshake``,
``hami.io/vgpu-devices-to-allocate`` / ``-allocated``, ``hami.io/node-nvidia-score`` and
``hami.io/vgpu-mig-allocations``.
"""

from __future__ import annotations

from hami_core.sdk import ResourceNames
from hami_core.sdk import annotation_key
from hami_core.sdk import vendor_keys

#: The backend's name on every surface (entry point, distribution suffix, Helm key).
NAME = "nvidia"
#: HAMi's CommonWord: the request type in pod annotations; NVIDIA device types contain it.
DEVICE_TYPE = "NVIDIA"
#: Registered model names start with this; NVML names that do not get ``NVIDIA-`` in front.
MODEL_PREFIX = "NVIDIA"

#: HAMi's chart defaults; each is configurable (``resourceCountName``, ...).
DEFAULT_RESOURCE_NAMES = ResourceNames(
    count="nvidia.com/gpu",
    memory="nvidia.com/gpumem",
    memory_percentage="nvidia.com/gpumem-percentage",
    cores="nvidia.com/gpucores",
    priority="nvidia.com/priority",
)

KEYS = vendor_keys(register_word=NAME, devices_word="vgpu")
#: Node annotation: GPU pair scores for topology-aware placement.
NODE_SCORE = annotation_key("node-nvidia-score")
#: Pod annotation: dynamic MIG reservations.
MIG_ALLOCATIONS = annotation_key("vgpu-mig-allocations")

# Pod annotations users set (hami-wire.md 1.2).
USE_GPUTYPE = "nvidia.com/use-gputype"
NOUSE_GPUTYPE = "nvidia.com/nouse-gputype"
USE_GPUUUID = "nvidia.com/use-gpuuuid"
NOUSE_GPUUUID = "nvidia.com/nouse-gpuuuid"
NUMA_BIND = "nvidia.com/numa-bind"
VGPU_MODE = "nvidia.com/vgpu-mode"

#: The container runtime's device list (``envvar`` device-list strategy).
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
#: What ``overwriteEnv`` writes into containers without NVIDIA resources.
VISIBLE_DEVICES_NONE = "none"

# Device modes (HAMi's ``operatingmode``).
MODE_HAMI_CORE = "hami-core"
MODE_MIG = "mig"
MODE_MPS = "mps"
MODES = (MODE_HAMI_CORE, MODE_MIG, MODE_MPS)

#: XIDs caused by applications, not the GPU: they never make a device unhealthy (HAMi, NVIDIA plugin).
DEFAULT_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
#: Environment of the device plugin: ``all``/``xids`` disable the XID watch, a number list ignores more.
DISABLE_HEALTHCHECKS_ENV = "DP_DISABLE_HEALTHCHECKS"
#: Environment of the device plugin: ``true`` publishes the pair-score annotation (HAMi's switch).
TOPOLOGY_SCORE_ENV = "ENABLE_TOPOLOGY_SCORE"
#: Environment of the device plugin: the host directory holding ``vgpu/`` (HAMi's ``HOOK_PATH``).
HOOK_PATH_ENV = "HOOK_PATH"
#: The node name, for picking this node's entry of the per-node config.
NODE_NAME_ENV = "NODE_NAME"
