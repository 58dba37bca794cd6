"""The mock on the local cluster through the kit's ``hami_cluster`` fixture: webhook, filter, bind, Allocate."""

from __future__ import annotations

import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend

from hami_core.testing import HamiCluster
from hami_core.testing import PipelineError
from hami_core.testing import make_container
from hami_core.testing import make_pod

pytestmark = pytest.mark.slow

MEM = resources.RESOURCE_NAMES.memory
CORES = resources.RESOURCE_NAMES.cores


@pytest.fixture
def backend() -> MockBackend:
    return MockBackend()


def test_a_shared_device_pod_runs_with_the_shims_limits(hami_cluster: HamiCluster) -> None:
    pod = make_pod("shared", containers=[make_container(limits={MEM: 4096, CORES: 30})])
    run = hami_cluster.run_pod(pod)
    assert run.node == "node-0"
    assert run.pod["spec"]["schedulerName"] == "hami-scheduler"
    assert run.env()["CUDA_DEVICE_MEMORY_LIMIT_0"] == "4096m"
    assert run.env()["CUDA_DEVICE_SM_LIMIT"] == "30"
    assert resources.KEYS.allocated in run.annotations


def test_a_pod_no_device_can_hold_fails_with_the_filters_reasons(hami_cluster: HamiCluster) -> None:
    pod = make_pod("huge", containers=[make_container(limits={MEM: 10**9})])
    with pytest.raises(PipelineError, match="did not run") as failure:
        hami_cluster.run_pod(pod, timeout=30)
    assert "Unschedulable" in str(failure.value)
