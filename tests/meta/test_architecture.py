"""The import-linter contracts in pyproject.toml say what docs/architecture.md says, for every module."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path
from typing import Any

import hami_core

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {
        contract["type"] + ":" + contract["name"]: contract
        for contract in config["tool"]["importlinter"]["contracts"]
    }


def _layers() -> list[set[str]]:
    (layers,) = [c for key, c in _contracts().items() if key.startswith("layers:")]
    return [{name.strip() for name in re.split(r"[|:]", row)} for row in layers["layers"]]


def _documented_layers() -> list[set[str]]:
    """The ``hami_core.*`` modules of each row of the layer table, bottom row first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## Layers", 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in ("|" + table).splitlines() if line.startswith("| ") and "`hami_core." in line]
    return [set(re.findall(r"`hami_core\.(\w+)`", row.split("|")[2])) for row in rows]


def test_every_module_of_the_core_is_in_one_layer() -> None:
    listed = [name for row in _layers() for name in row]
    assert len(listed) == len(set(listed))
    modules = {info.name for info in pkgutil.iter_modules(hami_core.__path__)}
    assert set(listed) == modules


def test_the_layer_table_of_the_docs_is_the_contract() -> None:
    """Same modules in the same order: the docs list bottom up, the contract top down."""
    contract = list(reversed(_layers()))
    # The docs' composition row holds cli and __main__; the contract puts __main__ above cli.
    assert _documented_layers() == [*contract[:-2], contract[-2] | contract[-1]]


def test_every_backend_distribution_is_forbidden_to_the_core() -> None:
    (forbidden,) = [
        c for key, c in _contracts().items() if key.startswith("forbidden:the core never imports")
    ]
    names = set(forbidden["forbidden_modules"])
    assert {
        "hami_backend_mock",
        "hami_backend_nvidia",
        "hami_backend_ascend",
        "hami_backend_mlu",
        "hami_backend_dcu",
    } <= names
    in_tree = {path.name for path in ROOT.glob("*/*/hami_backend_*") if path.is_dir()}
    installed = {info.name for info in pkgutil.iter_modules() if info.name.startswith("hami_backend_")}
    assert in_tree | installed <= names, "add the new backend package to the contract in pyproject.toml"


def test_backends_may_import_only_the_sdk_and_the_kit_of_the_core() -> None:
    (contract,) = [c for key, c in _contracts().items() if key.startswith("forbidden:backends import the core")]
    modules = {info.name for info in pkgutil.iter_modules(hami_core.__path__)}
    assert set(contract["forbidden_modules"]) == {f"hami_core.{name}" for name in modules - {"sdk", "testing"}}
    in_tree = {path.name for path in ROOT.glob("*/*/hami_backend_*") if path.is_dir()}
    assert set(contract["source_modules"]) == in_tree, "add the new backend package to the SDK contract"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(config["tool"]["importlinter"]["root_packages"]) == {"hami_core"} | in_tree
