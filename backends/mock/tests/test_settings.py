"""The backends.mock config section: defaults, device groups, per-node lists and errors."""

from __future__ import annotations

import re

import pytest
from hami_backend_mock.settings import DEFAULT_DEVICES
from hami_backend_mock.settings import DeviceGroup
from hami_backend_mock.settings import parse_settings

from hami_core.sdk import ConfigError
from hami_core.sdk import HamiConfig
from hami_core.sdk import parse_config


def _config(section: dict[str, object]) -> HamiConfig:
    return parse_config({"version": "v1", "backends": {"mock": {"enabled": True, **section}}}, "fleet.yaml")


def test_an_empty_section_gives_two_default_devices() -> None:
    settings = parse_settings(parse_config({"version": "v1", "backends": {"mock": None}}))
    assert settings.devices == DEFAULT_DEVICES
    assert settings.memory_factor == 1


def test_device_groups_and_node_overrides_are_read() -> None:
    config = parse_config(
        {
            "version": "v1",
            "backends": {
                "mock": {
                    "devices": [
                        {"count": 4, "memory_mib": 24576, "type": "MOCK-A100", "split": 5, "numa": 1}
                    ],
                    "nodes": {
                        "big": [{"count": 8, "memory_mib": 81920, "type": "mock-h100", "healthy": False}]
                    },
                    "memory_factor": 256,
                    "default_cores": 100,
                    "allocate_delay": 2,
                }
            },
        }
    )
    settings = parse_settings(config)
    assert settings.devices == (DeviceGroup(count=4, memory_mib=24576, type="MOCK-A100", split=5, numa=1),)
    assert settings.groups_for("big") == (
        DeviceGroup(count=8, memory_mib=81920, type="mock-h100", healthy=False),
    )
    assert settings.groups_for("other") == settings.devices
    assert (settings.memory_factor, settings.default_cores, settings.allocate_delay) == (256, 100, 2.0)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param({"gpus": 2}, "backends.mock.gpus", id="unknown-setting"),
        pytest.param({"devices": {"count": 1}}, "backends.mock.devices", id="devices-not-a-list"),
        pytest.param({"devices": [{"memory_mib": 1}]}, "backends.mock.devices[0].count", id="count-missing"),
        pytest.param(
            {"devices": [{"count": "2", "memory_mib": 1}]},
            "backends.mock.devices[0].count",
            id="count-string",
        ),
        pytest.param(
            {"devices": [{"count": 1, "memory_mib": 1, "vram": 2}]},
            "backends.mock.devices[0].vram",
            id="unknown-device-key",
        ),
        pytest.param(
            {"devices": [{"count": 1, "memory_mib": 1, "type": "A100"}]},
            "backends.mock.devices[0].type",
            id="type-without-mock",
        ),
        pytest.param(
            {"devices": [{"count": 1, "memory_mib": 1, "type": "MOCK,A"}]},
            "backends.mock.devices[0].type",
            id="type-with-separator",
        ),
        pytest.param(
            {"devices": [{"count": 1, "memory_mib": 1, "split": 0}]},
            "backends.mock.devices[0].split",
            id="split-zero",
        ),
        pytest.param(
            {"devices": [{"count": 1, "memory_mib": 1, "healthy": "yes"}]},
            "backends.mock.devices[0].healthy",
            id="healthy-string",
        ),
        pytest.param({"nodes": []}, "backends.mock.nodes", id="nodes-not-a-mapping"),
        pytest.param({"default_cores": 101}, "backends.mock.default_cores", id="cores-above-100"),
        pytest.param({"memory_factor": 0}, "backends.mock.memory_factor", id="factor-zero"),
        pytest.param({"allocate_delay": "1s"}, "backends.mock.allocate_delay", id="delay-not-a-number"),
        pytest.param({"allocate_delay": -1}, "backends.mock.allocate_delay", id="delay-negative"),
    ],
)
def test_bad_settings_are_config_errors_naming_file_and_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^config fleet\\.yaml: {re.escape(key)}: "):
        parse_settings(_config(section))
