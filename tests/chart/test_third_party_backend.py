"""A third-party backend in the chart, with the values and Dockerfile docs/writing-a-backend.md shows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from hami_core.sdk import parse_config
from tests.chart.chart import ROOT
from tests.chart.chart import by_kind
from tests.chart.chart import containers
from tests.chart.chart import managed_resources
from tests.chart.chart import one
from tests.chart.chart import render
from tests.chart.test_images import HADOLINT

EXAMPLE = ROOT / "docs" / "examples" / "hami-backend-acme"
VALUES = yaml.safe_load((EXAMPLE / "values.yaml").read_text())
IMAGE = f"{VALUES['image']['repository']}:{VALUES['image']['tag']}"


def test_the_example_values_deploy_the_backend_from_its_image(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUES)
    (daemonset,) = by_kind(docs, "DaemonSet")
    assert daemonset["metadata"]["name"] == "hami-device-plugin-acme"
    assert daemonset["spec"]["template"]["spec"]["nodeSelector"] == {"acme": "on"}
    # The scheduler imports the backend as well, so every hami container runs the backend's image.
    hami_images = {
        container["image"] for _, container in containers(docs) if "kube-scheduler" not in container["image"]
    }
    assert hami_images == {IMAGE}
    assert managed_resources(docs) == VALUES["backends"]["acme"]["resourceNames"]
    config = parse_config(yaml.safe_load(one(docs, "ConfigMap", "hami-config")["data"]["hami.yaml"]))
    assert config.enabled_backends == ("acme",)
    assert dict(config.backend("acme")) == {"enabled": True, "devices": 4, "memory_mib": 24576}


def test_the_example_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run([str(HADOLINT), str(EXAMPLE / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
