"""The config file: defaults, the scheduler section, backend sections and error messages."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from hami_core.config import HamiConfig
from hami_core.config import SchedulerConfig
from hami_core.config import load_config
from hami_core.config import parse_config
from hami_core.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hami.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_the_defaults_with_no_backend_enabled() -> None:
    config = load_config(None)
    assert config.enabled_backends == ()
    assert config.scheduler == SchedulerConfig()
    assert (config.scheduler.scheduler_name, config.scheduler.node_scheduler_policy) == (
        "hami-scheduler",
        "binpack",
    )
    assert (config.scheduler.gpu_scheduler_policy, config.scheduler.node_lock_timeout) == ("spread", 300.0)
    assert (config.scheduler.http_bind, config.scheduler.metrics_bind) == ("127.0.0.1:8080", ":9395")


def test_every_scheduler_setting_can_be_written_in_the_file() -> None:
    document = {
        "version": "v1",
        "scheduler": {
            field.name: getattr(SchedulerConfig(), field.name) for field in attrs.fields(SchedulerConfig)
        },
    }
    document["scheduler"]["node_label_selector"] = {}
    assert parse_config(document).scheduler == SchedulerConfig()


def test_a_full_file_is_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
version: v1
scheduler:
  scheduler_name: my-scheduler
  node_scheduler_policy: spread
  gpu_scheduler_policy: binpack,numa
  node_lock_timeout: 60
  leader_elect: true
  node_label_selector: {gpu: "on"}
backends:
  mock:
    enabled: true
    devices: [{count: 4, memory_mib: 24576}]
  acme:
    enabled: false
    splits: 4
""",
    )
    config = load_config(path)
    assert config.source == str(path)
    assert config.scheduler.scheduler_name == "my-scheduler"
    assert config.scheduler.node_lock_timeout == 60.0
    assert config.scheduler.leader_elect is True
    assert dict(config.scheduler.node_label_selector) == {"gpu": "on"}
    assert config.enabled_backends == ("mock",)
    assert config.backend("mock")["devices"] == [{"count": 4, "memory_mib": 24576}]
    assert config.backend("acme")["splits"] == 4


def test_other_backend_sections_pass_through_to_their_backend() -> None:
    config = parse_config({"version": "v1", "backends": {"acme": {"enabled": True, "knob": [1, 2]}}})
    assert dict(config.backend("acme")) == {"enabled": True, "knob": [1, 2]}
    assert dict(config.backend("absent")) == {"enabled": False}


def test_sections_are_read_only() -> None:
    section = HamiConfig().backend("mock")
    with pytest.raises(TypeError):
        section["enabled"] = True  # type: ignore[index]


def test_with_enabled_adds_backends_without_touching_the_original() -> None:
    base = parse_config({"version": "v1", "backends": {"mock": {"enabled": False, "default_cores": 5}}})
    enabled = base.with_enabled(["mock", "acme"])
    assert enabled.enabled_backends == ("mock", "acme")
    assert enabled.backend("mock")["default_cores"] == 5
    assert dict(enabled.backend("acme")) == {"enabled": True}
    assert base.enabled_backends == ()


@pytest.mark.parametrize(
    ("document", "key"),
    [
        pytest.param({"version": "v1", "extra": 1}, "extra", id="unknown-top-level-key"),
        pytest.param({"version": "v2"}, "version", id="wrong-version"),
        pytest.param({}, "version", id="missing-version"),
        pytest.param([], "<top level>", id="not-a-mapping"),
        pytest.param(
            {"version": "v1", "scheduler": {"schedulerName": "x"}},
            "scheduler.schedulerName",
            id="unknown-scheduler-key",
        ),
        pytest.param(
            {"version": "v1", "scheduler": {"node_lock_timeout": "5m"}},
            "scheduler.node_lock_timeout",
            id="timeout-not-a-number",
        ),
        pytest.param(
            {"version": "v1", "scheduler": {"node_lock_timeout": 0}},
            "scheduler.node_lock_timeout",
            id="timeout-zero",
        ),
        pytest.param(
            {"version": "v1", "scheduler": {"leader_elect": "yes"}},
            "scheduler.leader_elect",
            id="bool-as-string",
        ),
        pytest.param(
            {"version": "v1", "scheduler": {"scheduler_name": ""}},
            "scheduler.scheduler_name",
            id="empty-name",
        ),
        pytest.param(
            {"version": "v1", "scheduler": {"node_label_selector": {"a": 1}}},
            "scheduler.node_label_selector",
            id="selector-value-not-a-string",
        ),
        pytest.param({"version": "v1", "scheduler": []}, "scheduler", id="scheduler-not-a-mapping"),
        pytest.param({"version": "v1", "backends": []}, "backends", id="backends-not-a-mapping"),
        pytest.param(
            {"version": "v1", "backends": {"Acme": {}}}, "backends.Acme", id="backend-name-not-lowercase"
        ),
        pytest.param({"version": "v1", "backends": {"mock": 3}}, "backends.mock", id="section-not-a-mapping"),
        pytest.param(
            {"version": "v1", "backends": {"mock": {"enabled": "true"}}},
            "backends.mock.enabled",
            id="enabled-not-a-bool",
        ),
    ],
)
def test_bad_documents_are_config_errors_naming_the_source_and_key(document: object, key: str) -> None:
    with pytest.raises(ConfigError, match=f"^config cluster\\.yaml: {re.escape(key)}: "):
        parse_config(document, "cluster.yaml")


def test_a_file_that_is_not_yaml_is_named_in_the_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: v1\nbackends: {mock: [\n")
    with pytest.raises(ConfigError, match=f"^config {re.escape(str(path))}: not valid YAML"):
        load_config(path)


def test_a_missing_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=f"^config {re.escape(str(path))}: cannot be read"):
        load_config(path)


def test_backends_report_their_own_problems_in_the_same_shape() -> None:
    error = parse_config({"version": "v1"}, "c.yaml").error(
        "backends.mock.devices[0].count", "expected an integer"
    )
    assert str(error) == "config c.yaml: backends.mock.devices[0].count: expected an integer"
