"""The reader on region files HAMi-core itself wrote (tests/monitor/data/README.md)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hami_core.monitor.layout import HAMI_CORE_SIZE
from hami_core.monitor.regions import read_region

DATA = Path(__file__).with_name("data")
MIB = 1 << 20


def unpack(name: str, dest: Path) -> Path:
    path = dest / name.removesuffix(".gz")
    path.write_bytes(gzip.decompress((DATA / name).read_bytes()))
    return path


def test_live_processes_are_summed(tmp_path: Path) -> None:
    path = unpack("two-procs-300-200.cache.gz", tmp_path)
    assert path.stat().st_size == HAMI_CORE_SIZE + 1
    reading = read_region(path)
    assert reading.layout == "hami-core-1.2"
    assert reading.device_uuids == ("GPU-5f1a4e02-7b3c-4d11-9a6e-210cfeed0001",)
    assert reading.memory_limits[0] == 1024 * MIB
    assert reading.sm_limits[0] == 30
    assert reading.priority == 1
    assert len(reading.slots) == 2
    assert [slot.status for slot in reading.slots] == [1, 1]
    assert reading.memory(0).total == 500 * MIB
    assert reading.memory(0).data == 500 * MIB
    assert reading.memory(0).context == 0
    assert reading.counters is None


def test_exited_processes_count_zero(tmp_path: Path) -> None:
    reading = read_region(unpack("after-exit.cache.gz", tmp_path))
    assert len(reading.slots) == 2  # proc_num is still 2 ...
    assert [slot.memory[0].total for slot in reading.slots] == [300 * MIB, 200 * MIB]  # ... totals stay
    assert reading.live_slots == ()
    assert reading.memory(0).total == 0
    assert reading.memory_limits[0] == 1024 * MIB


@pytest.mark.parametrize("name", ["two-procs-300-200.cache.gz", "after-exit.cache.gz"])
def test_header_only_copy_is_untouched(tmp_path: Path, name: str) -> None:
    path = unpack(name, tmp_path)
    before = path.read_bytes()
    read_region(path)
    assert path.read_bytes() == before
