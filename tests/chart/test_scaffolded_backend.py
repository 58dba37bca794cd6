"""The chart deploys a backend scaffolded by ``hami backend new`` with the values its README shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from hami_core import scaffold
from tests.chart.chart import by_kind
from tests.chart.chart import containers
from tests.chart.chart import managed_resources
from tests.chart.chart import render
from tests.chart.test_images import HADOLINT

SPEC = scaffold.BackendSpec(name="acme", domain="acme.example.com", core_version="0.1.0")
FILES = scaffold.render(SPEC, scaffold.load_templates())
REGISTRY = "registry.example.com"


def _readme_values() -> dict[str, object]:
    """The last YAML block of the README (the chart values), with its registry placeholder filled."""
    blocks = re.findall(r"```yaml\n(.*?)```", FILES["README.md"], flags=re.DOTALL)
    values: dict[str, object] = yaml.safe_load(blocks[-1].replace("<registry>", REGISTRY))
    return values


def test_the_readme_values_deploy_the_backend_from_its_image(tmp_path: Path) -> None:
    docs = render(tmp_path, _readme_values())
    names = {daemonset["metadata"]["name"]: daemonset for daemonset in by_kind(docs, "DaemonSet")}
    daemonset = names["hami-device-plugin-acme"]
    assert daemonset["spec"]["template"]["spec"]["nodeSelector"] == {"acme": "on"}
    hami_images = {
        container["image"] for _, container in containers(docs) if "kube-scheduler" not in container["image"]
    }
    assert hami_images == {f"{REGISTRY}/hami-acme:0.1.0"}
    assert {"acme.example.com/device", "acme.example.com/device-cores"} <= set(managed_resources(docs))


def test_the_dockerfile_stub_is_hadolint_clean(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(FILES["Dockerfile"])
    result = subprocess.run([str(HADOLINT), str(tmp_path / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
