"""A ``backends.<chip>`` section (e.g. ``backends.ascend910b3``), validated into :class:`AscendSettings`.

The keys are those of HAMi's ``vnpus.configs`` entries (``specs/hami-wire.md`` 6.1), each defaulting
to the chart's table (:data:`hami_backend_ascend.resources.CHIPS`), plus HAMi's global
``hamiVnpuCore`` and the node-side discovery keys. Templates are sorted by memory, as HAMi does at
start. Problems are reported with :class:`hami_core.sdk.BackendSection`, naming the file and
the dotted key.
"""

from __future__ import annotations

from typing import Any

import attrs

from hami_backend_ascend import resources
from hami_backend_ascend.resources import Chip
from hami_backend_ascend.resources import Template
from hami_core.sdk import BackendSection
from hami_core.sdk import HamiConfig
from hami_core.sdk import ResourceNames


@attrs.frozen
class AscendSettings:
    """One chip's settings.

    Args:
        chip: the chip's table entry (memory, AI cores, templates), with the section's overrides.
        resource_names: ``resourceName``, ``resourceMemoryName``, ``resourceCoreName``.
        runtime_class_name: set on pods asking this chip when they have none.
        overwrite_env: containers not asking this chip get ``ASCEND_VISIBLE_DEVICES=""``.
        hami_vnpu_core: nodes support the soft-split mode unless their ``hami-vnpu-core``
            annotation says otherwise (HAMi's ``hamiVnpuCore``).
        npu_smi: the ``npu-smi`` command the device plugin runs.
        npu_smi_output: a file holding ``npu-smi info -m`` output, read instead of running it.
        fake: the name of an ``npu-smi info -m`` output shipped with this package
            (``fakes/npu-smi-<fake>.txt``); vNPUs are then created in memory.
        network_group_size: NPUs per HCCS network, in logic-id order; registered as each NPU's
            ``NetworkID`` for topology-aware placement (0: no topology).
    """

    chip: Chip
    resource_names: ResourceNames
    runtime_class_name: str = ""
    overwrite_env: bool = False
    hami_vnpu_core: bool = False
    npu_smi: str = "npu-smi"
    npu_smi_output: str = ""
    fake: str = ""
    network_group_size: int = 0

    @classmethod
    def for_chip(cls, chip: Chip) -> AscendSettings:
        """The chart's defaults for ``chip``."""
        return cls(chip=chip, resource_names=resources.resource_names(chip.common_word))


_CHIP_INTEGERS = {
    "memoryAllocatable": ("memory_allocatable", 1),
    "memoryCapacity": ("memory_capacity", 1),
    "memoryFactor": ("memory_factor", 1),
    "aiCore": ("ai_core", 0),
    "aiCPU": ("ai_cpu", 0),
}
_NAMES = {"resourceName": "count", "resourceMemoryName": "memory", "resourceCoreName": "cores"}
_BOOLEANS = {"overwriteEnv": "overwrite_env", "hamiVnpuCore": "hami_vnpu_core"}
_STRINGS = {
    "runtimeClassName": "runtime_class_name",
    "npu_smi": "npu_smi",
    "npu_smi_output": "npu_smi_output",
    "fake": "fake",
}
_KEYS = (
    *_NAMES,
    *_CHIP_INTEGERS,
    "templates",
    "superPod",
    *_BOOLEANS,
    *_STRINGS,
    "network_group_size",
)


def _templates(section: BackendSection, key: str, raw: object) -> tuple[Template, ...]:
    if not isinstance(raw, list):
        raise section.error(key, f"expected a list of {{name, memory, aiCore, aiCPU}}, got {raw!r}")
    found = []
    for position, item in enumerate(raw):
        at = f"{key}[{position}]"
        if not isinstance(item, dict) or not {"name", "memory"} <= set(item) <= {
            "name",
            "memory",
            "aiCore",
            "aiCPU",
        }:
            raise section.error(
                at, f"expected {{name, memory, aiCore, aiCPU}} with name and memory, got {item!r}"
            )
        found.append(
            Template(
                name=section.string(f"{at}.name", item["name"], empty=False),
                memory=section.integer(f"{at}.memory", item["memory"], low=1),
                ai_core=section.integer(f"{at}.aiCore", item.get("aiCore", 0)),
                ai_cpu=section.integer(f"{at}.aiCPU", item.get("aiCPU", 0)),
            )
        )
    return tuple(sorted(found, key=lambda template: template.memory))


def parse_settings(config: HamiConfig, chip: Chip) -> AscendSettings:
    """``chip``'s settings from ``config.backend(<chip's backend name>)``, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    section = BackendSection.read(config, chip.backend_name, _KEYS)
    chip_changes: dict[str, Any] = {
        field: section.integer(key, section[key], low=low)
        for key, (field, low) in _CHIP_INTEGERS.items()
        if key in section
    }
    if "templates" in section:
        chip_changes["templates"] = _templates(section, "templates", section["templates"])
    if "superPod" in section:
        chip_changes["super_pod"] = section.boolean("superPod", section["superPod"])
    changes: dict[str, Any] = {
        field: section.boolean(key, section[key]) for key, field in _BOOLEANS.items() if key in section
    }
    changes.update(
        {field: section.string(key, section[key]) for key, field in _STRINGS.items() if key in section}
    )
    if "network_group_size" in section:
        changes["network_group_size"] = section.integer("network_group_size", section["network_group_size"])
    defaults = AscendSettings.for_chip(chip)
    return attrs.evolve(
        defaults,
        chip=attrs.evolve(chip, **chip_changes),
        resource_names=section.resource_names(defaults.resource_names, _NAMES),
        **changes,
    )
