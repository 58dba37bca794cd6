"""hami's device plugin on the local cluster: 20 mock nodes, real kubelet gRPC, the real API server emulator.

Most tests play the scheduler extender's part by the protocol (``tests.deviceplugin.binding``):
annotations, node lock, ``bind-phase=allocating``, ``pods/binding``; the ``scheduler_extender`` tests
use hami's own extender (``hami_core.scheduler``) instead, calling its filter and bind verbs as
kube-scheduler would. The plugins run as threads in this process, except in
``test_separate_plugin_processes_...`` (20 real ``hami device-plugin`` processes) and the kill test
(one process, SIGKILLed mid-allocation).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.config import load_config
from hami_core.kube.client import RealKubeClient
from hami_core.kube.objects import Pod
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.pods import PodView
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from tests.deviceplugin.binding import ProtocolScheduler
from tests.deviceplugin.fleet import PluginFleet
from tests.localcluster.polling import eventually

GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory
PCT = resources.RESOURCE_NAMES.memory_percentage
CORES = resources.RESOURCE_NAMES.cores
PRIORITY = resources.RESOURCE_NAMES.priority
NODES = 20
#: Pods nobody but the test schedules (the cluster's stand-in serves default-scheduler pods only).
SCHEDULER = "hami-scheduler"
MOCK_CONFIG = "version: v1\nbackends:\n  mock:\n    enabled: true\n"

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="h"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cluster(workdir: Path) -> Iterator[LocalCluster]:
    with LocalCluster(NODES, workdir) as running:
        yield running


@pytest.fixture
def plugins(cluster: LocalCluster) -> Iterator[PluginFleet]:
    fleet = PluginFleet.on_cluster(cluster)
    yield fleet
    fleet.close()


@pytest.fixture
def backend(workdir: Path) -> MockBackend:
    path = workdir / "mock.yaml"
    path.write_text(MOCK_CONFIG)
    return MockBackend.from_config(load_config(path))


def registered(kube: RealKubeClient, node: str) -> bool:
    meta = kube.get_node(node)
    ready = meta["status"]["allocatable"].get(GPU) == "20"  # 2 devices x split 10
    return ready and resources.KEYS.register in meta["metadata"].get("annotations", {})


def workload() -> list[Pod]:
    """Pods of every shape: memory, cores, percentage, counts, several containers, init containers."""
    pods: list[Pod] = []
    for i in range(NODES):
        pods.append(
            make_pod(
                f"mem-{i}",
                scheduler_name=SCHEDULER,
                containers=[make_container(limits={GPU: 1, MEM: 3000, CORES: 30})],
            )
        )
        pods.append(
            make_pod(
                f"multi-{i}",
                scheduler_name=SCHEDULER,
                containers=[
                    make_container("a", limits={GPU: 2, MEM: 1024, PRIORITY: 0}),
                    make_container("sidecar"),
                    make_container("b", limits={GPU: 1, PCT: 25, CORES: 10, PRIORITY: 1}),
                ],
            )
        )
        pods.append(
            make_pod(
                f"init-{i}",
                scheduler_name=SCHEDULER,
                init_containers=[make_container("setup", limits={GPU: 1, MEM: 2048})],
                containers=[make_container("main", limits={GPU: 1, MEM: 4096, CORES: 50})],
            )
        )
    return pods


def expected_envs(backend: MockBackend, pod: Pod) -> dict[str, dict[str, str]]:
    """Per container with devices, the env the backend gives for what the scheduler assigned."""
    assigned = codec.decode_pod_devices(pod["metadata"]["annotations"][backend.keys.allocated])
    view = PodView.from_object(pod)
    return {
        container.name: dict(backend.allocate(tuple(entry), container, view).envs)
        for container, entry in zip(view.containers, assigned, strict=False)
        if entry
    }


def assert_allocated(kube: RealKubeClient, backend: MockBackend, name: str) -> None:
    pod = kube.get_pod("default", name)
    annotations = pod["metadata"]["annotations"]
    assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS, name
    records = json.loads(annotations[ALLOCATIONS_ANNOTATION])
    assert {container: record["envs"] for container, record in records.items()} == expected_envs(
        backend, pod
    ), name


def phase(kube: RealKubeClient, name: str) -> str:
    return str(kube.get_pod("default", name)["status"].get("phase", ""))


def wait_running(kube: RealKubeClient, names: list[str]) -> None:
    for name in names:
        eventually(lambda name=name: phase(kube, name) == "Running", timeout=30, what=f"{name} Running")  # type: ignore[misc]


def no_lock_left(kube: RealKubeClient) -> bool:
    return not any(
        codec.NODE_LOCK in (n["metadata"].get("annotations") or {}) for n in kube.list_nodes()["items"]
    )


def run_workload(kube: RealKubeClient, backend: MockBackend, nodes: list[str]) -> list[str]:
    scheduler = ProtocolScheduler(kube, backend)
    names = []
    for index, pod in enumerate(workload()):
        created = kube.create_pod("default", pod)
        assert (
            scheduler.schedule(created, nodes[index % len(nodes) :] + nodes[: index % len(nodes)]) is not None
        )
        names.append(pod["metadata"]["name"])
    return names


def test_twenty_plugin_threads_allocate_every_kind_of_pod(
    cluster: LocalCluster, plugins: PluginFleet, backend: MockBackend
) -> None:
    for node in cluster.node_names:
        plugins.start_plugin(node, backend)
    kube = cluster.kube
    eventually(
        lambda: all(registered(kube, n) for n in cluster.node_names), timeout=30, what="20 nodes registered"
    )
    names = run_workload(kube, backend, cluster.node_names)
    wait_running(kube, names)
    for name in names:
        assert_allocated(kube, backend, name)
    assert no_lock_left(kube)


# Multi-process deadlines a loaded 2-core machine can miss: one rerun, never more.
@pytest.mark.flaky(reruns=1)
def test_separate_plugin_processes_register_allocate_and_stop_cleanly(
    cluster: LocalCluster, plugins: PluginFleet, backend: MockBackend, workdir: Path
) -> None:
    config = workdir / "hami.yaml"
    config.write_text(MOCK_CONFIG)
    started = time.monotonic()
    for node in cluster.node_names:
        plugins.start_process(node, kubeconfig=cluster.kubeconfig, config=config)
    kube = cluster.kube
    eventually(
        lambda: all(registered(kube, n) for n in cluster.node_names),
        timeout=60,
        what="20 processes registered",
    )
    print(f"20 plugin processes registered in {time.monotonic() - started:.1f}s")
    names = run_workload(kube, backend, cluster.node_names)
    wait_running(kube, names)
    for name in names:
        assert_allocated(kube, backend, name)
    assert no_lock_left(kube)
    print(f"{len(names)} pods allocated by processes after {time.monotonic() - started:.1f}s")
    node = cluster.node_names[0]
    assert plugins.stop_process(node) == 0
    assert not (cluster.plugin_dir(node) / "mock-gpu.sock").exists()


def test_a_plugin_killed_mid_allocation_leaves_the_pod_failed_and_the_lock_released_once_back(
    workdir: Path, backend: MockBackend
) -> None:
    with LocalCluster(1, workdir) as cluster:
        plugins = PluginFleet.on_cluster(cluster)
        try:
            slow = workdir / "slow.yaml"
            slow.write_text(MOCK_CONFIG + "    allocate_delay: 60\n")
            plugins.start_process("node-0", kubeconfig=cluster.kubeconfig, config=slow)
            kube = cluster.kube
            eventually(lambda: registered(kube, "node-0"), timeout=30, what="node-0 registered")
            pod = kube.create_pod(
                "default",
                make_pod("victim", scheduler_name=SCHEDULER, containers=[make_container(limits={GPU: 1})]),
            )
            assert ProtocolScheduler(kube, backend).schedule(pod, ["node-0"]) == "node-0"
            eventually(
                lambda: "allocating" in plugins.log("node-0") and "default/victim" in plugins.log("node-0"),
                timeout=30,
                what="Allocate in flight",
            )
            plugins.kill_process("node-0")
            eventually(
                lambda: kube.get_pod("default", "victim")["status"].get("phase") == "Failed",
                timeout=30,
                what="kubelet fails the pod",
            )
            assert not no_lock_left(kube)  # nobody released it: the plugin died holding the allocation
            assert (
                kube.get_pod("default", "victim")["metadata"]["annotations"][codec.BIND_PHASE] == "allocating"
            )

            plugins.start_process("node-0", kubeconfig=cluster.kubeconfig, config=slow)
            eventually(lambda: no_lock_left(kube), timeout=30, what="the restarted plugin clears the lock")
            assert kube.get_pod("default", "victim")["metadata"]["annotations"][codec.BIND_PHASE] == "failed"
        finally:
            plugins.close()


def test_the_scheduler_extender_places_every_kind_of_pod_on_plugin_threads(
    cluster: LocalCluster, plugins: PluginFleet, backend: MockBackend, workdir: Path
) -> None:
    """The same workload with hami's own extender choosing nodes and devices (its verbs called directly,
    as kube-scheduler would over HTTP), when the scheduler package is there."""
    app_module = pytest.importorskip("hami_core.scheduler.app")
    for node in cluster.node_names:
        plugins.start_plugin(node, backend)
    kube = cluster.kube
    eventually(
        lambda: all(registered(kube, n) for n in cluster.node_names), timeout=30, what="20 nodes registered"
    )
    config_path = workdir / "scheduler.yaml"
    config_path.write_text(MOCK_CONFIG)
    with cluster.client() as scheduler_kube:
        app = app_module.build_scheduler(
            load_config(config_path), scheduler_kube, serve=False, metrics_bind="", leader_election=False
        ).start(sync_timeout=30)
        try:
            names = []
            for pod in workload():
                created = kube.create_pod("default", pod)
                meta = created["metadata"]
                reply = app.extender.filter(PodView.from_object(created), cluster.node_names, None)
                assert reply.get("Error", "") == "", reply
                assert reply["NodeNames"], reply
                bound = app.extender.bind(meta["namespace"], meta["name"], meta["uid"], reply["NodeNames"][0])
                assert bound == {"Error": ""}, bound
                names.append(meta["name"])
            wait_running(kube, names)
            for name in names:
                assert_allocated(kube, backend, name)
            assert no_lock_left(kube)
        finally:
            app.stop()


def test_the_scheduler_extender_stops_placing_on_a_device_the_plugin_reports_unhealthy(
    workdir: Path, backend: MockBackend
) -> None:
    app_module = pytest.importorskip("hami_core.scheduler.app")
    with LocalCluster(1, workdir) as cluster, cluster.client() as scheduler_kube:
        plugins = PluginFleet.on_cluster(cluster)
        plugin = plugins.start_plugin("node-0", backend)
        kube = cluster.kube
        eventually(lambda: registered(kube, "node-0"), timeout=30, what="node-0 registered")
        config_path = workdir / "scheduler.yaml"
        config_path.write_text(MOCK_CONFIG)
        app = app_module.build_scheduler(
            load_config(config_path), scheduler_kube, serve=False, metrics_bind="", leader_election=False
        ).start(sync_timeout=30)
        try:
            sick = plugin.state.devices[1].id
            backend.set_health(sick, False)
            eventually(
                lambda: kube.get_node("node-0")["status"]["allocatable"].get(GPU) == "10", what="10 left"
            )

            def place(name: str, count: int) -> dict[str, object]:
                pod = make_pod(
                    name, scheduler_name=SCHEDULER, containers=[make_container(limits={GPU: count, MEM: 100})]
                )
                created = kube.create_pod("default", pod)
                reply = app.extender.filter(PodView.from_object(created), ["node-0"], None)
                if reply.get("NodeNames"):
                    meta = created["metadata"]
                    assert app.extender.bind(meta["namespace"], meta["name"], meta["uid"], "node-0") == {
                        "Error": ""
                    }
                return dict(reply)

            def scheduler_sees_it_sick() -> bool:
                view = app.cache.view("node-0")
                return view is not None and any(d.id == sick and not d.health for d in view.all_devices())

            eventually(scheduler_sees_it_sick, what="the scheduler's cache reads the register annotation")
            assert "CardNotHealth" in str(place("two", 2)["FailedNodes"])
            for index in range(3):
                assert place(f"one-{index}", 1)["NodeNames"] == ["node-0"]
            wait_running(kube, [f"one-{index}" for index in range(3)])
            for index in range(3):
                allocated = kube.get_pod("default", f"one-{index}")["metadata"]["annotations"][
                    backend.keys.allocated
                ]
                assert sick not in allocated
            assert no_lock_left(kube)
        finally:
            app.stop()
            plugins.close()
