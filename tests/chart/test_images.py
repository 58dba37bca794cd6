"""The Dockerfile: hadolint-clean, every path it copies exists, and the chart points at its image."""

from __future__ import annotations

import fnmatch
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tests.chart.chart import CHART
from tests.chart.chart import ROOT
from tests.chart.chart import render

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions() -> list[list[str]]:
    """The Dockerfile's instructions, continuation lines joined, as words."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        shlex.split(line, comments=False)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_hadolint_is_clean() -> None:
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copied_path_exists() -> None:
    copies = [words[1:] for words in instructions() if words[0].upper() in ("COPY", "ADD")]
    assert copies
    for words in copies:
        if any(word.startswith("--from=") for word in words):
            continue
        for source in [word for word in words[:-1] if not word.startswith("--")]:
            assert (ROOT / source).exists(), f"COPY source {source} does not exist"


def test_build_context_keeps_every_distribution() -> None:
    """.dockerignore must not drop a distribution the wheel stage builds."""
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "README.md", "hami_core/cli.py"] + [
        str(path.relative_to(ROOT))
        for path in ROOT.glob("*/*/pyproject.toml")
        if path.parent.parent.name in ("backends", "plugins")
    ]
    assert any("backends/" in path for path in needed)
    for path in needed:
        parts = Path(path).parts
        for pattern in ignored:
            assert not any(
                fnmatch.fnmatch("/".join(parts[: i + 1]), pattern.lstrip("/")) for i in range(len(parts))
            ), f"{path} is excluded by .dockerignore pattern {pattern}"


def test_chart_image_is_the_dockerfile_image() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    reference = f"{values['image']['repository']}:{chart['appVersion']}"
    assert f"docker build -t {reference} ." in DOCKERFILE.read_text()


def test_the_shim_stage_builds_what_the_runtime_copies_and_the_chart_installs(tmp_path: Path) -> None:
    words = instructions()
    (make,) = [w for w in words if w[0] == "RUN" and "make" in w and "native" in w]
    target = make[make.index("native") + 1]
    # The native Makefile knows the target (dry run: nothing is built).
    dry = subprocess.run(["make", "-n", "-C", str(ROOT / "native"), target], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    (copy,) = [w for w in words if w[0] == "COPY" and "--from=shim" in w]
    assert copy[-2] == f"/src/native/{target}"
    # The default chart's NVIDIA DaemonSet installs exactly that file onto the host.
    (daemonset,) = [d for d in render(tmp_path) if d["kind"] == "DaemonSet"]
    (installer,) = daemonset["spec"]["template"]["spec"]["initContainers"]
    assert f"cp {copy[-1]} " in installer["args"][-1]
