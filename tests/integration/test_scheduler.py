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

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.devices import DeviceInfo
from hami_core.errors import KubeError
from hami_core.kube.client import RealKubeClient
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.objects import Pod
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.informer import Informer
from hami_core.localcluster.informer import listed
from hami_core.localcluster.scheduler import Scheduler
from hami_core.localcluster.stack import free_port
from hami_core.localcluster.stack import kube_scheduler_configuration
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod

NODES = 50
DEVICES = 4
MEMORY = 8000
SPLIT = 10
PODS = 1000
THREADS = 8
SCHEDULER = "hami-scheduler"
MOCK = MockBackend()
NAMES = MOCK.resource_names
KEYS = MOCK.keys


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


def random_pod(index: int, rng: random.Random) -> Pod:
    limits: dict[str, str | int] = {NAMES.count: rng.choice((1, 1, 1, 1, 2, 2, 3))}
    if rng.random() < 0.7:
        limits[NAMES.memory] = rng.randrange(500, 6001, 250)
    else:
        limits[NAMES.memory_percentage] = rng.choice((10, 25, 50, 75, 100))
    if rng.random() < 0.8:
        limits[NAMES.cores] = rng.choice((0, 10, 20, 30, 50, 100))
    return make_pod(f"load-{index:04d}", containers=[make_container(limits=limits)], scheduler_name=SCHEDULER)


def request_of(pod: Pod) -> tuple[int, int, int, int]:
    """(count, MiB or 0, percent or 0, cores) of a load pod."""
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    return (
        int(limits[NAMES.count]),
        int(limits.get(NAMES.memory, 0)),
        int(limits.get(NAMES.memory_percentage, 0)),
        int(limits.get(NAMES.cores, 0)),
    )


class SchedulerProcess:
    """``hami scheduler`` as its own process, which the test may SIGKILL."""

    def __init__(self, workdir: Path, kubeconfig: Path, port: int) -> None:
        self.config = workdir / "hami.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "version": "v1",
                    "scheduler": {
                        "http_bind": f"127.0.0.1:{port}",
                        "metrics_bind": f"127.0.0.1:{free_port()}",
                        "leader_elect": False,
                    },
                    "backends": {"mock": {"enabled": True}},
                }
            )
        )
        self.kubeconfig = kubeconfig
        self.log = workdir / "scheduler.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hami_core",
                    "scheduler",
                    "--config",
                    str(self.config),
                    "--kubeconfig",
                    str(self.kubeconfig),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class DevicePluginPart:
    """Plays the device plugin's side of the protocol for every pod bound with ``bind-phase=allocating``."""

    def __init__(self, kube: RealKubeClient) -> None:
        self.kube = kube
        self.lock = NodeLock(kube)
        self.done: set[str] = set()
        self.informer: Informer[Pod] = Informer(
            "device-plugin-part",
            lambda: listed(kube.list_pods()),
            lambda version: kube.watch_pods(resource_version=version),
            self._on_pod,
        )

    def _on_pod(self, event: str, pod: Pod, old: Pod | None) -> None:
        metadata = pod["metadata"]
        annotations = metadata.get("annotations") or {}
        node = pod.get("spec", {}).get("nodeName")
        if event == "DELETED" or not node or annotations.get(codec.BIND_PHASE) != codec.BIND_PHASE_ALLOCATING:
            return
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
            return
        self.done.add(metadata["name"])


def fits_somewhere(request: tuple[int, int, int, int], free: dict[str, dict[str, list[int]]]) -> bool:
    """Whether some node has ``count`` devices each with the memory, cores and a slot the pod asks."""
    count, mib, percent, cores = request
    need = mib or MEMORY * percent // 100
    for devices in free.values():
        usable = [
            device
            for device in devices.values()
            if device[0] > 0
            and device[1] >= need
            and device[2] >= cores
            and not (cores == 100 and device[0] < SPLIT)  # an exclusive request wants an idle device
            and not (cores == 0 and device[2] == 0)  # HAMi's CardComputeUnitsExhausted
        ]
        if len(usable) >= count:
            return True
    return False


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("sched", numbered=True))


@pytest.fixture
def cluster(workdir: Path) -> Iterator[LocalCluster]:
    with LocalCluster(fleet(), workdir / "c") as running:
        yield running


