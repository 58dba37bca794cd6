"""cnmon parsing, and devices shaped as HAMi synthesizes them from node capacity."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_backend_mlu import discovery
from hami_backend_mlu.discovery import MluCard

from hami_core.sdk import BackendError
from hami_core.sdk import DeviceInfo

CORES, MEMORY = "cambricon.com/mlu.smlu.vcore", "cambricon.com/mlu.smlu.vmemory"


def test_the_shipped_output_lists_two_mlu370_cards() -> None:
    cards = discovery.SavedCnmon(discovery.fake_output("2xMLU370")).cards()
    assert [(card.index, card.product, card.memory_mib) for card in cards] == [
        (0, "MLU370-X8", 24576),
        (1, "MLU370-X8", 24576),
    ]


def test_capacity_synthesis_is_hamis() -> None:
    # Two cards: 200 vcores, 192 vmemory units of 256 MiB => 24576 MiB per card.
    devices = discovery.capacity_devices("n1", {CORES: "200", MEMORY: "192"}, CORES, MEMORY)
    assert devices == [
        DeviceInfo(
            id=f"n1-cambricon-mlu-{i}",
            index=i,
            count=100,
            devmem=24576,
            devcore=100,
            type="MLU",
            mode="hami-core",
            health=True,
            device_vendor="mlu",
        )
        for i in (0, 1)
    ]


def test_a_started_hundred_cores_is_a_device() -> None:
    # HAMi loops while i*100 < cards, so 150 cores give two devices sharing the memory by cores.
    devices = discovery.capacity_devices("n1", {CORES: "150", MEMORY: "96"}, CORES, MEMORY)
    assert [(d.id, d.devmem) for d in devices] == [
        ("n1-cambricon-mlu-0", 16384),
        ("n1-cambricon-mlu-1", 16384),
    ]


@pytest.mark.parametrize("capacity", [{}, {CORES: "0", MEMORY: "96"}])
def test_no_cores_is_device_not_found(capacity: dict[str, str]) -> None:
    with pytest.raises(BackendError, match=f"device not found {CORES}"):
        discovery.capacity_devices("n1", capacity, CORES, MEMORY)


def test_discovered_devices_match_the_synthesized_ones() -> None:
    cards = [MluCard(0, "MLU370-X8", 24576), MluCard(1, "MLU370-X8", 24576)]
    assert discovery.register_devices("n1", cards) == discovery.capacity_devices(
        "n1", {CORES: "200", MEMORY: "192"}, CORES, MEMORY
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no 'Card <n>' block"),
        ("Card 0\nProduct Name : X\n", "card 0 has no product name or total memory"),
    ],
)
def test_malformed_output_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        discovery.parse_cnmon(text)


def test_cnmon_runs_the_tool_and_reports_its_failure(tmp_path: Path) -> None:
    tool = tmp_path / "cnmon"
    tool.write_text(f"#!/bin/sh\ncat {discovery.fake_output('2xMLU370')}\n")
    tool.chmod(0o755)
    assert len(discovery.Cnmon(str(tool)).cards()) == 2
    with pytest.raises(BackendError, match="cannot run"):
        discovery.Cnmon(str(tmp_path / "missing")).cards()


def test_unknown_fake_names_the_shipped_ones() -> None:
    with pytest.raises(BackendError, match="shipped: 2xMLU370"):
        discovery.fake_output("nope")
