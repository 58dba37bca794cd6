"""The hami command line: ``hami backends list`` and the group's error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hami_core.cli import hami

MOCK_RESOURCES = [
    "mock.hami.io/gpu",
    "mock.hami.io/gpumem",
    "mock.hami.io/gpumem-percentage",
    "mock.hami.io/gpucores",
    "mock.hami.io/priority",
]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hami.yaml"
    path.write_text(text)
    return path


def test_backends_list_shows_installed_backends_as_a_table() -> None:
    result = CliRunner().invoke(hami, ["backends", "list"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["NAME", "DISTRIBUTION", "VERSION", "CONTRACT", "ENABLED", "RESOURCES"]
    mock = next(row.split() for row in rows if row.startswith("mock "))
    assert mock == ["mock", "hami-backend-mock", "0.1.0", "3.0", "no", ",".join(MOCK_RESOURCES)]


def test_backends_list_json_reports_what_the_config_enables(tmp_path: Path) -> None:
    path = _config(tmp_path, "version: v1\nbackends:\n  mock:\n    enabled: true\n")
    result = CliRunner().invoke(hami, ["backends", "list", "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    mock = next(row for row in json.loads(result.output) if row["name"] == "mock")
    assert mock == {
        "name": "mock",
        "distribution": "hami-backend-mock",
        "version": "0.1.0",
        "entry_point": "hami_backend_mock.plugin",
        "contract_version": "3.0",
        "resource_names": MOCK_RESOURCES,
        "enabled": True,
        "error": "",
    }


def test_backend_option_enables_a_backend_too() -> None:
    result = CliRunner().invoke(hami, ["backends", "list", "--json", "--backend", "mock"])
    assert next(row for row in json.loads(result.output) if row["name"] == "mock")["enabled"] is True


def test_enabling_a_backend_that_is_not_installed_is_one_line_and_a_failure(tmp_path: Path) -> None:
    path = _config(tmp_path, "version: v1\nbackends:\n  nosuchvendor:\n    enabled: true\n")
    result = CliRunner().invoke(hami, ["backends", "list", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        f'Error: backend "nosuchvendor" is enabled in {path} but not installed: '
        "pip install hami-backend-nosuchvendor\n"
    )


def test_an_invalid_config_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = _config(tmp_path, "version: v1\nscheduler:\n  node_lock_timeout: soon\n")
    result = CliRunner().invoke(hami, ["backends", "list", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: config {path}: scheduler.node_lock_timeout: expected a number")
    assert len(result.output.splitlines()) == 1


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(hami, ["backends", "list", "--config", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: config {tmp_path / 'absent.yaml'}: cannot be read")


def test_python_dash_m_runs_the_same_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hami_core", "backends", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "list  List installed backends" in completed.stdout


def _commands(group: click.Group, prefix: str = "hami") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_path_given_on_the_command_line_is_made_absolute() -> None:
    """A relative path must not depend on where a later call runs (a relative --plugin-dir crashed)."""
    relative = [
        f"{name} {param.opts[0]}"
        for name, command in _commands(hami)
        for param in command.params
        if isinstance(param.type, click.Path) and not param.type.resolve_path
    ]
    assert relative == []


def test_a_relative_plugin_dir_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plugins").mkdir()
    command = hami.commands["device-plugin"]
    context = command.make_context(
        "device-plugin", ["--backend", "mock", "--node-name", "n", "--plugin-dir", "plugins"]
    )
    assert context.params["plugin_dir"] == tmp_path / "plugins"


def test_every_command_that_talks_to_the_api_server_takes_the_same_api_timeout() -> None:
    talking = {
        name: {param.name: param for param in command.params}
        for name, command in _commands(hami)
        if any(param.name == "kubeconfig" for param in command.params)
    }
    assert set(talking) >= {"hami certs", "hami device-plugin", "hami scheduler"}
    for name, params in talking.items():
        timeout = params.get("api_timeout")
        assert isinstance(timeout, click.Option), f"{name} has --kubeconfig but no --api-timeout"
        assert (timeout.opts, timeout.default, timeout.help) == (
            ["--api-timeout"],
            10.0,
            "Seconds allowed for each API server request.",
        )
