"""The env contract in Python (hami_core.isolation.shim) and in C (native/include/hami_shim.h) agree."""

from __future__ import annotations

import re
from pathlib import Path

from hami_core.isolation import shim

HEADER = Path(__file__).resolve().parents[2] / "native" / "include" / "hami_shim.h"


def _header() -> str:
    return HEADER.read_text(encoding="utf-8")


def test_the_header_names_the_same_variables_in_the_same_order() -> None:
    names = re.findall(r'^#define HAMI_ENV_\w+ "([A-Z0-9_]+)"', _header(), flags=re.MULTILINE)
    assert tuple(names) == shim.ENV_NAMES


def test_the_memory_unit_hami_writes_is_the_one_the_shim_reads() -> None:
    units = dict(
        re.findall(r"^#define HAMI_UNIT_([KMG]) \(?([0-9ull *]+)\)?$", _header(), flags=re.MULTILINE)
    )
    mib = 1
    for factor in units["M"].replace("ull", "").split("*"):
        mib *= int(factor)
    assert mib == 2**20
    assert shim.memory_limit_value(3000) == "3000m"


def test_the_default_priority_is_hamis() -> None:
    match = re.search(r"^#define HAMI_DEFAULT_PRIORITY (\d+)$", _header(), flags=re.MULTILINE)
    assert match is not None
    assert int(match.group(1)) == 1
