"""HamiCluster runs a backend object through webhook, filter, bind and Allocate, and says why a pod did not run."""

from __future__ import annotations

import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend

from hami_core.errors import BackendError
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.sdk import ContainerAllocation
from hami_core.sdk import ContainerDevices
from hami_core.testing import HamiCluster
from hami_core.testing import PipelineError
from hami_core.testing import make_container
from hami_core.testing import make_pod

pytestmark = pytest.mark.slow

GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory


class Refusing(MockBackend):
    """Its device plugin refuses every Allocate, as a broken driver would."""

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        raise BackendError(f"container {container.label}: the driver is gone")


def test_pods_land_on_several_nodes_and_each_container_gets_its_own_allocation() -> None:
    with HamiCluster(MockBackend(), nodes=2) as cluster:
        assert cluster.node_names == ["node-0", "node-1"]
        pod = make_pod(
            "two",
            containers=[
                make_container("a", limits={GPU: 1, MEM: 1000}),
                make_container("b", limits={GPU: 2, MEM: 2000}),
                make_container("plain"),
            ],
        )
        run = cluster.run_pod(pod)
        assert run.node in cluster.node_names
        assert run.env("a")["CUDA_DEVICE_MEMORY_LIMIT_0"] == "1000m"
        assert set(run.env("b")) >= {"CUDA_DEVICE_MEMORY_LIMIT_0", "CUDA_DEVICE_MEMORY_LIMIT_1"}
        assert run.env("plain") == {}
        assert len(run.env("b")["MOCK_VISIBLE_DEVICES"].split(",")) == 2


def test_a_failed_allocate_is_reported_with_the_kubelets_reason() -> None:
    pod = make_pod("refused", containers=[make_container(limits={GPU: 1})])
    with HamiCluster(Refusing()) as cluster, pytest.raises(PipelineError, match="phase 'Failed'") as failure:
        cluster.run_pod(pod)
    assert "UnexpectedAdmissionError" in str(failure.value)
    assert "the driver is gone" in str(failure.value)


def test_stop_removes_its_own_workdir_and_is_idempotent() -> None:
    cluster = HamiCluster(MockBackend()).start()
    workdir = cluster.workdir
    assert (workdir / "kubeconfig").exists()
    cluster.stop()
    cluster.stop()
    assert not workdir.exists()
