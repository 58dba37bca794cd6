"""hy-smi parsing and the register entries HAMi's DCU plugin writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hami_backend_dcu import discovery
from hami_backend_dcu.discovery import DcuCard

from hami_core.sdk import BackendError
from hami_core.sdk import DeviceInfo
from hami_core.sdk import encode_node_devices_legacy


def test_the_shipped_output_lists_two_z100l_cards() -> None:
    cards = discovery.SavedHySmi(discovery.fake_output("2xZ100L")).cards()
    assert cards == [
        DcuCard(index=0, series="Z100L", memory_mib=32752, pci_bus="0000:1a:00.0", serial="PCB0000000001"),
        DcuCard(index=1, series="Z100L", memory_mib=32752, pci_bus="0000:1b:00.0", serial="PCB0000000002"),
    ]


def test_register_entries_encode_to_the_colon_form_hami_decodes() -> None:
    devices = discovery.register_devices([DcuCard(0, "Z100L", 32752), DcuCard(1, "K100_AI", 65520)], split=4)
    assert encode_node_devices_legacy(devices) == (
        "DCU-0,4,32752,100,DCU-Z100L,0,true,0,hami-core:DCU-1,4,65520,100,DCU-K100_AI,0,true,1,hami-core:"
    )


def test_cards_without_memory_are_not_registered() -> None:
    assert discovery.register_devices([DcuCard(0, "Z100L", 0)], split=4) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"cardX": {}}', "card<number>"),
        ('{"card0": 3}', "must be an object"),
        ('{"card0": {"VRAM Total Memory (B)": "1"}}', "'Card series' missing"),
        ('{"card0": {"Card series": "Z100", "VRAM Total Memory (B)": "lots"}}', "not a number"),
        ('{"card0": {"Card series": "Z:100", "VRAM Total Memory (B)": "1"}}', "separator"),
    ],
)
def test_malformed_output_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        discovery.parse_hy_smi(text)


def test_hy_smi_runs_the_tool_and_reports_its_failure(tmp_path: Path) -> None:
    tool = tmp_path / "hy-smi"
    tool.write_text(f"#!/bin/sh\ncat {discovery.fake_output('2xZ100L')}\n")
    tool.chmod(0o755)
    assert [card.index for card in discovery.HySmi(str(tool)).cards()] == [0, 1]
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho no driver >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(BackendError, match="failed \\(3\\): no driver"):
        discovery.HySmi(str(broken)).cards()
    with pytest.raises(BackendError, match="cannot run"):
        discovery.HySmi(str(tmp_path / "missing")).cards()


def test_unknown_fake_names_the_shipped_ones() -> None:
    with pytest.raises(BackendError, match="shipped: 2xZ100L"):
        discovery.fake_output("nope")


def test_device_ids_round_trip_to_card_numbers() -> None:
    assert discovery.card_index(discovery.device_id(7)) == 7
    for bad in ("GPU-1", "DCU-", "DCU-x"):
        with pytest.raises(BackendError, match="invalid DCU device id"):
            discovery.card_index(bad)


def test_no_subprocess_is_run_for_a_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("hy-smi must not run")

    monkeypatch.setattr(subprocess, "run", refuse)
    cards = discovery.SavedHySmi(discovery.fake_output("2xZ100L")).cards()
    assert all(isinstance(device, DeviceInfo) for device in discovery.register_devices(cards, 4))
