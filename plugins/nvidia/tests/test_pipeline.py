"""NVIDIA pods through hami's whole pipeline in one process, on the fake NVML (the kit's ``hami_cluster``).

The multi-node, multi-process deployment (one device-plugin process per node, a node registered by
HAMi's Go plugin, plugin crashes) is ``test_local_cluster.py``; this is what a vendor runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hami_backend_nvidia.backend import NvidiaBackend
from hami_backend_nvidia.settings import NvidiaSettings

from hami_core.testing import HamiCluster
from hami_core.testing import PipelineError
from hami_core.testing import make_container
from hami_core.testing import make_pod
from plugins.nvidia.tests.conftest import UseNvml

GPU, MEM, CORES = "nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpucores"


@pytest.fixture
def backend(use_nvml: UseNvml, tmp_path: Path) -> Iterator[NvidiaBackend]:
    """The backend on the fake 4 x T4 node (15360 MiB each); ``hami_cluster`` runs it."""
    use_nvml("t4-4")
    backend = NvidiaBackend(NvidiaSettings(hook_path=str(tmp_path / "hook")))
    yield backend
    backend.close()


def test_a_shared_gpu_pod_runs_with_hamis_limits(hami_cluster: HamiCluster) -> None:
    pod = make_pod("shared", containers=[make_container(limits={GPU: 1, MEM: 3000, CORES: 30})])
    run = hami_cluster.run_pod(pod)
    env = run.env()
    assert env["NVIDIA_VISIBLE_DEVICES"].startswith("GPU-")
    assert (env["CUDA_DEVICE_MEMORY_LIMIT_0"], env["CUDA_DEVICE_SM_LIMIT"]) == ("3000m", "30")


def test_a_pod_asking_more_than_a_t4_has_is_not_scheduled(hami_cluster: HamiCluster) -> None:
    pod = make_pod("huge", containers=[make_container(limits={GPU: 1, MEM: 16000})])
    with pytest.raises(PipelineError, match="Unschedulable"):
        hami_cluster.run_pod(pod, timeout=30)
