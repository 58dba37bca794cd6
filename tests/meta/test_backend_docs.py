"""docs/writing-a-backend.md shows the example backend's files as they are and every contract member.

A code block after ``<!-- file: PATH -->`` must be that file, byte for byte (cog's guard, without
the generator); tests/integration/test_acme_example.py installs and runs the same files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hami_core.sdk import DeviceBackend

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-a-backend.md"
EXAMPLE = ROOT / "docs" / "examples" / "hami-backend-acme"
_INCLUDE = re.compile(r"^<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def _includes() -> dict[str, str]:
    return {match["path"]: match["body"] for match in _INCLUDE.finditer(DOC.read_text())}


@pytest.mark.parametrize("path", sorted(_includes()))
def test_every_included_block_is_its_file(path: str) -> None:
    assert _includes()[path] == (ROOT / path).read_text(), f"copy {path} into docs/writing-a-backend.md"


def test_every_file_of_the_example_is_shown() -> None:
    files = {
        str(path.relative_to(ROOT))
        for path in EXAMPLE.rglob("*")
        if path.is_file() and path.name not in ("__init__.py", "py.typed") and "__pycache__" not in path.parts
    }
    assert files == set(_includes())


def _contract_members() -> list[str]:
    """Every public method, property and class attribute of the contract (``contract_version``)."""
    names = {*vars(DeviceBackend), *DeviceBackend.__annotations__}
    return sorted(name for name in names if not name.startswith("_"))


@pytest.mark.parametrize("member", _contract_members())
def test_every_contract_member_has_a_row_with_its_cost_and_default(member: str) -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    assert any(f"`{member}`" in row.split("|")[1] for row in rows), f"document {member} in the method table"
