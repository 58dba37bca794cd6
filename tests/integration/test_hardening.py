"""The extender as an attacker on the pod network and a dead device plugin see it, on the local cluster.

Three nodes, each with one mock GPU (8000 MiB, 100 cores, split 10) served by a ``hami device-plugin``
process registered with the node's simulated kubelet; ``hami scheduler`` runs as a process and the
kube-scheduler (the stand-in, or the real one) filters and binds ``hami-scheduler`` pods through it. The attacker posts
``/filter`` and ``/bind`` bodies of its own; its pods name a scheduler nobody runs, so only its own
calls could place them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.kube.objects import Pod
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.stack import free_port
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.deviceplugin.fleet import PluginFleet
from tests.integration.load import SCHEDULER
from tests.integration.load import SchedulerProcess
from tests.integration.load import stand_in_configuration

pytestmark = pytest.mark.slow

MOCK = MockBackend()
NAMES = MOCK.resource_names
KEYS = MOCK.keys
NODES = ["node-0", "node-1", "node-2"]
#: Generous for a loaded 2-core machine: process starts, watches and stand-in backoffs.
WAIT = 90.0


class Setup:
    """The running pieces: cluster, plugins, scheduler, and the extender's URL."""

    def __init__(self, cluster: LocalCluster, plugins: PluginFleet, config: Path, port: int) -> None:
        self.cluster = cluster
        self.plugins = plugins
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.kube = cluster.kube

    def start_plugin(self, node: str) -> None:
        self.plugins.start_process(node, kubeconfig=self.cluster.kubeconfig, config=self.config)

    def post(self, verb: str, body: object) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/{verb}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]

    def metric(self, name: str, labels: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as reply:
            text = reply.read().decode()
        for line in text.splitlines():
            if line.startswith(f"{name}{{{labels}}} "):
                return float(line.split()[-1])
        return 0.0

    def pod(self, name: str) -> Pod:
        return self.kube.get_pod("default", name)

    def allocatable(self, node: str) -> str | None:
        status = self.kube.get_node(node).get("status") or {}
        return (status.get("allocatable") or {}).get(NAMES.count)


def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def gpu_pod(name: str, memory: int, *, scheduler: str = SCHEDULER, **annotations: str) -> Pod:
    limits: dict[str, str | int] = {NAMES.count: 1, NAMES.memory: memory}
    return make_pod(
        name,
        containers=[make_container(limits=limits)],
        scheduler_name=scheduler,
        annotations=annotations or None,
    )


@pytest.fixture
def setup(control_plane: ControlPlaneKind) -> Iterator[Setup]:
    workdir = Path(tempfile.mkdtemp(prefix="h"))  # unix socket paths must stay short
    config = workdir / "mock.yaml"
    group = {"count": 1, "memory_mib": 8000, "cores": 100, "split": 10}
    config.write_text(
        yaml.safe_dump({"version": "v1", "backends": {"mock": {"enabled": True, "devices": [group]}}})
    )
    port = free_port()
    scheduler = SchedulerProcess(workdir, workdir / "c" / "kubeconfig", port)
    try:
        with LocalCluster(
            len(NODES),
            workdir / "c",
            scheduler_config=stand_in_configuration(port),
            control_plane=control_plane,
        ) as cluster:
            plugins = PluginFleet.on_cluster(cluster)
            made = Setup(cluster, plugins, config, port)
            try:
                for node in NODES:
                    made.start_plugin(node)
                scheduler.start()
                for node in NODES:
                    eventually(
                        lambda node=node: made.allocatable(node) == "10", f"{node}'s plugin registered"
                    )  # type: ignore[misc]
                eventually(lambda: _ready(made.url), "the scheduler ready")
                yield made
            finally:
                scheduler.stop()
                plugins.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_forged_binds_are_refused_and_bind_nothing(setup: Setup) -> None:
    # The owner is placed the ordinary way and holds node-0's GPU fully.
    setup.kube.create_pod("default", gpu_pod("owner", 8000))
    eventually(lambda: setup.pod("owner")["status"].get("phase") == "Running", "the owner Running")
    owner = setup.pod("owner")
    node = owner["spec"]["nodeName"]
    held = owner["metadata"]["annotations"][KEYS.allocated]
    # A pod carrying the owner's allocation as its own, bound by the attacker.
    stamp = str(int(time.time()))
    forged = {codec.VGPU_NODE: node, codec.VGPU_TIME: stamp, KEYS.to_allocate: held, KEYS.allocated: held}
    thief = setup.kube.create_pod("default", gpu_pod("thief", 8000, scheduler="nobody", **forged))
    never = setup.kube.create_pod("default", gpu_pod("never-filtered", 100, scheduler="nobody"))

    def bind(pod: Pod, node: str, uid: str | None = None) -> str:
        meta = pod["metadata"]
        body = {
            "PodName": meta["name"],
            "PodNamespace": "default",
            "PodUID": uid or meta["uid"],
            "Node": node,
        }
        return str(setup.post("bind", body)["Error"])

    assert "does not fit" in bind(thief, node)
    assert "never filtered" in bind(never, node)
    assert "does not exist" in bind(never, "no-such-node")
    assert "has uid" in bind(never, node, uid=str(uuid.uuid4()))
    for name in ("thief", "never-filtered"):
        assert not setup.pod(name)["spec"].get("nodeName")
    assert setup.metric("hami_scheduler_bind_refused_total", 'reason="overcommit"') == 1
    assert setup.metric("hami_scheduler_bind_refused_total", 'reason="not-filtered"') == 1
    events = setup.kube.list_events("default")["items"]
    refused = {event["involvedObject"]["name"] for event in events if event["reason"] == "BindingRefused"}
    assert {"thief", "never-filtered"} <= refused
    assert codec.NODE_LOCK not in (setup.kube.get_node(node)["metadata"].get("annotations") or {})


def test_filters_with_made_up_uids_reserve_nothing(setup: Setup) -> None:
    # Each node has one GPU of 8000 MiB; the victim asks for all of one.
    victim = setup.kube.create_pod("default", gpu_pod("victim", 8000, scheduler="nobody"))
    for _ in range(len(NODES)):
        body = {**victim, "metadata": {**victim["metadata"], "uid": str(uuid.uuid4())}}
        reply = setup.post("filter", {"Pod": body, "NodeNames": NODES})
        assert "has uid" in reply["Error"]
        assert not reply["NodeNames"]
    assert KEYS.allocated not in (setup.pod("victim")["metadata"].get("annotations") or {})
    # The real pod still finds a whole GPU, on whichever node.
    reply = setup.post("filter", {"Pod": setup.pod("victim"), "NodeNames": NODES})
    assert reply["Error"] == ""
    assert len(reply["NodeNames"]) == 1


def test_pods_avoid_a_node_whose_plugin_was_killed_and_use_it_again_once_it_is_back(setup: Setup) -> None:
    setup.plugins.kill_process("node-0")
    eventually(lambda: setup.allocatable("node-0") == "0", "node-0's allocatable at 0")
    # 20 slots are left on node-1 and node-2; 1000 MiB each fits 8 per GPU.
    for index in range(12):
        setup.kube.create_pod("default", gpu_pod(f"while-dead-{index}", 1000))

    def settled() -> bool:
        phases = [setup.pod(f"while-dead-{i}")["status"].get("phase") for i in range(12)]
        return all(phase in ("Running", "Failed") for phase in phases)

    eventually(settled, "12 pods Running or Failed")
    pods = [setup.pod(f"while-dead-{i}") for i in range(12)]
    assert [pod["status"].get("reason") for pod in pods if pod["status"].get("phase") == "Failed"] == []
    assert {pod["spec"]["nodeName"] for pod in pods} <= {"node-1", "node-2"}
    setup.start_plugin("node-0")
    eventually(lambda: setup.allocatable("node-0") == "10", "node-0's plugin back")
    # Only node-0's GPU has 8000 MiB free now.
    setup.kube.create_pod("default", gpu_pod("after", 8000))
    eventually(lambda: setup.pod("after")["status"].get("phase") == "Running", "the pod Running on node-0")
    assert setup.pod("after")["spec"]["nodeName"] == "node-0"
