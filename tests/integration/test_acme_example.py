"""The backend of docs/writing-a-backend.md, installed as a vendor would, works end to end.

``docs/examples/hami-backend-acme`` is pip-installed into a folder of its own (no editable
install, no repository path), then: its own tests (the conformance kit) pass, ``hami backends
list`` finds it through its entry point, and on the local cluster a pod asking its resources goes
through the webhook, the scheduler's extender and the device plugin's ``Allocate``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.stack import HamiStack
from hami_core.sdk import BIND_PHASE
from hami_core.sdk import BIND_PHASE_SUCCESS
from hami_core.testing import make_container
from hami_core.testing import make_pod
from tests.tools import PIP_INSTALL_OFFLINE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "hami-backend-acme"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, built and installed with pip into a folder of its own (hami-core is already here)."""
    target = tmp_path_factory.mktemp("acme-site")
    subprocess.run(
        [sys.executable, "-m", "pip", *PIP_INSTALL_OFFLINE, "--target", str(target), str(EXAMPLE)],
        check=True,
        timeout=300,
    )
    return target


def _with(site: Path) -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(site)}


def test_the_example_passes_its_own_tests(site: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--rootdir",
            str(EXAMPLE),
            str(EXAMPLE / "tests"),
        ],
        capture_output=True,
        text=True,
        env=_with(site),
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout


def test_hami_lists_the_installed_example(site: Path) -> None:
    listed = subprocess.run(
        [str(BIN / "hami"), "backends", "list", "--json"],
        capture_output=True,
        text=True,
        env=_with(site),
        check=True,
    )
    (acme,) = [row for row in json.loads(listed.stdout) if row["name"] == "acme"]
    assert (acme["distribution"], acme["contract_version"]) == ("hami-backend-acme", "3.0")


@pytest.fixture
def stack(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HamiStack]:
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.syspath_prepend(str(site))
    document = {"version": "v1", "backends": {"acme": {"enabled": True, "devices": 1}}}
    with HamiStack(document, Fleet.of_size(1), tmp_path) as running:
        yield running


@pytest.mark.slow
def test_a_pod_asking_acme_devices_runs_through_the_whole_pipeline(stack: HamiStack) -> None:
    limits = {
        "acme.example.com/gpu": "1",
        "acme.example.com/gpumem": "4096",
        "acme.example.com/gpucores": "25",
    }
    stack.kube.create_pod("default", make_pod("p", containers=[make_container("main", limits=limits)]))
    deadline = time.monotonic() + 120
    while (stack.kube.get_pod("default", "p").get("status") or {}).get("phase") != "Running":
        assert time.monotonic() < deadline, f"not Running: {stack.kube.get_pod('default', 'p').get('status')}"
        time.sleep(0.2)
    placed = stack.kube.get_pod("default", "p")
    assert placed["metadata"]["annotations"][BIND_PHASE] == BIND_PHASE_SUCCESS
    envs = json.loads(placed["metadata"]["annotations"][ALLOCATIONS_ANNOTATION])["main"]["envs"]
    node = placed["spec"]["nodeName"]
    assert envs == {
        "ACME_VISIBLE_DEVICES": f"ACME-{node}-0",
        "CUDA_DEVICE_MEMORY_LIMIT_0": "4096m",
        "CUDA_DEVICE_SM_LIMIT": "25",
    }