@pytest.mark.slow
def test_a_thousand_pods_from_eight_threads_survive_a_scheduler_kill(
    cluster: LocalCluster, workdir: Path
) -> None:
    port = free_port()
    scheduler = SchedulerProcess(workdir, cluster.kubeconfig, port)
    resources = [NAMES.count, NAMES.memory, NAMES.memory_percentage, NAMES.cores]
    config = kube_scheduler_configuration(SCHEDULER, f"http://127.0.0.1:{port}", resources)
    with cluster.client() as stand_in_kube, cluster.client() as plugin_kube, cluster.client() as submit_kube:
        stand_in = Scheduler(stand_in_kube, config)
        plugin = DevicePluginPart(plugin_kube)
        plugin.informer.start()
        scheduler.start()
        stand_in.start()
        try:
            submitted: list[Pod] = []
            guard = threading.Lock()

            def submit(worker: int) -> None:
                rng = random.Random(worker)
                for index in range(worker, PODS, THREADS):
                    created = submit_kube.create_pod("default", random_pod(index, rng))
                    with guard:
                        submitted.append(created)

            threads = [threading.Thread(target=submit, args=(worker,)) for worker in range(THREADS)]
            for thread in threads:
                thread.start()
            wait_for(lambda: len(plugin.done) >= 150, timeout=60, what="150 pods allocated before the kill")
            scheduler.kill()
            time.sleep(0.5)
            scheduler.start()
            for thread in threads:
                thread.join()
            settle(stand_in, submit_kube, plugin)
        finally:
            stand_in.stop()
            plugin.informer.stop()
            scheduler.stop()
        check(cluster, submitted)


def wait_for(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def settle(
    stand_in: Scheduler, kube: RealKubeClient, plugin: DevicePluginPart, timeout: float = 120.0
) -> None:
    """Wait until every pending pod waits as unschedulable and nothing was allocated for a second.

    A pod waiting in backoff (after an extender error while the scheduler was down) or being tried
    is not settled: its next try may still place it.
    """
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = len(plugin.done)
        if done != last:
            last, since = done, time.monotonic()
        elif time.monotonic() - since > 1.0:
            pending = [
                p["metadata"]["name"]
                for p in kube.list_pods("default")["items"]
                if not p["spec"].get("nodeName")
            ]
            if all(stand_in.queue_state("default", name) == "unschedulable" for name in pending):
                return
        time.sleep(0.2)
    raise AssertionError("the cluster did not settle")


def check(cluster: LocalCluster, submitted: list[Pod]) -> None:
    kube = cluster.kube
    pods = {pod["metadata"]["name"]: pod for pod in kube.list_pods("default")["items"]}
    assert len(pods) == PODS
    for node in kube.list_nodes()["items"]:
        assert codec.NODE_LOCK not in (node["metadata"].get("annotations") or {}), node["metadata"]["name"]
    held: dict[str, dict[str, list[int]]] = {
        node: {device.id: [0, 0, 0] for device in devices_of(node)} for node in cluster.node_names
    }
    pending = []
    for name, pod in pods.items():
        node = pod["spec"].get("nodeName")
        if not node:
            pending.append(pod)
            continue
        annotations = pod["metadata"]["annotations"]
        assert annotations[codec.VGPU_NODE] == node
        assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
        (entry,) = [c for c in codec.decode_pod_devices(annotations[KEYS.allocated]) if c]
        count, mib, percent, cores = request_of(pod)
        assert len(entry) == count, name
        assert len({device.uuid for device in entry}) == count, name
        for device in entry:
            assert device.usedmem == (mib or MEMORY * percent // 100), name
            assert device.usedcores == cores, name
            totals = held[node][device.uuid]
            totals[0] += 1
            totals[1] += device.usedmem
            totals[2] += device.usedcores
    for node, devices in held.items():
        for uuid, (slots, memory, cores) in devices.items():
            assert slots <= SPLIT, (node, uuid, slots)
            assert memory <= MEMORY, (node, uuid, memory)
            assert cores <= 100, (node, uuid, cores)
    exclusive = defaultdict(int)
    for pod in pods.values():
        if pod["spec"].get("nodeName") and request_of(pod)[3] == 100:
            for container in codec.decode_pod_devices(pod["metadata"]["annotations"][KEYS.allocated]):
                for device in container:
                    exclusive[device.uuid] += 1
    for node, devices in held.items():
        for uuid, (slots, _, _) in devices.items():
            assert exclusive[uuid] == 0 or slots == 1, (node, uuid)
    free = {
        node: {uuid: [SPLIT - s, MEMORY - m, 100 - c] for uuid, (s, m, c) in devices.items()}
        for node, devices in held.items()
    }
    # An idle device (all SPLIT slots free) can take an exclusive request.
    unplaced = [pod["metadata"]["name"] for pod in pending if fits_somewhere(request_of(pod), free)]
    assert unplaced == [], f"{len(unplaced)} pending pods would fit: {unplaced[:5]}"
    assert len(submitted) == PODS
    assert len(pending) < PODS
