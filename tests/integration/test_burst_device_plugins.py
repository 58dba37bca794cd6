"""The scheduler's 1,000-pod burst through real device plugins: every pod that fits ends Running.

50 nodes, each with a real hami device plugin (a thread per node, ``tests.deviceplugin.fleet``)
serving 4 mock GPUs of 8000 MiB, 100 cores, split 10, as the mock's config describes them. Nothing is
registered statically: each plugin registers with its node's simulated kubelet, which advertises the
allocatable count it streams, and writes the node's register annotation itself. The kube-scheduler
stand-in calls the real ``hami scheduler`` process over HTTP; the kubelet calls the plugin's
``Allocate`` over gRPC for every bound pod and sets it Running with the environment it got. Eight
threads submit 1,000 random pods; the test follows them by watch until each is Running, Failed or
unschedulable, then checks the allocations, the environments, the capacity and the node locks.
A second burst SIGKILLs the scheduler and one node's device plugin (a process there) midway: no pod
may fail admission on the dead node, and once the plugin is back the node takes pods again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from typing import Generic
from typing import TypeVar

import pytest
import yaml
from hami_backend_mock import isolation
from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.config import load_config
from hami_core.deviceplugin.app import Timings
from hami_core.devices import ContainerDevices
from hami_core.isolation import shim
from hami_core.kube.client import RealKubeClient
from hami_core.kube.client import WatchStream
from hami_core.kube.informer import Informer
from hami_core.kube.informer import InformerEvent
from hami_core.kube.informer import listed
from hami_core.kube.informer import object_key
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.scheduler import Scheduler
from hami_core.localcluster.stack import free_port
from tests.deviceplugin.fleet import PluginFleet
from tests.integration.load import DEVICES
from tests.integration.load import KEYS
from tests.integration.load import MEMORY
from tests.integration.load import NAMES
from tests.integration.load import NODES
from tests.integration.load import PODS
from tests.integration.load import SPLIT
from tests.integration.load import Burst
from tests.integration.load import SchedulerProcess
from tests.integration.load import assert_not_overcommitted
from tests.integration.load import fits_somewhere
from tests.integration.load import free_capacity
from tests.integration.load import hold
from tests.integration.load import no_node_locked
from tests.integration.load import nothing_held
from tests.integration.load import request_of
from tests.integration.load import stand_in_configuration

#: Fifty plugins polling health or ``kubelet.sock`` every 20 ms would eat the CPU the burst needs.
QUIET = Timings(register_interval=30.0, retry_interval=0.5, health_interval=5.0, kubelet_poll_interval=0.5)
#: Generous for two busy cores; the burst settles in about 45 s there.
SETTLE_SECONDS = 240.0
#: Pods Running when the restart test kills the scheduler and a plugin: about half of what fits.
MIDWAY = 120

T = TypeVar("T", bound=Mapping[str, Any])


class Tracker(Generic[T]):
    """Watches one kind of object and wakes a waiting test whenever one starts or stops meeting ``done``.

    Args:
        name: for the informer's thread and logs.
        lister: a fresh list as ``(items, resourceVersion)``.
        watcher: a watch from a resourceVersion.
        done: whether an object has reached the state the test waits for.
    """

    def __init__(
        self,
        name: str,
        lister: Callable[[], tuple[list[T], str]],
        watcher: Callable[[str], WatchStream[T]],
        done: Callable[[T], bool],
    ) -> None:
        self._done = done
        self._keys: set[str] = set()
        self._changed = threading.Condition()
        self._informer: Informer[T] = Informer(name, lister, watcher, self._on_change)

    def __enter__(self) -> Tracker[T]:
        self._informer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._informer.stop()

    def _on_change(self, event: InformerEvent, obj: T, old: T | None) -> None:
        key = object_key(obj)
        with self._changed:
            if event != "DELETED" and self._done(obj):
                self._keys.add(key)
            else:
                self._keys.discard(key)
            self._changed.notify_all()

    def wait_for(self, count: int, *, timeout: float, what: str) -> None:
        """Block until ``count`` objects are done; fail the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._keys) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {len(self._keys)}")
                self._changed.wait(left)


