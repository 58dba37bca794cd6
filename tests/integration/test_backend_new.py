"""Acceptance of ``hami backend new``: a scaffolded backend installs, passes its tests, lists and schedules.

The backend goes into a fresh venv "next to hami-core": the venv has no packages of its own but
a ``.pth`` file that adds this environment's site-packages (hami-core, its dependencies, pytest
and the build backend), so nothing is downloaded. The scaffolded project is then built and
installed the ordinary way (``pip install --no-build-isolation --no-deps``: a wheel with its
entry point), its own test suite runs there, ``hami backends list`` shows it, and hami deployed as
processes (scheduler and device plugin, each loading the backend through the entry point) runs a
pod on it.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from hami_core.cli import hami
from tests.tools import PIP_INSTALL_OFFLINE

pytestmark = pytest.mark.slow

NAME = "acme"
DOMAIN = "acme.example.com"


def _fresh_venv(folder: Path) -> Path:
    """A venv without packages that sees this environment's site-packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    purelib = Path(
        sysconfig.get_path("purelib", scheme="venv", vars={"base": str(folder), "platbase": str(folder)})
    )
    # "import" lines of a .pth run at start-up: addsitedir also processes the editable installs' .pth files.
    lines = [f"import site; site.addsitedir({path!r})" for path in site.getsitepackages()]
    (purelib / "_hami_core_env.pth").write_text("\n".join(lines) + "\n")
    return folder / "bin" / "python"


def _run(python: Path, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env={**env, "PYTHONNOUSERSITE": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_scaffolded_backend_installs_passes_its_tests_lists_and_schedules(tmp_path: Path) -> None:
    created = CliRunner().invoke(hami, ["backend", "new", NAME, "-C", str(tmp_path)])
    assert created.exit_code == 0, created.output
    project = tmp_path / f"hami-backend-{NAME}"
    python = _fresh_venv(tmp_path / "venv")

    installed = _run(python, "-m", "pip", *PIP_INSTALL_OFFLINE, str(project), cwd=tmp_path, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    tested = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project, timeout=300)
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout, tested.stdout[-2000:]
    assert "skipped" not in tested.stdout, tested.stdout[-2000:]

    listed = _run(python, "-m", "hami_core", "backends", "list", "--json", cwd=tmp_path, timeout=60)
    assert listed.returncode == 0, listed.stderr
    (row,) = [row for row in json.loads(listed.stdout) if row["name"] == NAME]
    assert row["distribution"] == f"hami-backend-{NAME}"
    assert row["error"] in (None, ""), row
    assert f"{DOMAIN}/device" in row["resource_names"]

    script = Path(__file__).with_name("deployed_pod.py")
    deployed = _run(python, str(script), NAME, DOMAIN, cwd=tmp_path, timeout=180)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-4000:]
    result = json.loads(deployed.stdout.strip().splitlines()[-1])
    assert result["node"] == "node-0"
    assert result["env"][f"{NAME.upper()}_VISIBLE_DEVICES"].startswith(f"{NAME.upper()}-")
    assert result["env"]["CUDA_DEVICE_MEMORY_LIMIT_0"] == "2048m"
    assert result["env"]["CUDA_DEVICE_SM_LIMIT"] == "25"
