"""The monitor on the local cluster: a pod's region, written by the real shim from a process over
the fake driver, is mapped through the API server; its metrics appear while the process runs and
vanish once the pod is deleted. (The pod's process is started by the test in the directory the
device plugin would mount: the local cluster's kubelet runs no container processes.)"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hami_core.localcluster.cluster import LocalCluster
from hami_core.monitor.metrics import families
from hami_core.monitor.service import Monitor
from hami_core.monitor.sources import ApiPods
from hami_core.monitor.sources import FirstAvailable
from hami_core.monitor.sources import KubeletPods
from hami_core.testing import make_container
from hami_core.testing import make_pod
from tests.localcluster.polling import eventually
from tests.monitor.conftest import ShimProcess
from tests.monitor.conftest import spawn

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hm-") as path:  # short: unix socket paths are limited
        yield Path(path)


def used(monitor: Monitor) -> dict[str, float]:
    return {
        f"{s.labels['namespace']}/{s.labels['pod']}/{s.labels['container']}": s.value
        for family in families(monitor.latest(), "node-0")
        for s in family.samples
        if s.name == "hami_vgpu_memory_used_bytes"
    }


def test_metrics_follow_the_pod(workdir: Path, tmp_path: Path, shim_processes: list[ShimProcess]) -> None:
    with LocalCluster(1, workdir) as cluster:
        kube = cluster.kube
        kube.create_pod("default", make_pod("trainer", containers=[make_container("main")]))
        pod = eventually(
            lambda: (p := kube.get_pod("default", "trainer"))["status"].get("phase") == "Running" and p,
            what="trainer Running",
        )
        directory = tmp_path / "containers" / f"{pod['metadata']['uid']}_main"
        directory.mkdir(parents=True)
        # No kubelet answers on 127.0.0.1:1: the API server's listing is used.
        source = FirstAvailable(KubeletPods("https://127.0.0.1:1", timeout=1.0), ApiPods(kube, "node-0"))
        monitor = Monitor(tmp_path / "containers", source, grace=0)
        process = spawn(shim_processes, directory / "r.cache", CUDA_DEVICE_MEMORY_LIMIT="1g")
        assert process.do("alloc 100") == "0"
        monitor.tick()
        assert used(monitor) == {"default/trainer/main": 100 * MIB + 256 * MIB}
        process.exit()
        monitor.tick()
        assert used(monitor) == {"default/trainer/main": 0}
        kube.delete_pod("default", "trainer")
        eventually(lambda: not kube.list_pods("default")["items"], what="trainer gone")
        monitor.tick()
        assert used(monitor) == {}
        assert not directory.exists()  # grace 0: removed with the pod


def launch_rate(process: ShimProcess, seconds: float) -> float:
    before = int(process.do("count"))
    time.sleep(seconds)
    return (int(process.do("count")) - before) / seconds


def test_priority_on_the_local_cluster(
    workdir: Path, tmp_path: Path, shim_processes: list[ShimProcess]
) -> None:
    """Two pods on the node's GPU, priorities 0 and 1 (``CUDA_TASK_PRIORITY``): the low-priority
    pod's launch rate drops to nothing while the high-priority pod launches, and recovers after."""
    with LocalCluster(1, workdir) as cluster:
        kube = cluster.kube
        processes = {}
        for name in ("high", "low"):
            kube.create_pod("default", make_pod(name, containers=[make_container("main")]))
        for name, priority in (("high", "0"), ("low", "1")):
            pod = eventually(
                lambda n=name: (p := kube.get_pod("default", n))["status"].get("phase") == "Running" and p,
                what=f"{name} Running",
            )
            directory = tmp_path / "containers" / f"{pod['metadata']['uid']}_main"
            directory.mkdir(parents=True)
            processes[name] = spawn(shim_processes, directory / "r.cache", CUDA_TASK_PRIORITY=priority)
            processes[name].do("alloc 1")
        monitor = Monitor(tmp_path / "containers", ApiPods(kube, "node-0"))
        monitor.tick()
        monitor.tick()  # new regions start as if they had just launched: one more tick to go idle
        low, high = processes["low"], processes["high"]
        low.do("start")
        alone = launch_rate(low, 0.3)
        high.do("launch 1")
        monitor.tick()
        launch_rate(low, 0.05)
        shared = launch_rate(low, 0.3)
        # A tick reports what it read before writing: this one shows the block, and, the high-priority
        # pod having launched nothing since the last tick, releases it.
        monitor.tick()
        blocked = [
            s.value
            for family in families(monitor.latest(), "node-0")
            for s in family.samples
            if s.name == "hami_container_priority_blocked" and s.labels["pod"] == "low"
        ]
        assert blocked == [1]
        launch_rate(low, 0.05)
        after = launch_rate(low, 0.3)
        low.do("stop")
        # Rates on a shared build machine vary several-fold; blocked is zero or a launch in flight.
        assert alone > 1000
        assert after > alone / 20
        assert shared < min(alone, after) / 100
