"""The scheduler under load on the local cluster: no over-commit, every pod that fits is bound, no
lock left behind, and a scheduler killed and restarted in the middle changes none of that.

50 nodes x 4 mock GPUs (8000 MiB, 100 cores, split 10) are registered the way another HAMi
implementation would register them (fleet annotations, static allocatable). The kube-scheduler
stand-in calls the real ``hami scheduler`` process over HTTP (filter and bind, nodeCacheCapable, as
HAMi's chart configures it). Eight threads submit 1,000 pods with random counts, memory (MiB or
percentage) and cores. A thread plays the device plugin's part of the protocol for every pod bound
with ``bind-phase=allocating``: it consumes the to-allocate entries, sets ``bind-phase=success`` and
releases the node lock. Midway the scheduler process is killed with SIGKILL and started again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hami_core import codec
from hami_core.devices import DeviceInfo
from hami_core.errors import KubeError
from hami_core.kube.client import RealKubeClient
from hami_core.kube.informer import Informer
from hami_core.kube.informer import listed
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.objects import Pod
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.stack import free_port
from tests.integration.load import DEVICES
from tests.integration.load import KEYS
from tests.integration.load import MEMORY
from tests.integration.load import MOCK
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

#: kube-scheduler's default podMaxBackoffSeconds.
REAL_MAX_BACKOFF_SECONDS = 10.0


def devices_of(node: str) -> list[DeviceInfo]:
    return [
        DeviceInfo(
            id=f"{node}-gpu{i}",
            index=i,
            count=SPLIT,
            devmem=MEMORY,
            devcore=100,
            type="MOCK-GPU",
            health=True,
        )
        for i in range(DEVICES)
    ]


def fleet() -> dict[str, Any]:
    return {
        "nodes": [
            {
                "name": f"node-{n:02d}",
                "annotations": {KEYS.register: MOCK.encode_node_devices(devices_of(f"node-{n:02d}"))},
                "resources": {NAMES.count: str(DEVICES * SPLIT)},
            }
            for n in range(NODES)
        ]
    }


class DevicePluginPart:
    """Plays the device plugin's side of the protocol for every pod bound with ``bind-phase=allocating``.

    Each node has its own device plugin in a cluster, so pods are finished by a pool of workers, not
    one after another: a node lock is held from the bind until its pod is finished, and the real
    kube-scheduler binds while it schedules the next pods, so a slow finisher stalls every bind.
    """

    def __init__(self, kube: RealKubeClient) -> None:
        self.kube = kube
        self.lock = NodeLock(kube)
        self.done: set[str] = set()
        self._taken: set[str] = set()
        self._guard = threading.Lock()
        self._workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="device-plugin-part")
        self.informer: Informer[Pod] = Informer(
            "device-plugin-part",
            lambda: listed(kube.list_pods()),
            lambda version: kube.watch_pods(resource_version=version),
            self._on_pod,
        )

    def stop(self) -> None:
        self.informer.stop()
        self._workers.shutdown(wait=True)

    def _on_pod(self, event: str, pod: Pod, old: Pod | None) -> None:
        metadata = pod["metadata"]
        annotations = metadata.get("annotations") or {}
        node = pod.get("spec", {}).get("nodeName")
        if event == "DELETED" or not node or annotations.get(codec.BIND_PHASE) != codec.BIND_PHASE_ALLOCATING:
            return
        with self._guard:
            if metadata["name"] in self._taken:
                return
            self._taken.add(metadata["name"])
        self._workers.submit(self._finish, pod, node)

    def _finish(self, pod: Pod, node: str) -> None:
        metadata = pod["metadata"]
        annotations = metadata.get("annotations") or {}
        entries = codec.decode_pod_devices(annotations.get(KEYS.to_allocate, ""))
        consumed = codec.encode_pod_devices([[] for _ in entries[:-1]] or [[]])
        try:
            self.kube.patch_pod(
                metadata["namespace"],
                metadata["name"],
                {
                    "metadata": {
                        "annotations": {
                            KEYS.to_allocate: consumed,
                            codec.BIND_PHASE: codec.BIND_PHASE_SUCCESS,
                        }
                    }
                },
            )
            self.lock.release(node, metadata["namespace"], metadata["name"])
        except KubeError:
            with self._guard:
                self._taken.discard(metadata["name"])
            return
        with self._guard:
            self.done.add(metadata["name"])


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("sched", numbered=True))


@pytest.fixture
def port() -> int:
    """Where ``hami scheduler`` serves the extender."""
    return free_port()


@pytest.fixture
def cluster(workdir: Path, port: int, control_plane: ControlPlaneKind) -> Iterator[LocalCluster]:
    config = stand_in_configuration(port)
    with LocalCluster(
        fleet(), workdir / "c", scheduler_config=config, control_plane=control_plane
    ) as running:
        yield running


@pytest.mark.slow
# Multi-process deadlines a loaded 2-core machine can miss: one rerun, never more.
@pytest.mark.flaky(reruns=1)
def test_a_thousand_pods_from_eight_threads_survive_a_scheduler_kill(
    cluster: LocalCluster, workdir: Path, port: int
) -> None:
    scheduler = SchedulerProcess(workdir, cluster.kubeconfig, port)
    with cluster.client() as plugin_kube, cluster.client() as submit_kube:
        plugin = DevicePluginPart(plugin_kube)
        plugin.informer.start()
        scheduler.start()
        try:
            burst = Burst(submit_kube)
            burst.start()
            wait_for(lambda: len(plugin.done) >= 150, timeout=120, what="150 pods allocated before the kill")
            scheduler.kill()
            time.sleep(0.5)
            scheduler.start()
            submitted = burst.join()
            settle(cluster, submit_kube, plugin)
        finally:
            plugin.stop()
            scheduler.stop()
        check(cluster, submitted)


def wait_for(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def unschedulable(pod: Pod) -> bool:
    """kube-scheduler's verdict on the pod's last try was Unschedulable (not a SchedulerError)."""
    return any(
        condition.get("type") == "PodScheduled"
        and condition.get("status") == "False"
        and condition.get("reason") == "Unschedulable"
        for condition in (pod.get("status") or {}).get("conditions") or []
    )


def settle(
    cluster: LocalCluster, kube: RealKubeClient, plugin: DevicePluginPart, timeout: float = 300.0
) -> None:
    """Wait until every pending pod waits as unschedulable and nothing was allocated for a while.

    A pod waiting in backoff (after an extender error while the scheduler was down, or after a node
    update made it worth another try) is not settled: its next try may still place it. Every node
    update (each bind sets and releases a node lock) sends every unschedulable pod back to the
    extender, as kube-scheduler does, so settling takes several rounds of ~700 filters; the deadline
    leaves room for a busy machine. The stand-in says where a pod waits; the real kube-scheduler does
    not, so there the quiet period outlasts its longest backoff (10 s) and a pod counts as waiting
    when its last verdict was Unschedulable.
    """
    stand_in = cluster.schedulers[-1] if cluster.schedulers else None
    quiet = 1.0 if stand_in is not None else REAL_MAX_BACKOFF_SECONDS + 2.0
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = len(plugin.done)
        if done != last:
            last, since = done, time.monotonic()
        elif time.monotonic() - since > quiet:
            pending = [p for p in kube.list_pods("default")["items"] if not p["spec"].get("nodeName")]
            if stand_in is not None:
                waiting = [stand_in.queue_state("default", p["metadata"]["name"]) for p in pending]
                if all(state == "unschedulable" for state in waiting):
                    return
            elif all(unschedulable(pod) for pod in pending):
                return
        time.sleep(0.2)
    raise AssertionError("the cluster did not settle")


def check(cluster: LocalCluster, submitted: list[Pod]) -> None:
    kube = cluster.kube
    pods = {pod["metadata"]["name"]: pod for pod in kube.list_pods("default")["items"]}
    assert len(pods) == PODS
    no_node_locked(kube)
    held = nothing_held({node: devices_of(node) for node in cluster.node_names})
    pending = []
    for pod in pods.values():
        if not pod["spec"].get("nodeName"):
            pending.append(pod)
            continue
        hold(held, pod)
    assert_not_overcommitted(held, [pod for pod in pods.values() if pod["spec"].get("nodeName")])
    free = free_capacity(held)
    # An idle device (all SPLIT slots free) can take an exclusive request.
    unplaced = [pod["metadata"]["name"] for pod in pending if fits_somewhere(request_of(pod), free)]
    assert unplaced == [], f"{len(unplaced)} pending pods would fit: {unplaced[:5]}"
    assert len(submitted) == PODS
    assert len(pending) < PODS
