"""npu-smi parsing, vNPU creation and the ``backends.<chip>`` section."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_backend_ascend import discovery
from hami_backend_ascend import resources
from hami_backend_ascend.discovery import NpuChip
from hami_backend_ascend.settings import AscendSettings
from hami_backend_ascend.settings import parse_settings

from hami_core.sdk import BackendError
from hami_core.sdk import ConfigError
from hami_core.sdk import HamiConfig
from hami_core.sdk import parse_config


def test_info_m_lists_chips_and_skips_mcus() -> None:
    chips = discovery.FakeNpuSmi(discovery.fake_output("4x910C")).chips()
    assert chips == [
        NpuChip(0, 0, 0, "Ascend 910"),
        NpuChip(0, 1, 1, "Ascend 910"),
        NpuChip(1, 0, 2, "Ascend 910"),
        NpuChip(1, 1, 3, "Ascend 910"),
    ]


def test_no_chip_is_an_error() -> None:
    with pytest.raises(BackendError, match="lists no NPU chip"):
        discovery.parse_info_m("NPU ID Chip ID Chip Logic ID Chip Name\n0 1 - Mcu\n")


def test_npu_smi_runs_the_tool_and_parses_the_created_vnpu(tmp_path: Path) -> None:
    tool = tmp_path / "npu-smi"
    calls = tmp_path / "calls"
    tool.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        f'if [ "$1" = info ]; then cat {discovery.fake_output("8x910B3")}; '
        'else echo "Status : OK"; echo "Message : The vnpu_id is 105"; fi\n'
    )
    tool.chmod(0o755)
    smi = discovery.NpuSmi(str(tool))
    chips = smi.chips()
    assert len(chips) == 8
    assert smi.create_vnpu(chips[3], "vir05_1c_16g") == 105
    assert calls.read_text().splitlines() == ["info -m", "set -t create-vnpu -i 3 -c 0 -f vir05_1c_16g"]


def test_a_refused_creation_is_an_error(tmp_path: Path) -> None:
    tool = tmp_path / "npu-smi"
    tool.write_text("#!/bin/sh\necho 'Error: not enough AI cores' >&2\nexit 1\n")
    tool.chmod(0o755)
    with pytest.raises(BackendError, match="not enough AI cores"):
        discovery.NpuSmi(str(tool)).create_vnpu(NpuChip(0, 0, 0, "Ascend 910B3"), "vir05_1c_16g")


def test_fake_vnpu_ids_follow_the_drivers_numbering() -> None:
    fake = discovery.FakeNpuSmi(discovery.fake_output("8x910B3"))
    chip = NpuChip(2, 0, 2, "Ascend 910B3")
    assert [fake.create_vnpu(chip, "vir05_1c_16g") for _ in range(3)] == [132, 133, 134]


def test_slots_come_from_the_smallest_template() -> None:
    chips = resources.CHIPS_BY_NAME
    assert discovery.slots(chips["ascend910b3"]) == 4
    assert discovery.slots(chips["ascend910a"]) == 15
    assert discovery.slots(chips["ascend310p"]) == 8


def config(name: str, section: dict[str, object]) -> HamiConfig:
    return parse_config({"version": "v1", "backends": {name: {"enabled": True, **section}}}, "hami.yaml")


def test_settings_default_to_the_chart_table_and_take_hamis_keys() -> None:
    chip = resources.CHIPS_BY_NAME["ascend910b3"]
    assert parse_settings(config("ascend910b3", {}), chip) == AscendSettings.for_chip(chip)
    settings = parse_settings(
        config(
            "ascend910b3",
            {
                "memoryAllocatable": 60000,
                "templates": [
                    {"name": "big", "memory": 30000, "aiCore": 10},
                    {"name": "small", "memory": 10000},
                ],
                "hamiVnpuCore": True,
                "runtimeClassName": "ascend",
                "network_group_size": 8,
                "resourceName": "huawei.com/npu",
            },
        ),
        chip,
    )
    assert settings.chip.memory_allocatable == 60000
    assert [t.name for t in settings.chip.templates] == ["small", "big"]
    assert (settings.hami_vnpu_core, settings.runtime_class_name, settings.network_group_size) == (
        True,
        "ascend",
        8,
    )
    assert settings.resource_names.count == "huawei.com/npu"
    assert settings.resource_names.memory == "huawei.com/Ascend910B3-memory"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"vnpus": []}, "backends.ascend910b3.vnpus: unknown key"),
        ({"aiCore": -1}, "backends.ascend910b3.aiCore: must be between 0"),
        ({"templates": [{"name": "x"}]}, "backends.ascend910b3.templates\\[0\\]"),
        ({"superPod": "yes"}, "backends.ascend910b3.superPod: expected true or false"),
    ],
)
def test_bad_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(config("ascend910b3", section), resources.CHIPS_BY_NAME["ascend910b3"])
