"""``NvidiaBackend``: HAMi's NVIDIA device type on the hami contract.

Admission, request parsing, fit rules and allocation follow HAMi v2.10 (``specs/hami-wire.md``
2.3, 3.4, 4, 5.4); device discovery and XID health use NVML through nvidia-ml-py, imported lazily
by :meth:`NvidiaBackend.discover` and the health watch, so the scheduler and webhook processes
never load NVML.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar
from typing import cast

from hami_backend_nvidia import codec as nvidia_codec
from hami_backend_nvidia import isolation
from hami_backend_nvidia import resources
from hami_backend_nvidia import topology
from hami_backend_nvidia.health import XidWatch
from hami_backend_nvidia.health import parse_disable_healthchecks
from hami_backend_nvidia.inventory import register_devices
from hami_backend_nvidia.settings import NvidiaSettings
from hami_backend_nvidia.settings import parse_settings
from hami_core.sdk import CUDA_TASK_PRIORITY
from hami_core.sdk import DEVICE_CORDON
from hami_core.sdk import GPU_CORE_UTILIZATION_POLICY
from hami_core.sdk import BackendError
from hami_core.sdk import CodecError
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevices
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceBackend
from hami_core.sdk import DeviceInfo
from hami_core.sdk import FitContext
from hami_core.sdk import FitRules
from hami_core.sdk import HamiConfig
from hami_core.sdk import MutationResult
from hami_core.sdk import PodView
from hami_core.sdk import RequestRules
from hami_core.sdk import ResourceNames
from hami_core.sdk import ShimCorePolicy
from hami_core.sdk import check_type
from hami_core.sdk import check_uuid
from hami_core.sdk import parse_bool_go
from hami_core.sdk import parse_cordon
from hami_core.sdk import whole_quantity

_log = logging.getLogger(__name__)


def mode_allowed(device_mode: str, wanted: str | None) -> bool:
    """``nvidia.com/vgpu-mode``: when set, it must contain the device's mode (substring, as HAMi)."""
    return wanted is None or device_mode in wanted


@functools.lru_cache(maxsize=256)
def _pair_scores(value: str) -> Mapping[str, Mapping[str, int]]:
    return nvidia_codec.decode_pair_scores(value)


def _numa_bind(value: str | None) -> bool:
    if value is None:
        return False
    try:
        return parse_bool_go(value)
    except CodecError:
        return False


