"""The ``backends.mock`` config section: parsing and validation into :class:`MockSettings`.

The mock imitates any vendor's shape through its settings: how many devices of which model,
memory and compute each has, how many containers may share one (``split``), NUMA placement,
health, the memory unit of requests and the request defaults. ``nodes`` gives single nodes their
own device list (a heterogeneous demo fleet). Problems are reported with
:meth:`hami_core.sdk.HamiConfig.error`, naming the file and the dotted key.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from hami_backend_mock import resources
from hami_core.sdk import MODE_HAMI_CORE
from hami_core.sdk import HamiConfig

_INT32_MAX = 2**31 - 1


@attrs.frozen
class DeviceGroup:
    """``count`` identical simulated devices.

    Args:
        count: how many devices of this model the node has.
        memory_mib: memory of each device in MiB.
        type: the model name registered on the node; must contain ``MOCK``.
        split: how many containers may share one device (HAMi's ``deviceSplitCount``).
        cores: compute units of each device, in percent (100 = a whole device).
        numa: NUMA node of the devices.
        healthy: whether the devices report healthy.
        mode: the device mode (``hami-core``; pods select modes with annotations).
    """

    count: int
    memory_mib: int
    type: str = "MOCK-GPU"
    split: int = 10
    cores: int = 100
    numa: int = 0
    healthy: bool = True
    mode: str = MODE_HAMI_CORE


#: Used when the section names no devices: two 16 GiB devices, so an enabled mock is usable.
DEFAULT_DEVICES = (DeviceGroup(count=2, memory_mib=16384),)


@attrs.frozen
class MockSettings:
    """The mock backend's settings.

    Args:
        devices: the device groups of every node without an entry in ``nodes``.
        nodes: per node name, its own device groups.
        memory_factor: MiB per unit of the memory resource (HAMi's ``memoryFactor``).
        default_memory: MiB given when a container asks neither memory nor a percentage.
        default_cores: cores given when a container does not ask for cores.
        allocate_delay: seconds each allocation takes, to imitate a slow driver (demos and
            fault-injection tests kill a plugin while it allocates).
    """

    devices: tuple[DeviceGroup, ...] = DEFAULT_DEVICES
    nodes: Mapping[str, tuple[DeviceGroup, ...]] = attrs.field(factory=dict, hash=False)
    memory_factor: int = 1
    default_memory: int = 0
    default_cores: int = 0
    allocate_delay: float = 0.0

    def groups_for(self, node_name: str) -> tuple[DeviceGroup, ...]:
        """The device groups of ``node_name``."""
        return self.nodes.get(node_name, self.devices)


_GROUP_FIELDS = {field.name: field for field in attrs.fields(DeviceGroup)}
_SETTINGS_KEYS = ("devices", "nodes", "memory_factor", "default_memory", "default_cores", "allocate_delay")
#: The longest ``allocate_delay``: the kubelet's own Allocate deadline is far below it.
_MAX_DELAY_SECONDS = 3600.0


def _integer(config: HamiConfig, key: str, value: object, low: int, high: int = _INT32_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise config.error(key, f"expected an integer, got {value!r}")
    if not low <= value <= high:
        raise config.error(key, f"must be between {low} and {high}, got {value}")
    return value


def _seconds(config: HamiConfig, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise config.error(key, f"expected a number of seconds, got {value!r}")
    if not 0 <= value <= _MAX_DELAY_SECONDS:
        raise config.error(key, f"must be between 0 and {_MAX_DELAY_SECONDS:g}, got {value}")
    return float(value)


def _group(config: HamiConfig, key: str, raw: object) -> DeviceGroup:
    if not isinstance(raw, dict):
        raise config.error(key, f"expected a mapping like {{count: 4, memory_mib: 24576}}, got {raw!r}")
    for name in raw:
        if name not in _GROUP_FIELDS:
            raise config.error(f"{key}.{name}", f"unknown key (known keys: {', '.join(_GROUP_FIELDS)})")
    for required in ("count", "memory_mib"):
        if required not in raw:
            raise config.error(f"{key}.{required}", "required")
    kind = raw.get("type", "MOCK-GPU")
    if not isinstance(kind, str) or resources.DEVICE_TYPE.lower() not in kind.lower():
        raise config.error(
            f"{key}.type", f"must be a string containing {resources.DEVICE_TYPE!r}, got {kind!r}"
        )
    if any(separator in kind for separator in ",:;"):
        raise config.error(
            f"{key}.type", f"must not contain ',', ':' or ';' (annotation separators), got {kind!r}"
        )
    healthy = raw.get("healthy", True)
    if not isinstance(healthy, bool):
        raise config.error(f"{key}.healthy", f"expected true or false, got {healthy!r}")
    mode = raw.get("mode", MODE_HAMI_CORE)
    if not isinstance(mode, str) or not mode:
        raise config.error(f"{key}.mode", f"expected a non-empty string, got {mode!r}")
    return DeviceGroup(
        count=_integer(config, f"{key}.count", raw["count"], 0),
        memory_mib=_integer(config, f"{key}.memory_mib", raw["memory_mib"], 1),
        type=kind,
        split=_integer(config, f"{key}.split", raw.get("split", 10), 1),
        cores=_integer(config, f"{key}.cores", raw.get("cores", 100), 1),
        numa=_integer(config, f"{key}.numa", raw.get("numa", 0), 0),
        healthy=healthy,
        mode=mode,
    )


def _groups(config: HamiConfig, key: str, raw: object) -> tuple[DeviceGroup, ...]:
    if not isinstance(raw, list):
        raise config.error(key, f"expected a list of device groups, got {raw!r}")
    return tuple(_group(config, f"{key}[{position}]", item) for position, item in enumerate(raw))


def parse_settings(config: HamiConfig) -> MockSettings:
    """The mock's settings from ``config.backend("mock")``, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    section = config.backend(resources.NAME)
    prefix = f"backends.{resources.NAME}"
    for key in section:
        if key != "enabled" and key not in _SETTINGS_KEYS:
            raise config.error(
                f"{prefix}.{key}", f"unknown key (known keys: enabled, {', '.join(_SETTINGS_KEYS)})"
            )
    devices = (
        _groups(config, f"{prefix}.devices", section["devices"]) if "devices" in section else DEFAULT_DEVICES
    )
    raw_nodes = section.get("nodes", {})
    if not isinstance(raw_nodes, dict):
        raise config.error(
            f"{prefix}.nodes", f"expected a mapping of node name to device groups, got {raw_nodes!r}"
        )
    nodes: dict[str, tuple[DeviceGroup, ...]] = {}
    for node_name, raw in raw_nodes.items():
        if not isinstance(node_name, str):
            raise config.error(f"{prefix}.nodes.{node_name}", "node names are strings")
        nodes[node_name] = _groups(config, f"{prefix}.nodes.{node_name}", raw)
    return MockSettings(
        devices=devices,
        nodes=nodes,
        memory_factor=_integer(config, f"{prefix}.memory_factor", section.get("memory_factor", 1), 1),
        default_memory=_integer(config, f"{prefix}.default_memory", section.get("default_memory", 0), 0),
        default_cores=_integer(config, f"{prefix}.default_cores", section.get("default_cores", 0), 0, 100),
        allocate_delay=_seconds(config, f"{prefix}.allocate_delay", section.get("allocate_delay", 0)),
    )
