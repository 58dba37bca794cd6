"""``hami top --once`` / ``--json`` as a user runs them, against the local cluster loaded with the
recorded nodes and pods, and one monitor's recorded metrics (read through a file URL)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hami_core.cli import hami
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.fleet import NodeSpec

pytestmark = pytest.mark.slow
DATA = Path(__file__).with_name("data")


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    recorded = json.loads((DATA / "cluster.json").read_text())
    fleet = Fleet(
        tuple(
            NodeSpec(node["metadata"]["name"], annotations=node["metadata"]["annotations"])
            for node in recorded["nodes"]
        )
    )
    with tempfile.TemporaryDirectory(prefix="ht-") as workdir, LocalCluster(fleet, Path(workdir)) as local:
        for namespace in ("ml", "web"):
            local.kube.create_namespace({"metadata": {"name": namespace}})
        for pod in recorded["pods"]:
            if pod["metadata"]["name"] != "done":
                body: dict[str, Any] = {k: v for k, v in pod.items() if k != "status"}
                body["metadata"] = {k: v for k, v in pod["metadata"].items() if k != "uid"}
                local.kube.create_pod(pod["metadata"]["namespace"], body)  # type: ignore[arg-type]
        yield local


def test_once_and_json(cluster: LocalCluster) -> None:
    monitor = (DATA / "monitor-n1.prom").as_uri()
    base = ["top", "--kubeconfig", str(cluster.kubeconfig), "--backend", "mock", "--monitor", monitor]
    runner = CliRunner()
    once = runner.invoke(hami, [*base, "--once"])
    assert once.exit_code == 0, once.output
    rows = [line.split() for line in once.output.splitlines()]
    assert ["n1", "MOCK-n1-0", "MOCK-GPU", "13312/16384", "10500", "90/100", "70", "3/4"] in rows
    assert ["ml/trainer", "10240", "7000", "60", "45"] in rows
    as_json = runner.invoke(hami, [*base, "--json", "-n", "web", "--sort", "memory"])
    assert as_json.exit_code == 0, as_json.output
    devices = json.loads(as_json.output)["devices"]
    assert [(d["uuid"], [p["pod"] for p in d["pods"]]) for d in devices] == [
        ("MOCK-n1-0", ["web/infer"]),
        ("MOCK-n2-0", ["web/batch"]),
    ]
