"""``AscendBackend``: one Huawei Ascend chip, wire-compatible with HAMi v2.10 (``specs/hami-wire.md`` 6.1).

Admission rounds memory requests up to the chip's vNPU templates (or the whole NPU), refuses
what HAMi refuses with a message that says what to ask instead (a vNPU on several devices, a
core request outside the soft-split mode, an odd 910C count), and turns a 910C request of 1 into
one two-NPU module. Scheduling uses HAMi's Ascend fit: UUID filters, the soft-split mode (node
support, 100 % cores), NetworkID topology for the 910 family and whole-module pairing for the
910C; the pod also gets the ``huawei.com/<chip>`` runtime JSON with template names. Node side:
NPUs come from ``npu-smi`` through :mod:`hami_backend_ascend.discovery` (device-plugin process only),
and ``allocate`` creates a vNPU per template share and hands out ``ASCEND_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from hami_backend_ascend import discovery
from hami_backend_ascend import resources
from hami_backend_ascend.discovery import NpuChip
from hami_backend_ascend.discovery import NpuInventory
from hami_backend_ascend.settings import AscendSettings
from hami_backend_ascend.settings import parse_settings
from hami_core.sdk import ALLOCATED_CARDS_INSUFFICIENT_REQUEST
from hami_core.sdk import CARD_COMPUTE_UNITS_EXHAUSTED
from hami_core.sdk import CARD_INSUFFICIENT_CORE
from hami_core.sdk import CARD_INSUFFICIENT_MEMORY
from hami_core.sdk import CARD_NOT_HEALTH
from hami_core.sdk import CARD_TIME_SLICING_EXHAUSTED
from hami_core.sdk import CARD_TYPE_MISMATCH
from hami_core.sdk import CARD_UUID_MISMATCH
from hami_core.sdk import EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
from hami_core.sdk import MODE_NOT_FIT
from hami_core.sdk import NODE_INSUFFICIENT_DEVICE
from hami_core.sdk import BackendError
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevice
from hami_core.sdk import ContainerDevices
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceBackend
from hami_core.sdk import DeviceInfo
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from hami_core.sdk import FitResult
from hami_core.sdk import HamiConfig
from hami_core.sdk import MutationResult
from hami_core.sdk import PodSingleDevice
from hami_core.sdk import PodView
from hami_core.sdk import RequestRules
from hami_core.sdk import ResourceNames
from hami_core.sdk import VendorKeys
from hami_core.sdk import check_uuid
from hami_core.sdk import encode_node_devices
from hami_core.sdk import whole_quantity

_FULL_CORES = 100


def inventory_for(settings: AscendSettings) -> NpuInventory:
    """The discovery adapter the settings ask for: a shipped fake, a saved output, else ``npu-smi``.

    Raises:
        BackendError: the named fake is not shipped.
    """
    if settings.fake:
        return discovery.FakeNpuSmi(discovery.fake_output(settings.fake))
    if settings.npu_smi_output:
        return discovery.FakeNpuSmi(Path(settings.npu_smi_output))
    return discovery.NpuSmi(settings.npu_smi)


def _go_json_string(text: str) -> str:
    """A JSON string as Go's ``json.Marshal`` writes it (raw UTF-8, HTML-safe escapes)."""
    escaped = json.dumps(text, ensure_ascii=False)
    for raw, go in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        escaped = escaped.replace(raw, go)
    return escaped


def _network_id(info: Mapping[str, object]) -> int | None:
    value = info.get(resources.NETWORK_ID)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


