"""The ``backends.nvidia`` config section and HAMi's per-node ``config.json``, validated.

The section takes HAMi's device-config keys, spelled as in ``device-config.yaml``, with the chart's
defaults (``specs/hami-wire.md`` 2.1), plus a few of hami's own (``nodeConfigFile``, ``hookPath``,
``topologyScore``, ``ignoredXids``, ``disableHealthChecks``, ``healthRecoverySeconds``). The
per-node file (2.2: ``{"nodeconfig": [{"name": ..., "devicesplitcount": ...}]}``) overrides the
device-plugin side for the node whose name matches. Every error names the file and the key.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hami_backend_nvidia import resources
from hami_core.sdk import ConfigError
from hami_core.sdk import HamiConfig
from hami_core.sdk import ResourceNames

_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1

#: Checks a raw value and returns it normalised, or raises ValueError with the problem.
_Check = Callable[[object], object]


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def _non_empty_string(value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {_describe(value)}")
    return value


def _boolean(value: object) -> object:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _integer(low: int, high: int) -> _Check:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return check


def _positive_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {_describe(value)}")
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return float(value)


def _choice(*options: str) -> _Check:
    def check(value: object) -> object:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {_describe(value)}")
        return value

    return check


def _string_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of strings, got {_describe(value)}")
    return tuple(value)


def _xid_list(value: object) -> object:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in value
    ):
        raise ValueError(f"expected a list of positive XID numbers, got {_describe(value)}")
    return frozenset(value)


@attrs.frozen
class MigAllowlistEntry:
    """GPU models (substrings of the model name) and the MIG profiles allowed on them."""

    models: tuple[str, ...]
    profiles: tuple[str, ...]


def _mig_allowlist(value: object) -> object:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of {{models, profiles}} entries, got {_describe(value)}")
    entries = []
    for position, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"models", "profiles"}:
            raise ValueError(f"entry {position} must have exactly the keys models and profiles")
        entries.append(MigAllowlistEntry(_string_list(entry["models"]), _string_list(entry["profiles"])))
    return tuple(entries)


#: HAMi's chart default ``migProfileAllowlist`` (charts/hami/templates/scheduler/device-configmap.yaml).
_DEFAULT_MIG_ALLOWLIST = [
    {"models": ["A30"], "profiles": ["1g.6gb", "2g.12gb", "4g.24gb"]},
    {
        "models": ["A100-SXM4-40GB", "A100-40GB-PCIe", "A100-PCIE-40GB"],
        "profiles": ["1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb"],
    },
    {
        "models": ["A100-SXM4-80GB", "A100-80GB-PCIe", "A100-PCIE-80GB"],
        "profiles": ["1g.10gb", "2g.20gb", "3g.40gb", "7g.79gb"],
    },
    {
        "models": ["H100-PCIE-80GB", "H100-SXM5-80GB"],
        "profiles": ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"],
    },
    {
        "models": ["H100-PCIE-94GB", "H100-SXM5-94GB"],
        "profiles": ["1g.12gb", "2g.24gb", "3g.47gb", "7g.94gb"],
    },
    {"models": ["H20", "H100 on GH200"], "profiles": ["1g.12gb", "2g.24gb", "3g.48gb", "7g.96gb"]},
    {"models": ["H200 NVL", "H200-SXM5"], "profiles": ["1g.18gb", "2g.35gb", "3g.71gb", "7g.141gb"]},
    {"models": ["B200"], "profiles": ["1g.23gb", "2g.45gb", "3g.90gb", "7g.180gb"]},
    {"models": ["RTX PRO 6000 Blackwell Server Edition"], "profiles": ["1g.24gb", "2g.48gb", "4g.96gb"]},
]

#: ``backends.nvidia`` keys: HAMi's spelling, chart default, check; then hami's own keys.
_SCHEMA: dict[str, tuple[object, _Check]] = {
    "resourceCountName": (resources.DEFAULT_RESOURCE_NAMES.count, _non_empty_string),
    "resourceMemoryName": (resources.DEFAULT_RESOURCE_NAMES.memory, _string),
    "resourceMemoryPercentageName": (resources.DEFAULT_RESOURCE_NAMES.memory_percentage, _string),
    "resourceCoreName": (resources.DEFAULT_RESOURCE_NAMES.cores, _string),
    "resourcePriorityName": (resources.DEFAULT_RESOURCE_NAMES.priority, _string),
    "overwriteEnv": (False, _boolean),
    "defaultMemory": (0, _integer(0, _INT32_MAX)),
    "defaultCores": (0, _integer(0, 100)),
    "defaultGPUNum": (1, _integer(0, _INT32_MAX)),
    "memoryFactor": (1, _integer(1, _INT32_MAX)),
    "disableCoreLimit": (False, _boolean),
    "gpuCorePolicy": ("default", _choice("default", "force", "disable")),
    "runtimeClassName": ("", _string),
    "migProfileAllowlist": (_DEFAULT_MIG_ALLOWLIST, _mig_allowlist),
    "deviceSplitCount": (10, _integer(1, _UINT32_MAX)),
    "deviceMemoryScaling": (1.0, _positive_number),
    "deviceCoreScaling": (1.0, _positive_number),
    "preConfiguredDeviceMemory": (0, _integer(0, _INT64_MAX)),
    "libCudaLogLevel": ("1", _choice("0", "1", "2", "3", "4")),
    "enableNumaTopology": (False, _boolean),
    "nodeConfigFile": ("", _string),
    "hookPath": ("/usr/local", _non_empty_string),
    "topologyScore": (False, _boolean),
    "ignoredXids": ([], _xid_list),
    "disableHealthChecks": (False, _boolean),
    "healthRecoverySeconds": (300, _positive_number),
}


@attrs.frozen
class NodeSettings:
    """What the device plugin on one node registers and hands out (device config, then ``nodeconfig``).

    Args:
        split_count: vGPU slots per GPU (``deviceSplitCount`` / ``devicesplitcount``).
        memory_scaling: registered memory = NVML memory times this.
        core_scaling: registered cores = 100 times this.
        preconfigured_memory: MiB for GPUs whose memory NVML cannot tell; 0 skips them.
        log_level: the shim's ``LIBCUDA_LOG_LEVEL``.
        numa_topology: report NUMA topology on each kubelet device.
        mode: the node's operating mode (``hami-core``, ``mig``, ``mps``).
        filter_uuids: GPUs not to register, by UUID.
        filter_indexes: GPUs not to register, by NVML index.
        preferred_allocation: the kubelet may ask for a preferred allocation.
    """

    split_count: int = 10
    memory_scaling: float = 1.0
    core_scaling: float = 1.0
    preconfigured_memory: int = 0
    log_level: str = "1"
    numa_topology: bool = False
    mode: str = resources.MODE_HAMI_CORE
    filter_uuids: frozenset[str] = frozenset()
    filter_indexes: frozenset[int] = frozenset()
    preferred_allocation: bool = False


@attrs.frozen
class NvidiaSettings:
    """The ``backends.nvidia`` section (HAMi names in the docstring of :data:`_SCHEMA`'s keys).

    ``nodes`` holds the per-node overrides read from ``nodeConfigFile``, by node name.
    """

    resource_names: ResourceNames = resources.DEFAULT_RESOURCE_NAMES
    overwrite_env: bool = False
    default_memory: int = 0
    default_cores: int = 0
    default_gpu_num: int = 1
    memory_factor: int = 1
    disable_core_limit: bool = False
    gpu_core_policy: str = "default"
    runtime_class_name: str = ""
    mig_allowlist: tuple[MigAllowlistEntry, ...] = ()
    node_defaults: NodeSettings = NodeSettings()
    nodes: Mapping[str, NodeSettings] = attrs.field(factory=dict, hash=False)
    hook_path: str = "/usr/local"
    topology_score: bool = False
    ignored_xids: frozenset[int] = resources.DEFAULT_IGNORED_XIDS
    health_checks: bool = True
    health_recovery_seconds: float = 300.0

    def for_node(self, node_name: str) -> NodeSettings:
        """The settings of ``node_name``: its ``nodeconfig`` entry, else the device-config defaults."""
        return self.nodes.get(node_name, self.node_defaults)


def _section(config: HamiConfig) -> dict[str, Any]:
    section = config.backend(resources.NAME)
    prefix = f"backends.{resources.NAME}"
    checked: dict[str, Any] = {key: check(default) for key, (default, check) in _SCHEMA.items()}
    for key, value in section.items():
        if key == "enabled":
            continue
        entry = _SCHEMA.get(key)
        if entry is None:
            raise config.error(
                f"{prefix}.{key}", f"unknown key (known keys: enabled, {', '.join(sorted(_SCHEMA))})"
            )
        try:
            checked[key] = entry[1](value)
        except ValueError as err:
            raise config.error(f"{prefix}.{key}", str(err)) from err
    return checked


# --- config.json (nodeconfig) -------------------------------------------------------------------

#: ``nodeconfig`` entry keys (lower case, as HAMi's chart writes them) and their checks.
_NODE_KEYS: dict[str, _Check] = {
    "name": _non_empty_string,
    "operatingmode": _choice(*resources.MODES),
    "migstrategy": _string,
    "filterdevices": lambda value: value,  # checked by _filter_devices
    "enablegetpreferredallocation": _boolean,
    "devicesplitcount": _integer(1, _UINT32_MAX),
    "devicememoryscaling": _positive_number,
    "devicecorescaling": _positive_number,
    "preconfigureddevicememory": _integer(0, _INT64_MAX),
    "libcudaloglevel": _choice("0", "1", "2", "3", "4"),
    "enablenumatopology": _boolean,
}


def _filter_devices(value: object) -> tuple[frozenset[str], frozenset[int]]:
    if not isinstance(value, dict) or not set(value) <= {"uuid", "index"}:
        raise ValueError(f'expected {{"uuid": [...], "index": [...]}}, got {_describe(value)}')
    uuids = value.get("uuid") or []
    indexes = value.get("index") or []
    if not isinstance(uuids, list) or not all(isinstance(item, str) for item in uuids):
        raise ValueError(f"uuid must be a list of strings, got {_describe(uuids)}")
    if not isinstance(indexes, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in indexes
    ):
        raise ValueError(f"index must be a list of GPU indexes, got {_describe(indexes)}")
    return frozenset(uuids), frozenset(indexes)


def parse_node_config(text: str, source: str, defaults: NodeSettings) -> dict[str, NodeSettings]:
    """HAMi's per-node ``config.json``: each ``nodeconfig`` entry merged over ``defaults``, by name.

    Raises:
        ConfigError: not JSON, or an entry with an unknown key or a bad value; the message names
            ``source`` and the key (``nodeconfig[1].devicesplitcount``).
    """

    def error(key: str, problem: str) -> ConfigError:
        return ConfigError(f"node config {source}: {key}: {problem}")

    try:
        data = json.loads(text)
    except ValueError as err:
        raise error("<top level>", f"not valid JSON: {err}") from err
    if not isinstance(data, dict) or not set(data) <= {"nodeconfig"}:
        raise error("<top level>", 'expected {"nodeconfig": [...]}')
    entries = data.get("nodeconfig")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise error("nodeconfig", f"expected a list, got {_describe(entries)}")
    nodes: dict[str, NodeSettings] = {}
    for position, entry in enumerate(entries):
        where = f"nodeconfig[{position}]"
        if not isinstance(entry, dict):
            raise error(where, f"expected an object, got {_describe(entry)}")
        found: dict[str, Any] = {}
        for key, value in entry.items():
            check = _NODE_KEYS.get(key)
            if check is None:
                raise error(f"{where}.{key}", f"unknown key (known keys: {', '.join(sorted(_NODE_KEYS))})")
            try:
                found[key] = _filter_devices(value) if key == "filterdevices" else check(value)
            except ValueError as err:
                raise error(f"{where}.{key}", str(err)) from err
        if "name" not in found:
            raise error(f"{where}.name", "required")
        uuids, indexes = found.get("filterdevices", (frozenset(), frozenset()))
        nodes[str(found["name"])] = attrs.evolve(
            defaults,
            split_count=found.get("devicesplitcount", defaults.split_count),
            memory_scaling=found.get("devicememoryscaling", defaults.memory_scaling),
            core_scaling=found.get("devicecorescaling", defaults.core_scaling),
            preconfigured_memory=found.get("preconfigureddevicememory", defaults.preconfigured_memory),
            log_level=found.get("libcudaloglevel", defaults.log_level),
            numa_topology=found.get("enablenumatopology", defaults.numa_topology),
            mode=found.get("operatingmode", defaults.mode),
            filter_uuids=uuids,
            filter_indexes=indexes,
            preferred_allocation=found.get("enablegetpreferredallocation", defaults.preferred_allocation),
        )
    return nodes


def parse_settings(config: HamiConfig) -> NvidiaSettings:
    """The backend's settings from ``config.backend("nvidia")`` and its node config file, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range, or the node config
            file cannot be read or is invalid.
    """
    raw = _section(config)
    defaults = NodeSettings(
        split_count=int(raw["deviceSplitCount"]),
        memory_scaling=float(raw["deviceMemoryScaling"]),
        core_scaling=float(raw["deviceCoreScaling"]),
        preconfigured_memory=int(raw["preConfiguredDeviceMemory"]),
        log_level=str(raw["libCudaLogLevel"]),
        numa_topology=bool(raw["enableNumaTopology"]),
    )
    nodes: dict[str, NodeSettings] = {}
    path = str(raw["nodeConfigFile"])
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise config.error(
                f"backends.{resources.NAME}.nodeConfigFile", f"cannot read {path}: {err.strerror or err}"
            ) from err
        nodes = parse_node_config(text, path, defaults)
    return NvidiaSettings(
        resource_names=ResourceNames(
            count=str(raw["resourceCountName"]),
            memory=str(raw["resourceMemoryName"]),
            memory_percentage=str(raw["resourceMemoryPercentageName"]),
            cores=str(raw["resourceCoreName"]),
            priority=str(raw["resourcePriorityName"]),
        ),
        overwrite_env=bool(raw["overwriteEnv"]),
        default_memory=int(raw["defaultMemory"]),
        default_cores=int(raw["defaultCores"]),
        default_gpu_num=int(raw["defaultGPUNum"]),
        memory_factor=int(raw["memoryFactor"]),
        disable_core_limit=bool(raw["disableCoreLimit"]),
        gpu_core_policy=str(raw["gpuCorePolicy"]),
        runtime_class_name=str(raw["runtimeClassName"]),
        mig_allowlist=raw["migProfileAllowlist"],
        node_defaults=defaults,
        nodes=types.MappingProxyType(nodes),
        hook_path=str(raw["hookPath"]),
        topology_score=bool(raw["topologyScore"]),
        ignored_xids=resources.DEFAULT_IGNORED_XIDS | raw["ignoredXids"],
        health_checks=not raw["disableHealthChecks"],
        health_recovery_seconds=float(raw["healthRecoverySeconds"]),
    )
