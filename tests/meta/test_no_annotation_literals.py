"""Annotation keys are spelled once: core keys in codec.py, vendor keys in each backend's resources.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LITERAL = re.compile(r"""["']hami\.io/""")
ALLOWED_NAMES = {"codec.py", "resources.py"}


def _sources() -> list[Path]:
    found: list[Path] = []
    for top in ("hami_core", "backends", "plugins"):
        for path in (ROOT / top).rglob("*.py"):
            if "tests" in path.relative_to(ROOT).parts or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            found.append(path)
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_annotation_literal_outside_codec_and_resources(path: Path) -> None:
    if path.name in ALLOWED_NAMES:
        return
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if LITERAL.search(line)
    ]
    assert not hits, (
        "use the key constants from hami_core.codec or the backend's resources.py:\n" + "\n".join(hits)
    )
