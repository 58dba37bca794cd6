"""A ``backends.<chip>`` section (e.g. ``backends.ascend910b3``), validated into :class:`AscendSettings`.

The keys are those of HAMi's ``vnpus.configs`` entries (``specs/hami-wire.md`` 6.1), each defaulting
to the chart's table (:data:`hami_backend_ascend.resources.CHIPS`), plus HAMi's global
``hamiVnpuCore`` and the node-side discovery keys. Templates are sorted by memory, as HAMi does at
start. Problems are reported with :meth:`hami_core.sdk.HamiConfig.error`, naming the file and
the dotted key.
"""

from __future__ import annotations

from typing import Any

import attrs

from hami_backend_ascend import resources
from hami_backend_ascend.resources import Chip
from hami_backend_ascend.resources import Template
from hami_core.sdk import HamiConfig
from hami_core.sdk import ResourceNames

_INT32_MAX = 2**31 - 1


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
    "enabled",
    *_NAMES,
    *_CHIP_INTEGERS,
    "templates",
    "superPod",
    *_BOOLEANS,
    *_STRINGS,
    "network_group_size",
)


def _integer(config: HamiConfig, key: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise config.error(key, f"expected an integer, got {value!r}")
    if not low <= value <= _INT32_MAX:
        raise config.error(key, f"must be between {low} and {_INT32_MAX}, got {value}")
    return value


def _boolean(config: HamiConfig, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise config.error(key, f"expected true or false, got {value!r}")
    return value


def _string(config: HamiConfig, key: str, value: object, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise config.error(key, f"expected a{'' if empty else ' non-empty'} string, got {value!r}")
    return value


def _templates(config: HamiConfig, key: str, raw: object) -> tuple[Template, ...]:
    if not isinstance(raw, list):
        raise config.error(key, f"expected a list of {{name, memory, aiCore, aiCPU}}, got {raw!r}")
    found = []
    for position, item in enumerate(raw):
        at = f"{key}[{position}]"
        if not isinstance(item, dict) or not {"name", "memory"} <= set(item) <= {
            "name",
            "memory",
            "aiCore",
            "aiCPU",
        }:
            raise config.error(
                at, f"expected {{name, memory, aiCore, aiCPU}} with name and memory, got {item!r}"
            )
        found.append(
            Template(
                name=_string(config, f"{at}.name", item["name"], empty=False),
                memory=_integer(config, f"{at}.memory", item["memory"], 1),
                ai_core=_integer(config, f"{at}.aiCore", item.get("aiCore", 0), 0),
                ai_cpu=_integer(config, f"{at}.aiCPU", item.get("aiCPU", 0), 0),
            )
        )
    return tuple(sorted(found, key=lambda template: template.memory))


def parse_settings(config: HamiConfig, chip: Chip) -> AscendSettings:
    """``chip``'s settings from ``config.backend(<chip's backend name>)``, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    name = chip.backend_name
    section = config.backend(name)
    prefix = f"backends.{name}"
    for key in section:
        if key not in _KEYS:
            raise config.error(f"{prefix}.{key}", f"unknown key (known keys: {', '.join(_KEYS)})")
    chip_changes: dict[str, Any] = {
        field: _integer(config, f"{prefix}.{key}", section[key], low)
        for key, (field, low) in _CHIP_INTEGERS.items()
        if key in section
    }
    if "templates" in section:
        chip_changes["templates"] = _templates(config, f"{prefix}.templates", section["templates"])
    if "superPod" in section:
        chip_changes["super_pod"] = _boolean(config, f"{prefix}.superPod", section["superPod"])
    changes: dict[str, Any] = {
        field: _boolean(config, f"{prefix}.{key}", section[key])
        for key, field in _BOOLEANS.items()
        if key in section
    }
    changes.update(
        {
            field: _string(config, f"{prefix}.{key}", section[key])
            for key, field in _STRINGS.items()
            if key in section
        }
    )
    if "network_group_size" in section:
        changes["network_group_size"] = _integer(
            config, f"{prefix}.network_group_size", section["network_group_size"], 0
        )
    defaults = AscendSettings.for_chip(chip)
    names = {
        field: _string(config, f"{prefix}.{key}", section[key], empty=False)
        for key, field in _NAMES.items()
        if key in section
    }
    return attrs.evolve(
        defaults,
        chip=attrs.evolve(chip, **chip_changes),
        resource_names=attrs.evolve(defaults.resource_names, **names),
        **changes,
    )
