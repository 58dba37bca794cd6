"""Cluster and workload files: the Alibaba trace CSVs, and our own YAML/JSON (``docs/simulate.md``).

Everything is validated on the way in: a bad row or key is a :class:`~hami_core.errors.HamiError`
naming the file, row and column, never a traceback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path

import attrs

from hami_core.errors import ConfigError
from hami_core.errors import HamiError
from hami_core.yaml_documents import parse_yaml

#: One whole GPU in the trace's unit.
MILLI = 1000
#: GPU memory per model in MiB, from the FGD simulator's table; undisclosed models use it too.
MODEL_MEMORY_MIB: Mapping[str, int] = {
    "G2": 20_000,
    "G3": 30_000,
    "T4": 15_109,
    "V100M16": 16_160,
    "V100M32": 32_510,
    "P100": 16_280,
    "A10": 22_731,
}
#: Memory of a model the table does not know.
DEFAULT_MEMORY_MIB = 16_384


class TraceError(HamiError):
    """A cluster or workload file is unreadable or malformed."""


@attrs.frozen
class NodeSpec:
    """One node of the cluster: CPU in milli-cores, memory in MiB, its GPUs and their model."""

    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str = ""

    @property
    def gpu_memory_mib(self) -> int:
        return MODEL_MEMORY_MIB.get(self.model, DEFAULT_MEMORY_MIB)


@attrs.frozen
class PodSpec:
    """One pod of the workload: ``gpu_milli`` is per GPU (1000 for whole GPUs, 0 for CPU-only)."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    gpu_spec: tuple[str, ...] = ()

    @property
    def gpu_demand(self) -> int:
        """GPU-milli this pod asks in all."""
        return self.num_gpu * self.gpu_milli


_NODE_FIELDS = ("cpu_milli", "memory_mib", "gpu")
_POD_FIELDS = ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli")


def _int(source: str, where: str, column: str, raw: object, low: int = 0, high: int | None = None) -> int:
    if isinstance(raw, bool):
        raise TraceError(f"{source}: {where}: {column} must be an integer, got {raw!r}")
    try:
        value = int(str(raw).strip() or "0") if not isinstance(raw, int) else raw
    except ValueError:
        raise TraceError(f"{source}: {where}: {column} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise TraceError(f"{source}: {where}: {column} must be {bound}, got {value}")
    return value


def _node(source: str, where: str, row: Mapping[str, object]) -> NodeSpec:
    name = str(row.get("sn") or row.get("name") or "").strip()
    if not name:
        raise TraceError(f"{source}: {where}: the node has no name (column sn or key name)")
    gpus = _int(source, where, "gpu", row.get("gpu", row.get("gpus", 0)), 0, 64)
    model = str(row.get("model") or "").strip()
    if gpus and not model:
        raise TraceError(f"{source}: {where}: node {name} has {gpus} GPUs but no model")
    return NodeSpec(
        name=name,
        cpu_milli=_int(source, where, "cpu_milli", row.get("cpu_milli", 0)),
        memory_mib=_int(source, where, "memory_mib", row.get("memory_mib", 0)),
        gpus=gpus,
        model=model,
    )


def _spec(raw: object) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        return tuple(str(item).strip() for item in raw if str(item).strip())
    text = str(raw or "").strip()
    return tuple(part.strip() for part in text.split("|") if part.strip())


def _pod(source: str, where: str, row: Mapping[str, object]) -> PodSpec:
    name = str(row.get("name") or "").strip()
    if not name:
        raise TraceError(f"{source}: {where}: the pod has no name")
    num_gpu = _int(source, where, "num_gpu", row.get("num_gpu", 0), 0, 64)
    gpu_milli = _int(source, where, "gpu_milli", row.get("gpu_milli", 0), 0)
    gpu_milli = min(gpu_milli, MILLI)  # the trace's converter clamps, as we do
    if num_gpu and gpu_milli <= 0:
        raise TraceError(f"{source}: {where}: pod {name} asks {num_gpu} GPUs with gpu_milli 0")
    if num_gpu > 1 and gpu_milli < MILLI:
        raise TraceError(f"{source}: {where}: pod {name} asks a fraction of each of {num_gpu} GPUs")
    if num_gpu == 0:
        gpu_milli = 0
    return PodSpec(
        name=name,
        cpu_milli=_int(source, where, "cpu_milli", row.get("cpu_milli", 0)),
        memory_mib=_int(source, where, "memory_mib", row.get("memory_mib", 0)),
        num_gpu=num_gpu,
        gpu_milli=gpu_milli,
        gpu_spec=_spec(row.get("gpu_spec")),
    )


def _csv_rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in required if column not in (reader.fieldnames or ())]
            if missing:
                raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except OSError as err:
        raise TraceError(f"{path}: cannot read: {err.strerror or err}") from err
    except (csv.Error, UnicodeDecodeError) as err:
        raise TraceError(f"{path}: not a CSV file: {err}") from err


def _document(path: Path, key: str) -> list[Mapping[str, object]]:
    try:
        text = path.read_text()
    except OSError as err:
        raise TraceError(f"{path}: cannot read: {err.strerror or err}") from err
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise TraceError(f"{path}: not valid JSON: {err}") from err
    else:
        try:
            data = parse_yaml(text, str(path))
        except ConfigError as err:
            raise TraceError(str(err)) from err
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TraceError(f"{path}: expected a mapping with a list under {key!r}")
    entries: list[Mapping[str, object]] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise TraceError(f"{path}: {key}[{position}]: expected a mapping, got {item!r}")
        count = _int(str(path), f"{key}[{position}]", "count", item.get("count", 1), 1, 1_000_000)
        base = str(item.get("name") or "").strip()
        for copy in range(count):
            named = dict(item)
            if count > 1:
                named["name"] = f"{base or key[:-1]}-{copy:04d}"
            entries.append(named)
    return entries


def _unique(source: str, names: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TraceError(f"{source}: two {what} are named {name!r}")
        seen.add(name)


def load_nodes(path: Path) -> list[NodeSpec]:
    """Nodes from a trace node CSV (``sn,cpu_milli,memory_mib,gpu,model``) or a cluster YAML/JSON.

    Raises:
        TraceError: the file is unreadable, a column is missing or a value is invalid.
    """
    if path.suffix == ".csv":
        rows: list[Mapping[str, object]] = list(_csv_rows(path, ("sn", *_NODE_FIELDS, "model")))
        nodes = [_node(str(path), f"row {number}", row) for number, row in enumerate(rows, start=2)]
    else:
        nodes = [_node(str(path), f"nodes[{n}]", row) for n, row in enumerate(_document(path, "nodes"))]
    if not nodes:
        raise TraceError(f"{path}: no nodes")
    _unique(str(path), (node.name for node in nodes), "nodes")
    return nodes


def load_pods(path: Path) -> list[PodSpec]:
    """Pods from a trace pod CSV (``name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec...]``) or YAML/JSON.

    Raises:
        TraceError: the file is unreadable, a column is missing or a value is invalid.
    """
    if path.suffix == ".csv":
        rows: list[Mapping[str, object]] = list(_csv_rows(path, ("name", *_POD_FIELDS)))
        pods = [_pod(str(path), f"row {number}", row) for number, row in enumerate(rows, start=2)]
    else:
        pods = [_pod(str(path), f"pods[{n}]", row) for n, row in enumerate(_document(path, "pods"))]
    if not pods:
        raise TraceError(f"{path}: no pods")
    return pods
