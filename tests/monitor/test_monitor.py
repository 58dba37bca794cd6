"""The monitor's tick over a node directory: mapping to pods, vanishing metrics, reaping, bad files."""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path
from typing import Any

import pytest

from hami_core.monitor import layout
from hami_core.monitor.metrics import families
from hami_core.monitor.service import Monitor

DATA = Path(__file__).with_name("data")
LIVE = gzip.decompress((DATA / "two-procs-300-200.cache.gz").read_bytes())
UID_A = "11111111-1111-4111-8111-111111111111"
UID_B = "22222222-2222-4222-8222-222222222222"


def place(root: Path, uid: str, container: str, data: bytes, name: str = "r.cache") -> Path:
    directory = root / "containers" / f"{uid}_{container}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return directory


def pod(uid: str, name: str, namespace: str = "default") -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": name, "namespace": namespace}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(monitor: Monitor, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for family in families(monitor.latest(), "n1"):
        for sample in family.samples:
            if sample.name.removesuffix("_total") == name:
                found.append((sample.labels, sample.value))
    return found


def test_regions_map_to_pods_and_vanish_with_them(tmp_path: Path) -> None:
    pods = [pod(UID_A, "a", "ml"), pod(UID_B, "b")]
    place(tmp_path, UID_A, "train", LIVE)
    place(tmp_path, UID_B, "serve", LIVE)
    clock = Clock()
    monitor = Monitor(tmp_path / "containers", lambda: pods, grace=60, clock=clock)
    monitor.tick()
    used = samples(monitor, "hami_vgpu_memory_used_bytes")
    assert sorted((labels["namespace"], labels["pod"], labels["container"]) for labels, _ in used) == [
        ("default", "b", "serve"),
        ("ml", "a", "train"),
    ]
    assert {value for _, value in used} == {500 << 20}
    del pods[0]  # pod a is deleted: its metrics go at once, its directory after the grace period
    clock.now += 30
    monitor.tick()
    assert [labels["pod"] for labels, _ in samples(monitor, "hami_vgpu_memory_used_bytes")] == ["b"]
    assert (tmp_path / "containers" / f"{UID_A}_train").exists()
    clock.now += 59
    monitor.tick()
    assert (tmp_path / "containers" / f"{UID_A}_train").exists()
    clock.now += 1
    monitor.tick()
    assert not (tmp_path / "containers" / f"{UID_A}_train").exists()
    assert (tmp_path / "containers" / f"{UID_B}_serve").exists()


def test_pod_listing_failure_keeps_the_last_one_and_reaps_nothing(tmp_path: Path) -> None:
    calls = [0]

    def listing() -> list[dict[str, Any]]:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError("kubelet down")
        return [pod(UID_A, "a")]

    place(tmp_path, UID_A, "c", LIVE)
    orphan = place(tmp_path, UID_B, "c", LIVE)
    clock = Clock()
    monitor = Monitor(tmp_path / "containers", listing, grace=0, clock=clock)
    monitor.tick()
    assert not orphan.exists()  # grace 0: its pod was not listed
    place(tmp_path, UID_B, "c", LIVE)
    clock.now += 10
    monitor.tick()  # listing fails: the last listing maps, nothing is reaped
    assert orphan.exists()
    assert [labels["pod"] for labels, _ in samples(monitor, "hami_vgpu_memory_used_bytes")] == ["a"]


def _bad_files() -> dict[str, bytes]:
    foreign = bytearray(LIVE)
    struct.pack_into("<I", foreign, 4, 2)
    no_magic = bytearray(LIVE)
    struct.pack_into("<i", no_magic, 0, 7)
    bad_count = bytearray(LIVE)
    struct.pack_into("<i", bad_count, layout.PROC_NUM_AT, 5000)
    old = bytearray(LIVE[:200_000])  # a v0-sized file: HAMi-core before Aug 2024
    struct.pack_into("<II", old, 4, 0, 0)
    return {
        "truncated": LIVE[:1_000_000],
        "foreign_version": bytes(foreign),
        "corrupt": bytes(no_magic),
        "corrupt-count": bytes(bad_count),
        "v0": bytes(old),
        "empty": b"",
    }


def test_bad_files_are_logged_counted_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    uids = []
    for i, (label, data) in enumerate(_bad_files().items()):
        uid = f"{i:08d}-0000-4000-8000-000000000000"
        uids.append(pod(uid, label))
        place(tmp_path, uid, "c", data)
    place(tmp_path, UID_A, "c", LIVE)
    uids.append(pod(UID_A, "good"))
    monitor = Monitor(tmp_path / "containers", lambda: uids)
    with caplog.at_level(logging.WARNING, logger="hami_core.monitor.service"):
        snapshot = monitor.tick()
    assert [s.pod.name for s in snapshot.containers] == ["good"]
    kinds = sorted(problem.kind for problem in snapshot.problems)
    assert kinds == ["corrupt", "corrupt", "foreign_version", "foreign_version", "truncated", "truncated"]
    assert dict(
        (labels["kind"], value) for labels, value in samples(monitor, "hami_monitor_region_errors")
    ) == {
        "corrupt": 2,
        "foreign_version": 2,
        "truncated": 2,
    }
    assert sum("skipping region" in record.message for record in caplog.records) == 6
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hami_core.monitor.service"):
        monitor.tick()
    assert not caplog.records  # each problem is logged once, counted on every scan
    # Nothing was written to the bad files.
    for i, data in enumerate(_bad_files().values()):
        assert (
            tmp_path / "containers" / f"{i:08d}-0000-4000-8000-000000000000_c" / "r.cache"
        ).read_bytes() == data


def test_an_oversized_file_is_read_up_to_the_largest_layout(tmp_path: Path) -> None:
    place(tmp_path, UID_A, "c", LIVE + b"\0" * (8 << 20))
    snapshot = Monitor(tmp_path / "containers", lambda: [pod(UID_A, "a")]).tick()
    assert [s.reading.memory(0).total for s in snapshot.containers] == [500 << 20]
