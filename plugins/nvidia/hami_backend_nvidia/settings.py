"""The ``backends.nvidia`` config section and HAMi's per-node ``config.json``, validated.

The section takes HAMi's device-config keys, spelled as in ``device-config.yaml``, with the chart's
defaults (``specs/hami-wire.md`` 2.1), plus a few of hami's own (``nodeConfigFile``, ``hookPath``,
``topologyScore``, ``ignoredXids``, ``disableHealthChecks``, ``healthRecoverySeconds``). The
per-node file (2.2: ``{"nodeconfig": [{"name": ..., "devicesplitcount": ...}]}``) overrides the
device-plugin side for the node whose name matches. Every error names the file and the key.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hami_backend_nvidia import resources
from hami_core.sdk import BackendSection
from hami_core.sdk import ConfigError
from hami_core.sdk import HamiConfig
from hami_core.sdk import ResourceNames

_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1

#: Checks the raw value found at a key with a section's rules and returns it normalised, or raises
#: the section's ConfigError naming the key (an unbound :class:`BackendSection` method fits).
_Check = Callable[[BackendSection, str, object], object]

_string: _Check = BackendSection.string
_non_empty_string: _Check = functools.partial(BackendSection.string, empty=False)
_boolean: _Check = BackendSection.boolean
_positive_number: _Check = BackendSection.positive_number


def _integer(low: int, high: int) -> _Check:
    return functools.partial(BackendSection.integer, low=low, high=high)


def _choice(*options: str) -> _Check:
    return functools.partial(BackendSection.choice, options=options)


def _string_list(section: BackendSection, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise section.error(key, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _xid_list(section: BackendSection, key: str, value: object) -> object:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in value
    ):
        raise section.error(key, f"expected a list of positive XID numbers, got {value!r}")
    return frozenset(value)


@attrs.frozen
class MigAllowlistEntry:
    """GPU models (substrings of the model name) and the MIG profiles allowed on them."""

    models: tuple[str, ...]
    profiles: tuple[str, ...]


def _mig_allowlist(section: BackendSection, key: str, value: object) -> object:
    if not isinstance(value, list):
        raise section.error(key, f"expected a list of {{models, profiles}} entries, got {value!r}")
    entries = []
    for position, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"models", "profiles"}:
            raise section.error(key, f"entry {position} must have exactly the keys models and profiles")
        entries.append(
            MigAllowlistEntry(
                _string_list(section, f"{key}[{position}].models", entry["models"]),
                _string_list(section, f"{key}[{position}].profiles", entry["profiles"]),
            )
        )
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
    """Every key of :data:`_SCHEMA`: the section's value, else the chart default, checked."""
    section = BackendSection.read(config, resources.NAME, sorted(_SCHEMA))
    return {key: check(section, key, section.get(key, default)) for key, (default, check) in _SCHEMA.items()}


# --- config.json (nodeconfig) -------------------------------------------------------------------


@attrs.frozen
class _NodeConfigFile(BackendSection):
    """The section's checks applied to the node config file: errors name that file and the key."""

    source: str = ""

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"node config {self.source}: {key}: {problem}")


def _filter_devices(section: BackendSection, key: str, value: object) -> object:
    if not isinstance(value, dict) or not set(value) <= {"uuid", "index"}:
        raise section.error(key, f'expected {{"uuid": [...], "index": [...]}}, got {value!r}')
    uuids = value.get("uuid") or []
    indexes = value.get("index") or []
    if not isinstance(uuids, list) or not all(isinstance(item, str) for item in uuids):
        raise section.error(key, f"uuid must be a list of strings, got {uuids!r}")
    if not isinstance(indexes, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in indexes
    ):
        raise section.error(key, f"index must be a list of GPU indexes, got {indexes!r}")
    return frozenset(uuids), frozenset(indexes)


#: ``nodeconfig`` entry keys (lower case, as HAMi's chart writes them) and their checks.
_NODE_KEYS: dict[str, _Check] = {
    "name": _non_empty_string,
    "operatingmode": _choice(*resources.MODES),
    "migstrategy": _string,
    "filterdevices": _filter_devices,
    "enablegetpreferredallocation": _boolean,
    "devicesplitcount": _integer(1, _UINT32_MAX),
    "devicememoryscaling": _positive_number,
    "devicecorescaling": _positive_number,
    "preconfigureddevicememory": _integer(0, _INT64_MAX),
    "libcudaloglevel": _choice("0", "1", "2", "3", "4"),
    "enablenumatopology": _boolean,
}


def parse_node_config(text: str, source: str, defaults: NodeSettings) -> dict[str, NodeSettings]:
    """HAMi's per-node ``config.json``: each ``nodeconfig`` entry merged over ``defaults``, by name.

    Raises:
        ConfigError: not JSON, or an entry with an unknown key or a bad value; the message names
            ``source`` and the key (``nodeconfig[1].devicesplitcount``).
    """

    file = _NodeConfigFile(HamiConfig(), resources.NAME, {}, source=source)
    try:
        data = json.loads(text)
    except ValueError as err:
        raise file.error("<top level>", f"not valid JSON: {err}") from err
    if not isinstance(data, dict) or not set(data) <= {"nodeconfig"}:
        raise file.error("<top level>", 'expected {"nodeconfig": [...]}')
    entries = data.get("nodeconfig")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise file.error("nodeconfig", f"expected a list, got {entries!r}")
    nodes: dict[str, NodeSettings] = {}
    for position, entry in enumerate(entries):
        where = f"nodeconfig[{position}]"
        if not isinstance(entry, dict):
            raise file.error(where, f"expected an object, got {entry!r}")
        found: dict[str, Any] = {}
        for key, value in entry.items():
            check = _NODE_KEYS.get(key)
            if check is None:
                known = ", ".join(sorted(_NODE_KEYS))
                raise file.error(f"{where}.{key}", f"unknown key (known keys: {known})")
            found[key] = check(file, f"{where}.{key}", value)
        if "name" not in found:
            raise file.error(f"{where}.name", "required")
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