class NvidiaBackend(DeviceBackend):
    """NVIDIA GPUs, as HAMi shares them.

    Args:
        settings: the ``backends.nvidia`` settings; :meth:`from_config` reads them.
        node_name: the node this process runs on, for per-node settings (``NODE_NAME`` by default).
    """

    contract_version: ClassVar[str] = "3.0"
    #: Always ``nvidia``.
    name = resources.NAME
    #: ``hami.io/node-nvidia-register``, ``hami.io/node-handshake``, ``hami.io/vgpu-devices-*``.
    keys = resources.KEYS
    #: ``NVIDIA`` (HAMi's CommonWord).
    device_type = resources.DEVICE_TYPE

    def __init__(self, settings: NvidiaSettings | None = None) -> None:
        self.settings = settings if settings is not None else NvidiaSettings()
        self._lock = threading.Lock()
        self._watch: XidWatch | None = None
        self._node_name = ""
        self._pair_value = ""

    @classmethod
    def from_config(cls, config: HamiConfig) -> NvidiaBackend:
        """The backend configured by ``config``'s ``backends.nvidia`` section.

        Raises:
            ConfigError: the section or its node config file is invalid.
        """
        return cls(parse_settings(config))

    # --- identity ---------------------------------------------------------------------------

    @property
    def resource_names(self) -> ResourceNames:
        """``nvidia.com/gpu``, ``/gpumem``, ``/gpumem-percentage``, ``/gpucores``, ``/priority`` unless configured."""
        return self.settings.resource_names

    @property
    def request_rules(self) -> RequestRules:
        """``memoryFactor``, ``defaultMemory`` and ``defaultCores`` from the settings."""
        return RequestRules(
            memory_factor=self.settings.memory_factor,
            default_memory=self.settings.default_memory,
            default_cores=self.settings.default_cores,
        )

    # --- admission --------------------------------------------------------------------------

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        """HAMi's NVIDIA ``MutateAdmission`` (``specs/hami-wire.md`` 4).

        A percentage outside 0..100 is refused; a priority limit becomes ``CUDA_TASK_PRIORITY``;
        a non-default ``gpuCorePolicy`` goes into every container's env; a container asking only
        memory or cores gets ``defaultGPUNum`` GPUs; a whole-card request (no memory, or 100 %)
        without cores gets ``gpucores: 100`` (exclusive); ``runtimeClassName`` is proposed; and
        with ``overwriteEnv`` a container without GPUs sees none.

        Raises:
            BackendError: the percentage or priority is malformed, or the container is.
        """
        names = self.resource_names
        settings = self.settings
        percentage_raw = container.value(names.memory_percentage) if names.memory_percentage else None
        percentage = None
        if percentage_raw is not None:
            percentage = whole_quantity(container, names.memory_percentage, percentage_raw, maximum=2**63 - 1)
            if not 0 <= percentage <= 100:
                raise BackendError(
                    f"invalid {names.memory_percentage} value {percentage_raw} in container "
                    f"{container.label}: must be an integer between 0 and 100"
                )
        env = _env_list(container.spec)
        limits = _limits(container.spec)
        changed = False
        if names.priority and (priority := container.limit(names.priority)) is not None:
            level = whole_quantity(container, names.priority, priority)
            env.append({"name": CUDA_TASK_PRIORITY, "value": str(level)})
            changed = True
        if settings.gpu_core_policy != "default":
            env.append({"name": GPU_CORE_UTILIZATION_POLICY, "value": settings.gpu_core_policy})
            changed = True
        has_resource = names.count in limits
        if not has_resource and settings.default_gpu_num > 0:
            shares = (names.cores, names.memory, names.memory_percentage)
            if any(name and name in limits for name in shares):
                limits[names.count] = str(settings.default_gpu_num)
                has_resource = changed = True
        count_present = names.count in limits or container.value(names.count) is not None
        memory_asked = bool(names.memory) and container.value(names.memory) is not None
        exclusive = percentage == 100 or (percentage_raw is None and not memory_asked) or not names.memory
        if count_present and names.cores and container.value(names.cores) is None and exclusive:
            limits[names.cores] = "100"
            has_resource = changed = True
        if not has_resource and settings.overwrite_env:
            env.append({"name": resources.VISIBLE_DEVICES, "value": resources.VISIBLE_DEVICES_NONE})
            changed = True
        mutated = None
        if changed:
            mutated = dict(container.spec)
            mutated["env"] = env
            mutated["resources"] = {**_resources(container.spec), "limits": limits}
        return MutationResult(
            has_resource=has_resource,
            container=mutated,
            runtime_class_name=settings.runtime_class_name if has_resource else "",
        )

    # --- scheduling -------------------------------------------------------------------------

    def node_devices(self, node_annotations: Mapping[str, str]) -> list[DeviceInfo]:
        """The node's registered GPUs; also checks its pair-score annotation, as HAMi does.

        Raises:
            CodecError: the register or pair-score annotation is malformed (HAMi then drops the
                node's GPUs).
            BackendError: the register annotation lists no GPU.
        """
        devices = super().node_devices(node_annotations)
        scores = node_annotations.get(resources.NODE_SCORE)
        if devices and scores is not None:
            _pair_scores(scores)
        return devices

    def node_health(self, handshake_healthy: bool, allocatable: int, peak_allocatable: int) -> bool:
        """HAMi's NVIDIA rule (``specs/hami-wire.md`` 3.9): once the node's GPUs were allocatable,
        a count of 0 means the plugin or every GPU is gone, so the node is unhealthy at once, not
        after the handshake expires. Unlike HAMi, which flags the drop for one pass only, it stays
        unhealthy until GPUs are allocatable again."""
        if allocatable == 0 and peak_allocatable > 0:
            return False
        return handshake_healthy

    def fit_rules(self, context: FitContext) -> FitRules:
        """Type and mode (``use-gputype``, ``nouse-gputype``, ``vgpu-mode``), UUID lists, the node's
        cordon list, NUMA binding and the node's pair scores (``specs/hami-wire.md`` 3.4)."""
        pod = context.pod_annotations
        mode = pod.get(resources.VGPU_MODE)
        scores_value = context.node_annotations.get(resources.NODE_SCORE)
        try:
            scores = _pair_scores(scores_value) if scores_value else {}
        except CodecError:
            scores = {}
        try:
            cordoned = parse_cordon(context.node_annotations.get(DEVICE_CORDON))
        except CodecError:
            cordoned = frozenset()
        return FitRules(
            request_type=self.device_type,
            type_ok=lambda device: (
                check_type(pod, device.type, resources.USE_GPUTYPE, resources.NOUSE_GPUTYPE)
                and mode_allowed(device.mode, mode)
            ),
            uuid_ok=lambda uuid: check_uuid(pod, uuid, resources.USE_GPUUUID, resources.NOUSE_GPUUUID),
            cordoned=cordoned,
            numa_bind=_numa_bind(pod.get(resources.NUMA_BIND)),
            pair_scores=scores,
        )

    # --- node -------------------------------------------------------------------------------

    def _node(self, node_name: str) -> str:
        return node_name or os.environ.get(resources.NODE_NAME_ENV, "")

    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The node's GPUs from NVML, as HAMi's plugin registers them; starts watching their XID events
        and remembers their pair scores.

        Raises:
            BackendError: NVML is not available or a query failed.
        """
        from hami_backend_nvidia import discovery

        node = self.settings.for_node(self._node(node_name))
        gpus = discovery.scan()
        devices = register_devices(gpus, node)
        if self._topology_score_enabled():
            registered = [gpu for gpu in gpus if any(device.id == gpu.uuid for device in devices)]
            levels, nvlinks = discovery.links(registered)
            scored = topology.pair_scores([gpu.uuid for gpu in registered], levels, nvlinks)
            for first, second in scored.asymmetric:
                _log.warning(
                    "asymmetric P2P/NVLink data between GPUs %s and %s: their pair scores 0", first, second
                )
            with self._lock:
                self._pair_value = nvidia_codec.encode_pair_scores(scored.scores)
        with self._lock:
            self._node_name = node_name
        self._start_xid_watch(devices)
        return devices

    def _topology_score_enabled(self) -> bool:
        return self.settings.topology_score or os.environ.get(resources.TOPOLOGY_SCORE_ENV) == "true"

    def extra_node_annotations(self, devices: Sequence[DeviceInfo]) -> Mapping[str, str]:
        """``hami.io/node-nvidia-score`` when topology scoring is on and discovery computed it."""
        with self._lock:
            return {resources.NODE_SCORE: self._pair_value} if self._pair_value else {}

    def _start_xid_watch(self, devices: Sequence[DeviceInfo]) -> None:
        """Start watching XID events of ``devices`` unless health checks are off (once per backend)."""
        enabled, extra = parse_disable_healthchecks(os.environ.get(resources.DISABLE_HEALTHCHECKS_ENV, ""))
        if not (enabled and self.settings.health_checks):
            return
        with self._lock:
            if self._watch is None:
                self._watch = XidWatch(
                    self.settings.ignored_xids | extra, self.settings.health_recovery_seconds
                )
                self._watch.start([device.id for device in devices])

    def health(self, devices: Sequence[DeviceInfo]) -> Mapping[str, bool]:
        """Discovery health, minus GPUs with a recent critical XID (watched from :meth:`discover` on)."""
        with self._lock:
            watch = self._watch
        bad = watch.unhealthy() if watch is not None else frozenset()
        return {device.id: device.health and device.id not in bad for device in devices}

    def close(self) -> None:
        """Stop the XID watch, if it runs."""
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """``NVIDIA_VISIBLE_DEVICES`` plus, on HAMi-core nodes, the shim's env and mounts (spec 5.4).

        Creates the container's host cache directory, as HAMi's plugin does.

        Raises:
            BackendError: no GPU, a device of another type, or the host directory cannot be made.
        """
        if not devices:
            raise BackendError(f"container {container.label}: no NVIDIA device to allocate")
        foreign = [device.uuid for device in devices if device.type != self.device_type]
        if foreign:
            raise BackendError(
                f"container {container.label}: devices {', '.join(foreign)} are not {self.device_type} devices"
            )
        pod_uid = pod.uid
        node = self.settings.for_node(self._node(self._node_name))
        paths = isolation.ShimPaths(os.environ.get(resources.HOOK_PATH_ENV) or self.settings.hook_path)
        core_policy = "disable" if self.settings.disable_core_limit else self.settings.gpu_core_policy
        result = isolation.container_allocation(
            devices,
            container_name=container.name,
            env=container.env,
            pod_uid=pod_uid,
            paths=paths,
            mode=node.mode,
            oversubscribe=node.memory_scaling > 1,
            log_level=node.log_level,
            core_policy=cast("ShimCorePolicy", core_policy),
        )
        if node.mode != resources.MODE_MIG:
            directory = Path(paths.container_dir(pod_uid, container.name))
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise BackendError(f"cannot create the shim cache directory {directory}: {err}") from err
        return result


def _resources(container: Mapping[str, object]) -> dict[str, object]:
    current = container.get("resources")
    return dict(current) if isinstance(current, Mapping) else {}


def _limits(container: Mapping[str, object]) -> dict[str, object]:
    limits = _resources(container).get("limits")
    return dict(limits) if isinstance(limits, Mapping) else {}


def _env_list(container: Mapping[str, object]) -> list[object]:
    """The container's ``env`` entries (the pod view has checked that it is a list)."""
    env = container.get("env")
    return list(env) if isinstance(env, list) else []