def registered(node: Node) -> bool:
    """The plugin registered with the kubelet (allocatable) and published its devices (annotation)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    annotations = node["metadata"].get("annotations") or {}
    return allocatable.get(NAMES.count) == str(DEVICES * SPLIT) and KEYS.register in annotations


def settled(pod: Pod) -> bool:
    """Running, Failed, or pending and found unschedulable.

    Unschedulable is final here: nothing is deleted, so free capacity only shrinks, and the stand-in
    tries one pod at a time, so no verdict is made against another pod's booking that is later dropped.
    """
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Failed"):
        return True
    return not pod["spec"].get("nodeName") and any(
        condition.get("type") == "PodScheduled"
        and condition.get("status") == "False"
        and condition.get("reason") == "Unschedulable"
        for condition in status.get("conditions") or []
    )


def wait_registered(kube: RealKubeClient) -> None:
    """Wait until every node's plugin has registered its devices."""
    with Tracker(
        "burst-nodes",
        lambda: listed(kube.list_nodes()),
        lambda version: kube.watch_nodes(resource_version=version),
        registered,
    ) as nodes:
        nodes.wait_for(NODES, timeout=60, what="every plugin registered")


def pod_tracker(kube: RealKubeClient, name: str, done: Callable[[Pod], bool]) -> Tracker[Pod]:
    """A tracker of the default namespace's pods meeting ``done``."""
    return Tracker(
        name,
        lambda: listed(kube.list_pods("default")),
        lambda version: kube.watch_pods("default", resource_version=version),
        done,
    )


def assert_environment(pod: Pod, devices: ContainerDevices) -> None:
    """The kubelet's record of ``Allocate``: one container given the pod's devices, one memory limit each."""
    name = pod["metadata"]["name"]
    (record,) = json.loads(pod["metadata"]["annotations"][ALLOCATIONS_ANNOTATION]).values()
    envs: dict[str, Any] = record["envs"]
    limits = {
        key: value for key, value in envs.items() if key.startswith(shim.CUDA_DEVICE_MEMORY_LIMIT_PREFIX)
    }
    assert limits == {
        shim.memory_limit_name(position): shim.memory_limit_value(device.usedmem)
        for position, device in enumerate(devices)
    }, name
    assert envs[shim.CUDA_DEVICE_SM_LIMIT] == str(devices[0].usedcores), name
    assert envs[isolation.VISIBLE_DEVICES] == ",".join(device.uuid for device in devices), name
    assert len(record["deviceIDs"][NAMES.count]) == len(devices), name


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short: the plugins' unix socket paths must stay under 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix="b"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def backend(workdir: Path) -> MockBackend:
    path = workdir / "mock.yaml"
    group = {"count": DEVICES, "memory_mib": MEMORY, "cores": 100, "split": SPLIT}
    path.write_text(
        yaml.safe_dump({"version": "v1", "backends": {"mock": {"enabled": True, "devices": [group]}}})
    )
    return MockBackend.from_config(load_config(path))


@pytest.fixture
def cluster(workdir: Path) -> Iterator[LocalCluster]:
    with LocalCluster(NODES, workdir / "c") as running:
        yield running


@pytest.fixture
def plugins(cluster: LocalCluster, backend: MockBackend) -> Iterator[PluginFleet]:
    fleet = PluginFleet.on_cluster(cluster)
    try:
        for node in cluster.node_names:
            fleet.start_plugin(node, backend, timings=QUIET)
        yield fleet
    finally:
        fleet.close()


