"""The whole local cluster end to end: API server emulator, scheduler stand-ins and kubelets together."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hami_core.kube import objects
from hami_core.kube.client import RealKubeClient
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.fleet import NodeSpec
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.localcluster.fake_extender import FakeExtender
from tests.localcluster.fake_extender import Reply
from tests.localcluster.fake_extender import keep_every_node
from tests.localcluster.fake_plugin import FakePlugin
from tests.localcluster.polling import eventually

GPU = "example.com/gpu"


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="h"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def phase(kube: RealKubeClient, name: str) -> str:
    return kube.get_pod("default", name).get("status", {}).get("phase", "")


def test_a_plain_pod_is_scheduled_and_runs(workdir: Path) -> None:
    with LocalCluster(2, workdir) as cluster:
        kube = cluster.kube
        assert [n["metadata"]["name"] for n in kube.list_nodes()["items"]] == ["node-0", "node-1"]
        kube.create_pod("default", make_pod("web", containers=[make_container(requests={"cpu": "1"})]))
        eventually(lambda: phase(kube, "web") == "Running", what="web Running")
        assert kube.get_pod("default", "web")["spec"]["nodeName"] in cluster.node_names
        reasons = [e.get("reason") for e in kube.list_events("default")["items"]]
        assert "Scheduled" in reasons


def test_the_kubeconfig_reaches_the_cluster(workdir: Path) -> None:
    with LocalCluster(1, workdir) as cluster, RealKubeClient(kubeconfig=cluster.kubeconfig) as kube:
        assert kube.get_node("node-0")["status"]["allocatable"]["pods"] == "110"


def test_a_fleet_node_advertises_its_static_resources(workdir: Path) -> None:
    fleet = Fleet((NodeSpec("gpu-a", cpu="32", labels={"gpu": "on"}, resources={GPU: "8"}),))
    with LocalCluster(fleet, workdir) as cluster:
        node = cluster.kube.get_node("gpu-a")
        assert node["status"]["allocatable"][GPU] == "8"
        assert node["metadata"]["labels"]["gpu"] == "on"


def test_a_device_pod_goes_through_extender_bind_and_kubelet_allocate(workdir: Path) -> None:
    """One pod's path: extender filter -> extender bind -> kubelet Allocate over gRPC -> Running."""
    clusters: list[LocalCluster] = []

    def extender(verb: str, body: Any) -> Reply:
        if verb == "filter":
            wanted = [name for name in body["NodeNames"] if name == "node-1"]
            failed = {name: "no example GPU" for name in body["NodeNames"] if name != "node-1"}
            return 200, {"NodeNames": wanted, "FailedNodes": failed, "Error": ""}
        if verb == "bind":
            clusters[0].kube.bind_pod(body["PodNamespace"], body["PodName"], body["Node"], uid=body["PodUID"])
        return keep_every_node(verb, body)

    with FakeExtender(extender) as server:
        config = {
            "profiles": [{"schedulerName": "hami-scheduler"}],
            "extenders": [
                {
                    "urlPrefix": server.url,
                    "filterVerb": "filter",
                    "bindVerb": "bind",
                    "nodeCacheCapable": True,
                    "managedResources": [{"name": GPU, "ignoredByScheduler": True}],
                }
            ],
        }
        with LocalCluster(2, workdir, scheduler_config=config) as cluster:
            clusters.append(cluster)
            plugin = FakePlugin(cluster.plugin_dir("node-1"), GPU, {"gpu-0": True, "gpu-1": True})
            plugin.serve()
            try:
                plugin.register()
                kube = cluster.kube
                eventually(lambda: kube.get_node("node-1")["status"]["allocatable"].get(GPU) == "2")
                pod = make_pod(
                    "trainer", containers=[make_container(limits={GPU: 1})], scheduler_name="hami-scheduler"
                )
                kube.create_pod("default", pod)
                eventually(lambda: phase(kube, "trainer") == "Running", what="trainer Running")
                placed = kube.get_pod("default", "trainer")
            finally:
                plugin.stop()
    assert server.verbs() == ["filter", "bind"]
    assert placed["spec"]["nodeName"] == "node-1"
    records = json.loads(placed["metadata"]["annotations"][ALLOCATIONS_ANNOTATION])
    assert records["main"]["deviceIDs"] == {GPU: ["gpu-0"]}
    assert records["main"]["envs"] == {"FAKE_DEVICES": "gpu-0"}
    assert plugin.allocate_calls == [["gpu-0"]]


def test_an_unschedulable_device_pod_gets_the_extenders_reason(workdir: Path) -> None:
    def extender(verb: str, body: Any) -> Reply:
        return 200, {"NodeNames": [], "FailedNodes": dict.fromkeys(body["NodeNames"], "no example GPU")}

    with FakeExtender(extender) as server:
        config = {
            "profiles": [{"schedulerName": "hami-scheduler"}],
            "extenders": [{"urlPrefix": server.url, "filterVerb": "filter", "nodeCacheCapable": True}],
        }
        with LocalCluster(2, workdir, scheduler_config=config) as cluster:
            kube = cluster.kube
            kube.create_pod("default", make_pod("trainer", scheduler_name="hami-scheduler"))

            def failed() -> list[str]:
                return [
                    e.get("message", "")
                    for e in kube.list_events("default")["items"]
                    if e.get("reason") == "FailedScheduling"
                ]

            assert eventually(failed) == ["0/2 nodes are available: 2 no example GPU."]


def test_objects_survive_a_restart_with_a_state_file(workdir: Path) -> None:
    state = workdir / "state.json"
    pod: objects.Pod = make_pod("web")
    with LocalCluster(1, workdir, state_file=state) as cluster:
        cluster.kube.create_pod("default", pod)
        eventually(lambda: phase(cluster.kube, "web") == "Running")
    with LocalCluster(1, workdir, state_file=state) as cluster:
        assert phase(cluster.kube, "web") == "Running"
        assert cluster.kube.get_node("node-0")["status"]["allocatable"]["cpu"] == "16"
