"""Every hook is documented in docs/hooks.md and has a ``test_hook_<name>`` test (datasette's guards)."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy
import pytest

from hami_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOK_DOCS = ROOT / "docs" / "hooks.md"


def _hooks() -> list[tuple[str, list[str]]]:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    found = []
    for name in dir(manager.hook):
        caller = getattr(manager.hook, name)
        if name.startswith("hami_") and isinstance(caller, pluggy.HookCaller) and caller.spec is not None:
            found.append((name, list(caller.spec.argnames)))
    return found


def _test_sources() -> str:
    folders = [ROOT / "tests", *ROOT.glob("backends/*/tests"), *ROOT.glob("plugins/*/tests")]
    return "\n".join(path.read_text() for folder in folders for path in folder.rglob("test_*.py"))


def test_the_hook_list_is_the_designed_one() -> None:
    assert sorted(name for name, _ in _hooks()) == ["hami_register_backends", "hami_scoring_policies"]


@pytest.mark.parametrize(("name", "argnames"), _hooks(), ids=[name for name, _ in _hooks()])
def test_every_hook_is_documented(name: str, argnames: list[str]) -> None:
    heading = f"## {name}({', '.join(argnames)})"
    assert heading in HOOK_DOCS.read_text().splitlines(), f"docs/hooks.md needs the heading {heading!r}"


@pytest.mark.parametrize("name", [name for name, _ in _hooks()])
def test_every_hook_is_tested(name: str) -> None:
    assert re.search(rf"^def test_hook_{name}\(", _test_sources(), re.MULTILINE), f"write test_hook_{name}"


def test_every_hook_heading_names_a_hook() -> None:
    """A heading left behind by a removed or renamed hook fails too."""
    documented = re.findall(r"^## (hami_\w+)\(", HOOK_DOCS.read_text(), re.MULTILINE)
    assert sorted(documented) == sorted(name for name, _ in _hooks())