@pytest.mark.slow
def test_a_thousand_pods_through_real_device_plugins_end_running_when_they_fit(
    cluster: LocalCluster, plugins: PluginFleet, backend: MockBackend, workdir: Path
) -> None:
    started = time.monotonic()
    kube = cluster.kube
    wait_registered(kube)
    port = free_port()
    scheduler = SchedulerProcess(workdir, cluster.kubeconfig, port)
    with (
        cluster.client() as stand_in_kube,
        cluster.client() as submit_kube,
        cluster.client() as watch_kube,
        pod_tracker(watch_kube, "burst-pods", settled) as pods,
    ):
        stand_in = Scheduler(stand_in_kube, stand_in_configuration(port))
        scheduler.start()
        stand_in.start()
        try:
            burst = Burst(submit_kube)
            burst.start()
            submitted = burst.join()
            pods.wait_for(PODS, timeout=SETTLE_SECONDS, what="every pod Running, Failed or unschedulable")
        finally:
            stand_in.stop()
            scheduler.stop()
    check(cluster, backend, submitted)
    print(f"burst settled and checked in {time.monotonic() - started:.1f}s")


@pytest.fixture
def mixed_plugins(cluster: LocalCluster, backend: MockBackend, workdir: Path) -> Iterator[PluginFleet]:
    """Thread plugins on every node but the first, whose plugin is a process the test may SIGKILL."""
    fleet = PluginFleet.on_cluster(cluster)
    victim, *others = cluster.node_names
    try:
        fleet.start_process(victim, kubeconfig=cluster.kubeconfig, config=workdir / "mock.yaml")
        for node in others:
            fleet.start_plugin(node, backend, timings=QUIET)
        yield fleet
    finally:
        fleet.close()


def running(pod: Pod) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def admitted_on(kube: RealKubeClient, node: str) -> bool:
    """Every pod bound to ``node`` has been admitted by its kubelet (Running or Failed)."""
    return all(
        (pod.get("status") or {}).get("phase") in ("Running", "Failed")
        for pod in kube.list_pods("default")["items"]
        if pod["spec"].get("nodeName") == node
    )


def allocatable_count(kube: RealKubeClient, node: str) -> str | None:
    return ((kube.get_node(node).get("status") or {}).get("allocatable") or {}).get(NAMES.count)


def quiet(kube: RealKubeClient, backend: MockBackend, nodes: list[str]) -> bool:
    """Every bound pod admitted, no pending pod that would fit, no node lock: nothing left to do."""
    pods = kube.list_pods("default")["items"]
    if any(pod["spec"].get("nodeName") and not settled(pod) for pod in pods):
        return False
    held = nothing_held({node: backend.discover(node) for node in nodes})
    for pod in pods:
        if running(pod):
            hold(held, pod)
    free = free_capacity(held)
    if any(not pod["spec"].get("nodeName") and fits_somewhere(request_of(pod), free) for pod in pods):
        return False
    return all(
        codec.NODE_LOCK not in (n["metadata"].get("annotations") or {}) for n in kube.list_nodes()["items"]
    )


def queue_states(kube: RealKubeClient, stand_in: Scheduler) -> dict[str, list[str]]:
    """Where each pending pod waits in the stand-in's queue, for a failure message."""
    states: dict[str, list[str]] = {}
    for pod in kube.list_pods("default")["items"]:
        if not pod["spec"].get("nodeName"):
            name = pod["metadata"]["name"]
            states.setdefault(str(stand_in.queue_state("default", name)), []).append(name)
    return states


