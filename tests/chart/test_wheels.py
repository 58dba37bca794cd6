"""``python -m build`` for every distribution; the wheels, installed non-editable, run hami.

The fresh venv gets the built wheels only (``--no-deps``); third-party dependencies come from this
venv's site-packages through a path entry, so the test needs no network and stays fast, while
hami's own modules and entry points can only come from the wheels (checked).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.chart.chart import ROOT
from tests.tools import PIP_INSTALL_OFFLINE

DISTS = [
    ROOT,
    *sorted(
        p.parent for p in ROOT.glob("*/*/pyproject.toml") if p.parent.parent.name in ("backends", "plugins")
    ),
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    for dist in DISTS:
        subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(dist)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return out


def test_each_distribution_has_a_wheel_and_sdist_with_metadata(built: Path) -> None:
    wheels = sorted(built.glob("*.whl"))
    assert len(wheels) == len(DISTS)
    assert len(list(built.glob("*.tar.gz"))) == len(DISTS)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
            metadata = Parser().parsestr(
                archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
            )
            entry_points = archive.read(
                next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
            ).decode()
        assert metadata["Requires-Python"] == ">=3.11"
        if metadata["Name"] == "hami-core":
            assert "hami = hami_core.cli:main" in entry_points
            assert "hami_core/deviceplugin/proto/deviceplugin_pb2.py" in names
            assert "hami_core/deviceplugin/proto/deviceplugin_pb2_grpc.py" in names
            assert any(r.startswith("kubernetes") for r in metadata.get_all("Requires-Dist"))
        else:
            assert "[hami.backends]" in entry_points
            assert any(r.startswith("hami-core") for r in metadata.get_all("Requires-Dist"))


def test_installed_wheels_list_backends_and_run_the_mock_pipeline(built: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            *PIP_INSTALL_OFFLINE,
            "--target",
            str(site),
            *map(str, built.glob("*.whl")),
        ],
        check=True,
        timeout=300,
    )
    # Dependencies only: this venv's site-packages after the fresh one (its hami editables are .pth
    # files there, which a plain path entry does not run).
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import hami_core, hami_backend_mock; print(hami_core.__file__); print(hami_backend_mock.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert all(line.startswith(str(site)) for line in probe.stdout.split())
    hami = [str(python), "-m", "hami_core"]
    listed = json.loads(
        subprocess.run(
            [*hami, "backends", "list", "--json", "--backend", "mock"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    mock = next(row for row in listed if row["name"] == "mock")
    assert mock["enabled"] is True
    assert mock["distribution"] == "hami-backend-mock"
    assert "mock.hami.io/gpu" in mock["resource_names"]
    # The mock pipeline: the demo on the local cluster (webhook, extender, device plugins). The
    # wheel does not carry examples/, so the demo is given the repository's.
    demo = subprocess.run(
        [*hami, "demo", "--json", "--examples", str(ROOT / "examples")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    result = json.loads(demo.stdout)
    assert result
