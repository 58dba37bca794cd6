"""The Ascend backends' names: HAMi's default chip table, per-chip resources and annotation keys.

HAMi v2.10 runs one Ascend backend per ``vnpus.configs`` entry (``specs/hami-wire.md`` 6.1); so does
hami, one entry point per chip of the chart's default table. Everything is keyed by the chip's
CommonWord ``C``: resources ``huawei.com/C``, ``huawei.com/C-memory``, ``huawei.com/C-core``; node
annotations ``hami.io/node-register-C`` (JSON) and ``hami.io/node-handshake-C``; pod annotations
``hami.io/C-devices-to-allocate`` / ``-allocated``, the runtime JSON ``huawei.com/C`` and
``predicate-time``; UUID filters ``hami.io/use-C-uuid`` / ``hami.io/no-use-C-uuid``. Keys are built
with the core's key helpers.
"""

from __future__ import annotations

import attrs

from hami_core.sdk import ResourceNames
from hami_core.sdk import VendorKeys
from hami_core.sdk import annotation_key
from hami_core.sdk import devices_allocated_key
from hami_core.sdk import devices_to_allocate_key
from hami_core.sdk import node_handshake_key

#: Pod annotation selecting the soft-split (HAMi-core) mode, and its value.
VNPU_MODE = "huawei.com/vnpu-mode"
VNPU_MODE_HAMI_CORE = "hami-core"
#: Node annotation: ``"true"`` enables the soft-split mode on this node (overrides ``hamiVnpuCore``).
NODE_VNPU_CORE = "hami-vnpu-core"
#: Pod annotation HAMi writes with the Unix time of the filter (bare key).
PREDICATE_TIME = "predicate-time"
#: Custom device info key of an NPU's network (HCCS ring / super-pod) for topology-aware placement.
NETWORK_ID = "NetworkID"
#: Chips whose CommonWord starts with this get NetworkID topology and node scores.
ASCEND910_PREFIX = "Ascend910"
#: HAMi's weight of the network score.
NETWORK_WEIGHT = 10
#: The 910C super-pod chip: requests of 1 or an even number, taken as whole two-NPU modules.
ASCEND910C = "Ascend910C"
NPUS_PER_910C_MODULE = 2
#: Container env the runtime (Ascend Docker Runtime) reads.
VISIBLE_DEVICES = "ASCEND_VISIBLE_DEVICES"
VNPU_SPECS = "ASCEND_VNPU_SPECS"


@attrs.frozen
class Template:
    """A vNPU template: the memory (MiB) and AI cores / CPUs of one slice of a chip."""

    name: str
    memory: int
    ai_core: int = 0
    ai_cpu: int = 0


@attrs.frozen
class Chip:
    """One ``vnpus.configs`` entry (HAMi's ``VNPUConfig``) with the chart's defaults."""

    common_word: str
    chip_name: str
    memory_allocatable: int
    memory_capacity: int
    ai_core: int
    ai_cpu: int = 0
    templates: tuple[Template, ...] = ()
    memory_factor: int = 1
    super_pod: bool = False

    @property
    def backend_name(self) -> str:
        """The hami backend name: the CommonWord lower-cased, letters and digits only."""
        return "".join(ch for ch in self.common_word.lower() if ch.isalnum())


_B3_TEMPLATES = (Template("vir05_1c_16g", 16384, 5, 1), Template("vir10_3c_32g", 32768, 10, 3))

#: HAMi's chart default chip table (``charts/hami/templates/scheduler/device-configmap.yaml``).
CHIPS: tuple[Chip, ...] = (
    Chip(
        "Ascend910A",
        "910A",
        32768,
        32768,
        30,
        templates=(
            Template("vir02", 2184, 2),
            Template("vir04", 4369, 4),
            Template("vir08", 8738, 8),
            Template("vir16", 17476, 16),
        ),
    ),
    Chip(
        "Ascend910B2",
        "910B2",
        65536,
        65536,
        24,
        6,
        templates=(
            Template("vir03_1c_8g", 8192, 3, 1),
            Template("vir06_1c_16g", 16384, 6, 1),
            Template("vir12_3c_32g", 32768, 12, 3),
        ),
    ),
    Chip("Ascend910B3", "910B3", 65536, 65536, 20, 7, templates=_B3_TEMPLATES),
    Chip("Ascend910B4-1", "910B4-1", 65536, 65536, 20, 7, templates=_B3_TEMPLATES),
    Chip(
        "Ascend910B4",
        "910B4",
        32768,
        32768,
        20,
        7,
        templates=(Template("vir05_1c_8g", 8192, 5, 1), Template("vir10_3c_16g", 16384, 10, 3)),
    ),
    Chip(
        "Ascend310P",
        "310P3",
        21527,
        24576,
        8,
        7,
        templates=(
            Template("vir01", 3072, 1, 1),
            Template("vir02", 6144, 2, 2),
            Template("vir04", 12288, 4, 4),
        ),
    ),
    Chip("Ascend910C", "Ascend910", 65536, 65536, 20, 7, templates=_B3_TEMPLATES, super_pod=True),
)

#: The chips by hami backend name (``ascend910b3``, ``ascend910b41``, ``ascend310p``, ...).
CHIPS_BY_NAME = {chip.backend_name: chip for chip in CHIPS}


def resource_names(common_word: str) -> ResourceNames:
    """``huawei.com/C``, ``huawei.com/C-memory``, ``huawei.com/C-core``."""
    return ResourceNames(
        count=f"huawei.com/{common_word}",
        memory=f"huawei.com/{common_word}-memory",
        cores=f"huawei.com/{common_word}-core",
    )


def keys(common_word: str) -> VendorKeys:
    """The chip's register, handshake and pod device keys."""
    return VendorKeys(
        register=annotation_key(f"node-register-{common_word}"),
        handshake=node_handshake_key(common_word),
        to_allocate=devices_to_allocate_key(common_word),
        allocated=devices_allocated_key(common_word),
    )


def use_uuid_key(common_word: str) -> str:
    """``hami.io/use-C-uuid``: the NPUs a pod may use."""
    return annotation_key(f"use-{common_word}-uuid")


def no_use_uuid_key(common_word: str) -> str:
    """``hami.io/no-use-C-uuid``: the NPUs a pod must not use."""
    return annotation_key(f"no-use-{common_word}-uuid")


def runtime_key(common_word: str) -> str:
    """``huawei.com/C``: the runtime JSON the Ascend device plugin reads."""
    return f"huawei.com/{common_word}"


#: Every Ascend resource starts with this (a container asking any chip).
RESOURCE_PREFIX = "huawei.com/Ascend"