@pytest.mark.slow
# Multi-process deadlines a loaded 2-core machine can miss: one rerun, never more.
@pytest.mark.flaky(reruns=1)
def test_a_thousand_pods_survive_a_scheduler_restart_and_a_killed_device_plugin(
    cluster: LocalCluster, mixed_plugins: PluginFleet, backend: MockBackend, workdir: Path
) -> None:
    """Midway, with 120 pods Running (about half of what fits), the scheduler is SIGKILLed, then (once every pod bound to it is
    admitted, so the kill strands none) the first node's device plugin too, and the scheduler is
    started again. The restarted scheduler must send that node no pod while its kubelet advertises no
    GPU: none fails admission. Once the burst has settled the plugin comes back and the pods left
    pending that fit there are placed on it; then nothing is over-committed and no lock is left."""
    started = time.monotonic()
    kube = cluster.kube
    victim = cluster.node_names[0]
    wait_registered(kube)
    port = free_port()
    scheduler = SchedulerProcess(workdir, cluster.kubeconfig, port)
    with (
        cluster.client() as stand_in_kube,
        cluster.client() as submit_kube,
        cluster.client() as watch_kube,
        pod_tracker(watch_kube, "burst-running", running) as runs,
        pod_tracker(watch_kube, "burst-pods", settled) as pods,
    ):
        stand_in = Scheduler(stand_in_kube, stand_in_configuration(port))
        scheduler.start()
        stand_in.start()
        try:
            burst = Burst(submit_kube)
            burst.start()
            runs.wait_for(MIDWAY, timeout=SETTLE_SECONDS, what=f"{MIDWAY} pods Running before the kills")
            scheduler.kill()
            wait_until(
                lambda: admitted_on(kube, victim), timeout=60, what=f"the pods bound to {victim} admitted"
            )
            mixed_plugins.kill_process(victim)
            wait_until(
                lambda: allocatable_count(kube, victim) == "0", timeout=60, what=f"{victim} without GPUs"
            )
            scheduler.start()
            submitted = burst.join()
            pods.wait_for(PODS, timeout=SETTLE_SECONDS, what="every pod Running, Failed or unschedulable")
            failed = [
                pod["metadata"]["name"]
                for pod in kube.list_pods("default")["items"]
                if pod["status"].get("phase") == "Failed"
            ]
            assert failed == [], f"pods failed while {victim}'s plugin was dead: {failed[:5]}"
            mixed_plugins.start_process(victim, kubeconfig=cluster.kubeconfig, config=workdir / "mock.yaml")
            wait_until(
                lambda: allocatable_count(kube, victim) == str(DEVICES * SPLIT),
                timeout=60,
                what=f"{victim} back",
            )
            wait_until(
                lambda: quiet(kube, backend, cluster.node_names),
                timeout=SETTLE_SECONDS,
                what="the pods that fit on the returned node placed",
            )
        except AssertionError:
            print(f"stand-in queue states of the pending pods: {queue_states(kube, stand_in)}")
            raise
        finally:
            stand_in.stop()
            scheduler.stop()
    check(cluster, backend, submitted)
    assert any(pod["spec"].get("nodeName") == victim for pod in kube.list_pods("default")["items"])
    print(f"burst with a scheduler restart and a killed plugin checked in {time.monotonic() - started:.1f}s")


def check(cluster: LocalCluster, backend: MockBackend, submitted: list[Pod]) -> None:
    kube = cluster.kube
    pods = kube.list_pods("default")["items"]
    assert len(submitted) == len(pods) == PODS
    failed = [pod["metadata"]["name"] for pod in pods if pod["status"].get("phase") == "Failed"]
    assert failed == []
    running = [pod for pod in pods if pod["status"].get("phase") == "Running"]
    pending = [pod for pod in pods if not pod["spec"].get("nodeName")]
    assert len(running) + len(pending) == PODS
    held = nothing_held({node: backend.discover(node) for node in cluster.node_names})
    for pod in running:
        assert_environment(pod, hold(held, pod))
    assert_not_overcommitted(held, running)
    free = free_capacity(held)
    unplaced = [pod["metadata"]["name"] for pod in pending if fits_somewhere(request_of(pod), free)]
    assert unplaced == [], f"{len(unplaced)} pending pods would fit: {unplaced[:5]}"
    assert running
    no_node_locked(kube)
    print(f"{len(running)} pods Running, {len(pending)} pending")
