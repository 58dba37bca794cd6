"""The chart README's values table names every key of values.yaml (and nothing that is not one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.chart.chart import CHART

#: A backend's keys are documented once, for every backend.
BACKEND = "backends.<name>"


def leaves(values: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf of ``values``; a backend's keys under ``backends.<name>``."""
    if not isinstance(values, dict) or not values:
        yield prefix
        return
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if path == "backends":
            for backend in value.values():
                yield from leaves(backend, BACKEND)
        else:
            yield from leaves(value, path)


def documented() -> set[str]:
    """The keys the README's values table names: `a.b.c`, then `.d` for a sibling, `a.*` for all."""
    text = (CHART / "README.md").read_text()
    table = text[text.index("## Values") :]
    table = table[: table.index("\n## ", 1)]
    names: set[str] = set()
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split("|")[1]
        parent = ""
        for token in re.findall(r"`([^`]+)`", first_cell):
            if token.startswith("."):
                token = parent + token
            parent = token.rsplit(".", 1)[0] if "." in token else ""
            names.add(token)
    return names


def covered(path: str, names: set[str]) -> bool:
    """``path`` is named, or an ancestor (``a.*``, or ``a`` for a whole mapping), or, for an empty
    mapping, the keys it takes."""
    parts = path.split(".")
    ancestors = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
    return (
        bool(ancestors & names)
        or any(f"{a}.*" in names for a in ancestors)
        or any(name.startswith(f"{path}.") for name in names)
    )


def test_every_value_is_documented() -> None:
    names = documented()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = sorted({path for path in leaves(values) if not covered(path, names)})
    assert missing == [], f"charts/hami/README.md does not document: {missing}"


def test_every_documented_value_exists() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = set(leaves(values))
    stale = sorted(
        name
        for name in documented()
        if not any(
            path == name or path.startswith(name.removesuffix("*")) or name.startswith(f"{path}.")
            for path in paths
        )
        and not any(path.startswith(f"{name}.") for path in paths)
    )
    assert stale == [], f"charts/hami/README.md documents keys values.yaml does not have: {stale}"
