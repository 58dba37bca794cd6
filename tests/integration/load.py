"""The pod burst the scheduler's load tests share: its device shape, the pods, the processes and the checks.

Every node has 4 mock GPUs of 8000 MiB, 100 cores, split 10. Eight threads create 1,000 pods with
random device counts, memory (MiB or percentage) and cores, all for ``hami-scheduler``, the profile
the kube-scheduler stand-in serves by calling the real ``hami scheduler`` process over HTTP. The
checks sum what bound pods hold per device (from ``*-devices-allocated``), assert nothing is
over-committed, and say whether a pending pod would still fit in what is left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.kube.client import RealKubeClient
from hami_core.kube.objects import Pod
from hami_core.localcluster.stack import free_port
from hami_core.localcluster.stack import kube_scheduler_configuration
from hami_core.quantity import parse_quantity
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

Held = dict[str, dict[str, list[int]]]
"""Per node, per device id: ``[slots, MiB, cores]`` held by bound pods."""


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
    # Quantities as the API server wrote them back: canonical, so 1000 MiB reads "1k".
    return (
        int(parse_quantity(limits[NAMES.count])),
        int(parse_quantity(limits.get(NAMES.memory, 0))),
        int(parse_quantity(limits.get(NAMES.memory_percentage, 0))),
        int(parse_quantity(limits.get(NAMES.cores, 0))),
    )


def stand_in_configuration(port: int) -> dict[str, Any]:
    """The stand-in's KubeSchedulerConfiguration: ``hami-scheduler`` pods filtered and bound by ``port``."""
    resources = [NAMES.count, NAMES.memory, NAMES.memory_percentage, NAMES.cores]
    return kube_scheduler_configuration(SCHEDULER, f"http://127.0.0.1:{port}", resources)


class Burst:
    """``PODS`` pods created by ``THREADS`` threads; thread ``w`` creates pods ``w``, ``w + THREADS``, ...
    from a generator seeded with ``w``, so every run submits the same pods."""

    def __init__(self, kube: RealKubeClient) -> None:
        self.submitted: list[Pod] = []
        self._kube = kube
        self._guard = threading.Lock()
        self._threads = [threading.Thread(target=self._submit, args=(worker,)) for worker in range(THREADS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> list[Pod]:
        """Wait for every thread; returns the pods as the API server created them."""
        for thread in self._threads:
            thread.join()
        return self.submitted

    def _submit(self, worker: int) -> None:
        rng = random.Random(worker)
        for index in range(worker, PODS, THREADS):
            created = self._kube.create_pod("default", random_pod(index, rng))
            with self._guard:
                self.submitted.append(created)


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


def no_node_locked(kube: RealKubeClient) -> None:
    """Assert that no node still carries the node lock annotation."""
    for node in kube.list_nodes()["items"]:
        assert codec.NODE_LOCK not in (node["metadata"].get("annotations") or {}), node["metadata"]["name"]


def nothing_held(devices: Mapping[str, Iterable[DeviceInfo]]) -> Held:
    """Zero use of every device, from each node's devices."""
    return {node: {device.id: [0, 0, 0] for device in listed} for node, listed in devices.items()}


def hold(held: Held, pod: Pod) -> ContainerDevices:
    """Add what the bound ``pod`` was allocated to ``held``, after checking it is what the pod asked.

    Returns:
        The pod's devices, in the order the scheduler gave them.
    """
    name = pod["metadata"]["name"]
    node = pod["spec"]["nodeName"]
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
    return tuple(entry)


def assert_not_overcommitted(held: Held, bound: Iterable[Pod]) -> None:
    """No device holds more slots, memory or cores than it has; one asked exclusively holds one pod."""
    for node, devices in held.items():
        for uuid, (slots, memory, cores) in devices.items():
            assert slots <= SPLIT, (node, uuid, slots)
            assert memory <= MEMORY, (node, uuid, memory)
            assert cores <= 100, (node, uuid, cores)
    exclusive: defaultdict[str, int] = defaultdict(int)
    for pod in bound:
        if request_of(pod)[3] == 100:
            for container in codec.decode_pod_devices(pod["metadata"]["annotations"][KEYS.allocated]):
                for device in container:
                    exclusive[device.uuid] += 1
    for node, devices in held.items():
        for uuid, (slots, _, _) in devices.items():
            assert exclusive[uuid] == 0 or slots == 1, (node, uuid)


def free_capacity(held: Held) -> dict[str, dict[str, list[int]]]:
    """Per node, per device id: ``[slots, MiB, cores]`` still free."""
    return {
        node: {uuid: [SPLIT - s, MEMORY - m, 100 - c] for uuid, (s, m, c) in devices.items()}
        for node, devices in held.items()
    }


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