class AscendBackend(DeviceBackend):
    """One Ascend chip (``huawei.com/<chip>``, ``-memory``, ``-core``).

    Args:
        settings: the chip's table entry and overrides, and where discovery reads the NPUs.
        inventory: where discovery reads the NPUs and creates vNPUs; by default what the
            settings name.
    """

    contract_version: ClassVar[str] = "3.0"

    def __init__(self, settings: AscendSettings, inventory: NpuInventory | None = None) -> None:
        self.settings = settings
        self.chip = settings.chip
        self._inventory = inventory
        self._npus: dict[int, NpuChip] = {}
        self._allocating = threading.Lock()

    @classmethod
    def from_config(cls, config: HamiConfig, chip: resources.Chip) -> AscendBackend:
        """``chip``'s backend configured by its ``backends.<name>`` section.

        Raises:
            ConfigError: the section is invalid.
        """
        return cls(parse_settings(config, chip))

    # --- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The chip's backend name, e.g. ``ascend910b3`` (``ascend910b41`` for ``Ascend910B4-1``)."""
        return self.chip.backend_name

    @property
    def resource_names(self) -> ResourceNames:
        """``huawei.com/<chip>``, ``huawei.com/<chip>-memory``, ``huawei.com/<chip>-core`` unless renamed."""
        return self.settings.resource_names

    @property
    def keys(self) -> VendorKeys:
        """``hami.io/node-register-<chip>``, ``hami.io/node-handshake-<chip>``, ``hami.io/<chip>-devices-*``."""
        return resources.keys(self.chip.common_word)

    @property
    def device_type(self) -> str:
        """The chip's CommonWord, e.g. ``Ascend910B3``."""
        return self.chip.common_word

    @property
    def request_rules(self) -> RequestRules:
        """The chip's memory factor."""
        return RequestRules(memory_factor=self.chip.memory_factor)

    # --- templates --------------------------------------------------------------------------

    def trim_memory(self, memory: int) -> tuple[int, str]:
        """HAMi's ``trimMemory``: the smallest template holding ``memory`` (memory, name); else the
        whole NPU (``memoryAllocatable``, ``""``) up to ``memoryCapacity``; else ``(0, "")``."""
        for template in self.chip.templates:
            if memory <= template.memory:
                return template.memory, template.name
        if memory <= self.chip.memory_capacity:
            return self.chip.memory_allocatable, ""
        return 0, ""

    @staticmethod
    def soft_split(annotations: Mapping[str, str]) -> bool:
        """Whether the pod asks the soft-split (HAMi-core) mode."""
        return annotations.get(resources.VNPU_MODE) == resources.VNPU_MODE_HAMI_CORE

    # --- admission --------------------------------------------------------------------------

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        """HAMi's Ascend admission, with refusals that say what to ask instead.

        Raises:
            BackendError: an odd 910C count, a core request outside the soft-split mode, memory
                beyond the NPU, a vNPU template asked on several devices, or a malformed quantity.
        """
        names = self.resource_names
        raw_count = container.limit(names.count)
        if raw_count is None:
            return self._without_chip(container)
        count = whole_quantity(container, names.count, raw_count)
        if count < 0:
            raise BackendError(
                f"container {container.label}: {names.count} must not be negative, got {raw_count}"
            )
        spec = dict(container.spec)
        limits = dict(container.limits)
        requests = dict(container.requests)
        word = self.chip.common_word
        if self.chip.super_pod and count == 1:
            count = 2
            limits[names.count] = "2"
            if names.count in requests:
                requests[names.count] = "2"
        elif self.chip.super_pod and count % 2:
            raise BackendError(
                f"container {container.label}: {word} device request must be 1 or 2*n, got {count} "
                f"(910C NPUs are allocated as whole two-NPU modules)"
            )
        soft = self.soft_split(pod.annotations)
        raw_cores = container.value(names.cores) if names.cores else None
        if not soft and raw_cores is not None and whole_quantity(container, names.cores, raw_cores) > 0:
            raise BackendError(
                f"container {container.label}: {names.cores} is only supported in hami-core (soft split) "
                f"mode; annotate the pod {resources.VNPU_MODE}: {resources.VNPU_MODE_HAMI_CORE} or drop it"
            )
        memory = self.chip.memory_allocatable
        raw_memory = container.limit(names.memory) if names.memory else None
        if raw_memory is not None:
            asked = whole_quantity(container, names.memory, raw_memory)
            if soft:
                memory = asked
            else:
                memory, _ = self.trim_memory(asked)
                if memory <= 0:
                    raise BackendError(
                        f"{names.memory} {asked} is invalid: more than the {word} NPU's "
                        f"{self.chip.memory_capacity} MiB"
                    )
        if count > 1 and not soft and memory != self.chip.memory_allocatable:
            raise BackendError(
                f"container {container.label}: vNPU not supported for multiple devices: {names.count} {count} "
                f"with {names.memory} {memory} (a template); ask one device, or whole NPUs "
                f"({names.memory} {self.chip.memory_allocatable} or none)"
            )
        if names.memory:
            limits[names.memory] = str(memory)
            requests[names.memory] = str(memory)
        current = spec.get("resources")
        spec["resources"] = {
            **(dict(current) if isinstance(current, Mapping) else {}),
            "limits": limits,
            "requests": requests,
        }
        return MutationResult(
            has_resource=True, container=spec, runtime_class_name=self.settings.runtime_class_name
        )

    def _without_chip(self, container: ContainerView) -> MutationResult:
        """HAMi's ``overwriteEnv``: an empty ``ASCEND_VISIBLE_DEVICES`` for a container asking no
        Ascend chip at all (not one asking another chip), once."""
        if not self.settings.overwrite_env or resources.VISIBLE_DEVICES in container.env:
            return MutationResult()
        if any(
            name.startswith(resources.RESOURCE_PREFIX) for name in (*container.limits, *container.requests)
        ):
            return MutationResult()
        env = container.spec.get("env")
        spec = dict(container.spec)
        spec["env"] = [
            *(env if isinstance(env, list) else []),
            {"name": resources.VISIBLE_DEVICES, "value": ""},
        ]
        return MutationResult(container=spec)

    # --- scheduling -------------------------------------------------------------------------

    def parse_request(self, container: ContainerView) -> DeviceRequest | None:
        """HAMi's Ascend request: memory times the memory factor, rounded to a template unless the
        container asks cores (soft split); cores default to 0; the whole NPU without memory.

        Raises:
            BackendError: a malformed quantity, or memory beyond the NPU.
        """
        names = self.resource_names
        raw_count = container.value(names.count)
        if raw_count is None:
            return None
        count = whole_quantity(container, names.count, raw_count)
        if count < 0:
            raise BackendError(
                f"container {container.label}: {names.count} must not be negative, got {raw_count}"
            )
        if count == 0:
            return None
        raw_cores = container.value(names.cores) if names.cores else None
        cores = whole_quantity(container, names.cores, raw_cores) if raw_cores is not None else 0
        if cores < 0:
            raise BackendError(
                f"container {container.label}: {names.cores} must not be negative, got {raw_cores}"
            )
        memory = 0
        raw_memory = container.value(names.memory) if names.memory else None
        if raw_memory is not None:
            asked = whole_quantity(container, names.memory, raw_memory) * self.chip.memory_factor
            if asked < 0 or asked > 2**31 - 1:
                raise BackendError(
                    f"container {container.label}: {names.memory} {raw_memory} is out of range"
                )
            if raw_cores is not None:
                memory = asked
            else:
                memory, _ = self.trim_memory(asked)
                if memory == 0 and asked > 0:
                    raise BackendError(
                        f"container {container.label}: {names.memory} {asked} is more than the "
                        f"{self.chip.common_word} NPU's {self.chip.memory_capacity} MiB"
                    )
        return DeviceRequest(
            nums=count,
            type=self.device_type,
            memreq=memory,
            mem_percentage_req=100 if memory == 0 else 0,
            coresreq=cores,
        )

    def _node_supports_soft_split(self, node_annotations: Mapping[str, str]) -> bool:
        value = node_annotations.get(resources.NODE_VNPU_CORE)
        return self.settings.hami_vnpu_core if value is None else value == "true"

    def fit(self, request: DeviceRequest, devices: Sequence[DeviceUsage], context: FitContext) -> FitResult:
        """HAMi's Ascend ``Fit`` (hami-wire.md 6.1), visiting devices from the last to the first.

        A soft-split pod needs node support (``hami-vnpu-core``, else ``ModeNotFit``) and counts
        cores against 100 per NPU. When every 910-family NPU carries a ``NetworkID`` all fitting
        NPUs are collected and the request is filled from the networks with most candidates; a
        910C request of more than one NPU takes whole two-NPU modules only. Unlike HAMi, an
        unhealthy NPU is never taken, and a 910C request that cannot be met with whole modules
        fails instead of returning fewer NPUs.
        """
        word = self.chip.common_word
        typed = [device for device in devices if word.lower() in device.type.lower()]
        soft = self.soft_split(context.pod_annotations)
        if soft and not self._node_supports_soft_split(context.node_annotations):
            return FitResult(ok=False, reasons={MODE_NOT_FIT: 1}, considered=len(typed))
        if request.nums <= 0:
            return FitResult(ok=True)
        if request.nums > len(typed):
            return FitResult(ok=False, reasons={NODE_INSUFFICIENT_DEVICE: 1}, considered=0)
        topology = word.startswith(resources.ASCEND910_PREFIX) and all(
            _network_id(device.custom_info) is not None for device in typed
        )
        pairing = self.chip.super_pod and request.nums > 1
        collect = topology or pairing
        use_key, nouse_key = resources.use_uuid_key(word), resources.no_use_uuid_key(word)
        cores = min(request.coresreq, _FULL_CORES)
        reasons: Counter[str] = Counter()
        picked: list[ContainerDevice] = []
        for device in reversed(typed):
            reason = self._refusal(request, device, cores, soft, context.pod_annotations, use_key, nouse_key)
            if reason is not None:
                reasons[reason] += 1
                continue
            picked.append(
                ContainerDevice(
                    uuid=device.id,
                    type=word,
                    usedmem=request.memory_on(device.totalmem),
                    usedcores=cores,
                    idx=device.index,
                )
            )
            if not collect and len(picked) == request.nums:
                return FitResult(ok=True, devices=tuple(picked), considered=len(typed))
        chosen: list[ContainerDevice] = []
        if pairing:
            chosen = _whole_modules(picked, request.nums)
        elif topology and len(picked) >= request.nums:
            chosen = _by_network(picked, request.nums, {device.id: device for device in typed})
        if len(chosen) == request.nums:
            return FitResult(ok=True, devices=tuple(chosen), considered=len(typed))
        if picked:
            reasons[ALLOCATED_CARDS_INSUFFICIENT_REQUEST] = len(picked)
        return FitResult(ok=False, reasons=dict(reasons), considered=len(typed))

    def _refusal(
        self,
        request: DeviceRequest,
        device: DeviceUsage,
        cores: int,
        soft: bool,
        annotations: Mapping[str, str],
        use_key: str,
        nouse_key: str,
    ) -> str | None:
        """Why one NPU cannot take the request, in HAMi's order; ``None`` when it can."""
        if not device.health:
            return CARD_NOT_HEALTH
        if request.type != self.chip.common_word:
            return CARD_TYPE_MISMATCH
        if not check_uuid(annotations, device.id, use_key, nouse_key):
            return CARD_UUID_MISMATCH
        if device.count <= device.used:
            return CARD_TIME_SLICING_EXHAUSTED
        if device.free_mem < request.memory_on(device.totalmem):
            return CARD_INSUFFICIENT_MEMORY
        total_cores = _FULL_CORES if soft else device.totalcore
        if total_cores - device.usedcores < cores:
            return CARD_INSUFFICIENT_CORE
        if total_cores == _FULL_CORES and cores == _FULL_CORES and device.used > 0:
            return EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
        if total_cores != 0 and device.usedcores == total_cores and cores == 0:
            return CARD_COMPUTE_UNITS_EXHAUSTED
        return None

    def score_node(
        self, devices: Sequence[DeviceUsage], chosen: PodSingleDevice, context: FitContext
    ) -> float:
        """HAMi's 910-family network score: per container, the share of its NPUs on its most used
        network, summed and times 10; 0 for other chips or when an NPU has no ``NetworkID``."""
        if not self.chip.common_word.startswith(resources.ASCEND910_PREFIX):
            return 0.0
        by_id = {device.id: device for device in devices}
        score = 0.0
        for container in chosen:
            if not container:
                continue
            networks: Counter[int] = Counter()
            for given in container:
                known = by_id.get(given.uuid)
                network = _network_id(known.custom_info) if known is not None else None
                if network is None:
                    return 0.0
                networks[network] += 1
            score += max(networks.values()) / sum(networks.values())
        return score * resources.NETWORK_WEIGHT

    def filter_annotations(self, devices: PodSingleDevice, pod: PodView, now: datetime) -> Mapping[str, str]:
        """``predicate-time`` and the ``huawei.com/<chip>`` runtime JSON: per NPU its ``UUID``, the
        template name (``temp``, not in soft-split mode), ``memory`` and ``core``, zeros omitted
        (HAMi's ``RuntimeInfo``)."""
        soft = self.soft_split(pod.annotations)
        items = []
        for container in devices:
            for given in container:
                members = [f'"UUID":{_go_json_string(given.uuid)}'] if given.uuid else []
                template = "" if soft else self.trim_memory(given.usedmem)[1]
                if template:
                    members.append(f'"temp":{_go_json_string(template)}')
                if given.usedmem:
                    members.append(f'"memory":{given.usedmem}')
                if given.usedcores:
                    members.append(f'"core":{given.usedcores}')
                items.append("{" + ",".join(members) + "}")
        return {
            resources.PREDICATE_TIME: str(int(now.timestamp())),
            resources.runtime_key(self.chip.common_word): "[" + ",".join(items) + "]" if items else "null",
        }

    # --- node -------------------------------------------------------------------------------

    def _npus_now(self) -> dict[int, NpuChip]:
        if self._inventory is None:
            self._inventory = inventory_for(self.settings)
        self._npus = {npu.logic_id: npu for npu in self._inventory.chips()}
        return self._npus

    def discover(self, node_name: str) -> list[DeviceInfo]:
        """The node's NPUs of this chip from ``npu-smi`` (or its saved output).

        Raises:
            BackendError: the tool failed or its output cannot be read.
        """
        npus = sorted(self._npus_now().values(), key=lambda npu: npu.logic_id)
        return discovery.register_devices(self.chip, npus, self.settings.network_group_size)

    def encode_node_devices(self, devices: Sequence[DeviceInfo]) -> str:
        """HAMi's JSON registration plus each NPU's ``custominfo`` ``NetworkID``, as the Ascend
        plugin writes it (the core's encoder leaves ``custominfo`` out, as NVIDIA's does)."""
        items = []
        for device in devices:
            text = encode_node_devices([device])[1:-1]
            network = _network_id(device.custom_info)
            if network is not None:
                extra = f'"custominfo":{{"{resources.NETWORK_ID}":{network}}}'
                text = text[:-1] + ("," if text != "{}" else "") + extra + "}"
            items.append(text)
        return "[" + ",".join(items) + "]"

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        """``ASCEND_VISIBLE_DEVICES``: the NPUs' logic ids, or for a template share of one NPU
        the id of a vNPU created for it from that template.

        Raises:
            BackendError: no device, another chip's device, one not on this node, or the driver
                refused to create the vNPU.
        """
        if not devices:
            raise BackendError(f"container {container.label}: no {self.chip.common_word} NPU to allocate")
        if not self._npus:
            self._npus_now()
        npus = []
        for device in devices:
            if device.type != self.chip.common_word:
                raise BackendError(
                    f"container {container.label}: {device.uuid} is not a {self.chip.common_word} NPU"
                )
            logic = discovery.logic_id_of(self.chip, device.uuid)
            if logic not in self._npus:
                raise BackendError(f"{self.chip.common_word} NPU {logic} is not on this node")
            npus.append(self._npus[logic])
        ids = [str(npu.logic_id) for npu in npus]
        soft = self.soft_split(pod.annotations)
        if len(devices) == 1 and not soft:
            memory, template = self.trim_memory(devices[0].usedmem)
            if template and memory < self.chip.memory_allocatable:
                assert self._inventory is not None
                with self._allocating:
                    ids = [str(self._inventory.create_vnpu(npus[0], template))]
        return ContainerAllocation(envs={resources.VISIBLE_DEVICES: ",".join(ids)})


