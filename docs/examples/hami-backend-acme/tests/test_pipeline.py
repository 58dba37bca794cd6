"""Acme pods through hami's whole pipeline: webhook, scheduler filter and bind, the kubelet's Allocate."""

from __future__ import annotations

import pytest
from hami_backend_acme.backend import AcmeBackend

from hami_core.testing import HamiCluster
from hami_core.testing import PipelineError
from hami_core.testing import make_container
from hami_core.testing import make_pod

COUNT = "acme.example.com/gpu"
MEMORY = "acme.example.com/gpumem"
CORES = "acme.example.com/gpucores"


@pytest.fixture
def backend() -> AcmeBackend:
    """The backend the ``hami_cluster`` fixture runs: one device per node."""
    return AcmeBackend(devices=1)


def test_a_shared_pod_runs_with_its_limits(hami_cluster: HamiCluster) -> None:
    pod = make_pod("shared", containers=[make_container(limits={COUNT: 1, MEMORY: 4096, CORES: 25})])
    run = hami_cluster.run_pod(pod)
    assert run.env() == {
        "ACME_VISIBLE_DEVICES": f"ACME-{run.node}-0",
        "CUDA_DEVICE_MEMORY_LIMIT_0": "4096m",
        "CUDA_DEVICE_SM_LIMIT": "25",
    }


def test_a_pod_asking_more_memory_than_a_device_has_is_not_scheduled(hami_cluster: HamiCluster) -> None:
    pod = make_pod("huge", containers=[make_container(limits={COUNT: 1, MEMORY: 10**6})])
    with pytest.raises(PipelineError, match="Unschedulable"):
        hami_cluster.run_pod(pod, timeout=30)
