"""The fleet file: which nodes a local cluster has and what each one advertises without a device plugin.

Format (YAML, or the same structure as a dict; every key but ``nodes`` optional)::

    nodes:
    - name: gpu-a                 # default node-<index>
      cpu: "32"                   # allocatable cpu, default "16"
      memory: 128Gi               # default "64Gi"
      pods: 110                   # default 110
      labels: {gpu: "on"}
      annotations: {}             # e.g. a device registration written by another HAMi implementation
      resources: {nvidia.com/gpu: 40}   # static extended resources (capacity = allocatable)
      backends: [nvidia]          # any other key is kept in ``extra`` for tools that start device plugins
      env: {HOOK_PATH: "{workdir}/hook"}   # e.g. the environment of the node's device plugins

An int ``n`` means ``n`` default nodes ``node-0`` ... ``node-<n-1>``. Holds no state and does no I/O
beyond reading the file it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hami_core import yaml_documents
from hami_core.errors import ConfigError
from hami_core.quantity import parse_quantity

_KNOWN = frozenset({"name", "cpu", "memory", "pods", "labels", "annotations", "resources"})


@attrs.frozen
class NodeSpec:
    """One simulated node: its name, allocatable basics, metadata and static extended resources."""

    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"
    labels: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    annotations: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    resources: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    extra: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def allocatable(self) -> dict[str, str]:
        """What the kubelet advertises before any device plugin registers."""
        return {"cpu": self.cpu, "memory": self.memory, "pods": self.pods, **self.resources}


@attrs.frozen
class Fleet:
    """The nodes of a local cluster, in order; ``source_dir`` is the folder of the file it came from."""

    nodes: tuple[NodeSpec, ...]
    source_dir: Path | None = None

    @classmethod
    def of_size(cls, count: int) -> Fleet:
        """``count`` default nodes named ``node-0`` ... ``node-<count-1>``."""
        if count < 1:
            raise ConfigError(f"a local cluster needs at least one node, got {count}")
        return cls(tuple(NodeSpec(f"node-{index}") for index in range(count)))


def load_fleet(source: Fleet | int | Mapping[str, Any] | str | Path) -> Fleet:
    """A ``Fleet`` from a node count, a fleet object, a decoded document, YAML text or a YAML file.

    Raises:
        ConfigError: malformed fleet; the message names the key (and file).
    """
    if isinstance(source, Fleet):
        return source
    if isinstance(source, int):
        return Fleet.of_size(source)
    where = "fleet"
    source_dir = None
    if isinstance(source, Path):
        where = str(source)
        source_dir = source.resolve().parent
        source = yaml_documents.read_text(source, where)
    if isinstance(source, str):
        source = yaml_documents.parse_yaml(source, where) or {}
    if not isinstance(source, Mapping) or not isinstance(source.get("nodes"), list) or not source["nodes"]:
        raise ConfigError(f"{where}: nodes: expected a non-empty list")
    nodes = tuple(_node(entry, index, where) for index, entry in enumerate(source["nodes"]))
    names = [node.name for node in nodes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: nodes: duplicate names in {names}")
    return Fleet(nodes, source_dir)


def _node(entry: object, index: int, where: str) -> NodeSpec:
    at = f"{where}: nodes[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{at}: expected a mapping")
    quantities = {}
    for key, default in (("cpu", "16"), ("memory", "64Gi"), ("pods", "110")):
        quantities[key] = _quantity(entry.get(key, default), f"{at}.{key}")
    return NodeSpec(
        name=str(entry.get("name") or f"node-{index}"),
        labels=_strings(entry.get("labels"), f"{at}.labels"),
        annotations=_strings(entry.get("annotations"), f"{at}.annotations"),
        resources={
            name: _quantity(value, f"{at}.resources.{name}")
            for name, value in _strings(entry.get("resources"), f"{at}.resources").items()
        },
        extra={key: value for key, value in entry.items() if key not in _KNOWN},
        **quantities,
    )


def _quantity(value: object, at: str) -> str:
    text = str(value)
    try:
        parse_quantity(text)
    except ConfigError as err:
        raise ConfigError(f"{at}: {err}") from err
    return text


def _strings(value: object, at: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{at}: expected a mapping")
    return {str(key): str(item) for key, item in value.items()}