def _whole_modules(picked: Sequence[ContainerDevice], nums: int) -> list[ContainerDevice]:
    """Whole 910C modules (both NPUs ``2k``, ``2k+1`` fit) until ``nums`` NPUs, by module number."""
    modules: dict[int, list[ContainerDevice]] = {}
    for given in picked:
        modules.setdefault((given.idx or 0) // resources.NPUS_PER_910C_MODULE, []).append(given)
    chosen: list[ContainerDevice] = []
    for module in sorted(modules):
        members = modules[module]
        if len(members) == resources.NPUS_PER_910C_MODULE and len(chosen) < nums:
            chosen.extend(sorted(members, key=lambda given: given.idx or 0))
    return chosen if len(chosen) == nums else []


def _by_network(
    picked: Sequence[ContainerDevice], nums: int, by_id: Mapping[str, DeviceUsage]
) -> list[ContainerDevice]:
    """HAMi's ``computeBestCombination``: one NPU takes the first candidate; more fill from the
    networks with most candidates first (ties by network id)."""
    if nums == 1:
        return [picked[0]]
    networks: dict[int, list[ContainerDevice]] = {}
    for given in picked:
        network = _network_id(by_id[given.uuid].custom_info)
        networks.setdefault(network if network is not None else -1, []).append(given)
    ordered = sorted(networks.items(), key=lambda item: (-len(item[1]), item[0]))
    return [given for _, members in ordered for given in members][:nums]
