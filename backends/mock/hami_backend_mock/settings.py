"""The ``backends.mock`` config section: parsing and validation into :class:`MockSettings`.

The mock imitates any vendor's shape through its settings: how many devices of which model,
memory and compute each has, how many containers may share one (``split``), NUMA placement,
health, the memory unit of requests and the request defaults. ``nodes`` gives single nodes their
own device list (a heterogeneous demo fleet). Problems are reported with
:class:`hami_core.sdk.BackendSection`, naming the file and the dotted key.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from hami_backend_mock import resources
from hami_core.sdk import MODE_HAMI_CORE
from hami_core.sdk import BackendSection
from hami_core.sdk import HamiConfig


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


def _seconds(section: BackendSection, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise section.error(key, f"expected a number of seconds, got {value!r}")
    if not 0 <= value <= _MAX_DELAY_SECONDS:
        raise section.error(key, f"must be between 0 and {_MAX_DELAY_SECONDS:g}, got {value}")
    return float(value)


def _group(section: BackendSection, key: str, raw: object) -> DeviceGroup:
    if not isinstance(raw, dict):
        raise section.error(key, f"expected a mapping like {{count: 4, memory_mib: 24576}}, got {raw!r}")
    for name in raw:
        if name not in _GROUP_FIELDS:
            raise section.error(f"{key}.{name}", f"unknown key (known keys: {', '.join(_GROUP_FIELDS)})")
    for required in ("count", "memory_mib"):
        if required not in raw:
            raise section.error(f"{key}.{required}", "required")
    kind = raw.get("type", "MOCK-GPU")
    if not isinstance(kind, str) or resources.DEVICE_TYPE.lower() not in kind.lower():
        raise section.error(
            f"{key}.type", f"must be a string containing {resources.DEVICE_TYPE!r}, got {kind!r}"
        )
    if any(separator in kind for separator in ",:;"):
        raise section.error(
            f"{key}.type", f"must not contain ',', ':' or ';' (annotation separators), got {kind!r}"
        )
    return DeviceGroup(
        count=section.integer(f"{key}.count", raw["count"]),
        memory_mib=section.integer(f"{key}.memory_mib", raw["memory_mib"], low=1),
        type=kind,
        split=section.integer(f"{key}.split", raw.get("split", 10), low=1),
        cores=section.integer(f"{key}.cores", raw.get("cores", 100), low=1),
        numa=section.integer(f"{key}.numa", raw.get("numa", 0)),
        healthy=section.boolean(f"{key}.healthy", raw.get("healthy", True)),
        mode=section.string(f"{key}.mode", raw.get("mode", MODE_HAMI_CORE), empty=False),
    )


def _groups(section: BackendSection, key: str, raw: object) -> tuple[DeviceGroup, ...]:
    if not isinstance(raw, list):
        raise section.error(key, f"expected a list of device groups, got {raw!r}")
    return tuple(_group(section, f"{key}[{position}]", item) for position, item in enumerate(raw))


def parse_settings(config: HamiConfig) -> MockSettings:
    """The mock's settings from ``config.backend("mock")``, validated.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    section = BackendSection.read(config, resources.NAME, _SETTINGS_KEYS)
    devices = _groups(section, "devices", section["devices"]) if "devices" in section else DEFAULT_DEVICES
    raw_nodes = section.get("nodes", {})
    if not isinstance(raw_nodes, dict):
        raise section.error("nodes", f"expected a mapping of node name to device groups, got {raw_nodes!r}")
    nodes: dict[str, tuple[DeviceGroup, ...]] = {}
    for node_name, raw in raw_nodes.items():
        if not isinstance(node_name, str):
            raise section.error(f"nodes.{node_name}", "node names are strings")
        nodes[node_name] = _groups(section, f"nodes.{node_name}", raw)
    return MockSettings(
        devices=devices,
        nodes=nodes,
        memory_factor=section.integer("memory_factor", section.get("memory_factor", 1), low=1),
        default_memory=section.integer("default_memory", section.get("default_memory", 0)),
        default_cores=section.integer("default_cores", section.get("default_cores", 0), high=100),
        allocate_delay=_seconds(section, "allocate_delay", section.get("allocate_delay", 0)),
    )
