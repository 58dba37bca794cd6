"""The ``backends.dcu`` section: HAMi's resource-name keys and the node-side paths."""

from __future__ import annotations

import pytest
from hami_backend_dcu.settings import DcuSettings
from hami_backend_dcu.settings import parse_settings

from hami_core.sdk import ConfigError
from hami_core.sdk import HamiConfig
from hami_core.sdk import parse_config


def config(section: dict[str, object]) -> HamiConfig:
    return parse_config({"version": "v1", "backends": {"dcu": {"enabled": True, **section}}}, "hami.yaml")


def test_defaults_are_hamis() -> None:
    assert parse_settings(config({})) == DcuSettings()


def test_keys_are_read() -> None:
    settings = parse_settings(
        config({"resourceCountName": "hygon.com/dcu", "memoryFactor": 2, "split": 8, "fake": "2xZ100L"})
    )
    assert settings.resource_names.count == "hygon.com/dcu"
    assert settings.resource_names.memory == "hygon.com/dcumem"
    assert (settings.memory_factor, settings.split, settings.fake) == (2, 8, "2xZ100L")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"splitCount": 4}, "backends.dcu.splitCount: unknown key"),
        ({"split": 0}, "backends.dcu.split: must be between 1"),
        ({"memoryFactor": "2"}, "backends.dcu.memoryFactor: expected an integer"),
        ({"resourceCountName": ""}, "backends.dcu.resourceCountName: expected a non-empty string"),
        ({"vdev_dir": 3}, "backends.dcu.vdev_dir: expected a non-empty string"),
    ],
)
def test_bad_values_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(config(section))
