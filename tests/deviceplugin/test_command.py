"""``hami device-plugin``: its flags and its one-line errors (the running command is in test_local_cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from hami_core.cli import hami


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_help_lists_the_flags_a_daemonset_sets() -> None:
    result = CliRunner().invoke(hami, ["device-plugin", "--help"])
    assert result.exit_code == 0, result.output
    for flag in ("--backend", "--node-name", "--plugin-dir", "--kubeconfig", "--config", "--api-timeout"):
        assert flag in result.output
    assert "env NODE_NAME" in result.output


def test_the_node_name_is_required() -> None:
    result = CliRunner().invoke(hami, ["device-plugin", "--backend", "mock"], env={"NODE_NAME": None})
    assert result.exit_code == 2
    assert "Missing option '--node-name'" in result.output


def test_a_backend_that_is_not_installed_is_one_line_and_a_failure(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        hami,
        [
            "device-plugin",
            "--backend",
            "nope",
            "--kubeconfig",
            str(_kubeconfig(tmp_path)),
            "--plugin-dir",
            str(tmp_path),
        ],
        env={"NODE_NAME": "node-0"},
    )
    assert result.exit_code == 1
    assert (
        result.output == 'Error: backend "nope" is enabled but not installed: pip install hami-backend-nope\n'
    )


def test_an_unreadable_kubeconfig_is_one_line_and_a_failure(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = CliRunner().invoke(
        hami, ["device-plugin", "--backend", "mock", "--node-name", "n", "--kubeconfig", str(missing)]
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot load Kubernetes credentials from {missing}")
    assert result.output.count("\n") == 1
