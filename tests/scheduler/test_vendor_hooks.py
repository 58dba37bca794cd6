"""The scheduler's vendor hooks on real vendor backends: devices from node capacity (HAMi's MLU),
extra pod annotations written with the device annotations, and pods asking two vendors.

The MLU and DCU backends are installed distributions (``make venv``); their annotation strings are
HAMi's examples (``specs/hami-wire.md`` 1.4.2, 6.2, 6.3).
"""

from __future__ import annotations

import pytest
from hami_backend_dcu.backend import DcuBackend
from hami_backend_mlu.backend import MluBackend

from hami_core import codec
from hami_core.errors import LockError
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import Harness
from tests.scheduler.fakes import annotations_of
from tests.scheduler.fakes import harness

MLU_CAPACITY = {
    "cambricon.com/mlu.smlu.vcore": 200,
    "cambricon.com/mlu.smlu.vmemory": 192,
    "cambricon.com/vmlu": 200,
}
DCU_REGISTER = (
    "DCU-0,4,32752,100,DCU-Z100L,0,true,0,hami-core:DCU-1,4,32752,100,DCU-Z100L,0,true,1,hami-core:"
)


def _fleet() -> Harness:
    made = harness([MluBackend(), DcuBackend()])
    made.add_node(make_node("mlu-node", allocatable=MLU_CAPACITY))
    made.add_node(
        make_node(
            "dcu-node",
            annotations={"hami.io/node-dcu-register": DCU_REGISTER},
            allocatable={"hygon.com/dcunum": 8},
        )
    )
    return made


def test_an_mlu_node_known_only_by_its_capacity_takes_mlu_pods_with_the_dsmlu_annotations() -> None:
    made = _fleet()
    pod = made.add_pod(
        make_pod(
            "mlu-pod",
            containers=[
                make_container("c0"),
                make_container(
                    "c1",
                    limits={
                        "cambricon.com/vmlu": 1,
                        "cambricon.com/mlu.smlu.vmemory": 8,
                        "cambricon.com/mlu.smlu.vcore": 25,
                    },
                ),
            ],
        )
    )
    outcome = made.filter(pod)
    assert outcome.node == "mlu-node"
    annotations = annotations_of(made.kube, "mlu-pod")
    given = annotations["hami.io/cambricon-mlu-devices-allocated"]
    assert given == annotations["hami.io/cambricon-mlu-devices-to-allocate"]
    (uuid,) = {device.uuid for container in codec.decode_pod_devices(given) for device in container}
    index = uuid.rsplit("-", 1)[1]
    assert given == f";{uuid},MLU,2048,25:;"
    assert annotations["CAMBRICON_DSMLU_ASSIGNED"] == "false"
    assert annotations["CAMBRICON_DSMLU_PROFILE"] == f"{index}_25_8"


def test_dcu_pods_land_on_the_dcu_node_with_hamis_dcu_annotations() -> None:
    made = _fleet()
    pod = made.add_pod(
        make_pod(
            "dcu-pod",
            containers=[
                make_container(
                    limits={"hygon.com/dcunum": 1, "hygon.com/dcumem": 2000, "hygon.com/dcucores": 60}
                )
            ],
            annotations={"hygon.com/use-gpuuuid": "DCU-1"},
        )
    )
    assert made.filter(pod).node == "dcu-node"
    annotations = annotations_of(made.kube, "dcu-pod")
    assert annotations["hami.io/dcu-devices-to-allocate"] == "DCU-1,DCU,2000,60:;"
    assert annotations["hami.io/dcu-devices-allocated"] == "DCU-1,DCU,2000,60:;"
    assert "CAMBRICON_DSMLU_PROFILE" not in annotations


def test_a_pod_asking_two_vendors_needs_a_node_with_both() -> None:
    made = _fleet()
    pod = made.add_pod(
        make_pod(
            "both",
            containers=[
                make_container("mlu", limits={"cambricon.com/vmlu": 1}),
                make_container("dcu", limits={"hygon.com/dcunum": 1}),
            ],
        )
    )
    outcome = made.filter(pod)
    assert outcome.result == "unschedulable"
    assert set(outcome.failed) == {"mlu-node", "dcu-node"}
    assert all("NodeInsufficientDevice" in reason for reason in outcome.failed.values())


def test_binding_an_mlu_pod_sets_the_dsmlu_lock_and_a_failed_bind_removes_it() -> None:
    made = _fleet()
    limits = {"cambricon.com/vmlu": 1, "cambricon.com/mlu.smlu.vmemory": 4}
    first = made.add_pod(make_pod("first", containers=[make_container(limits=limits)]))
    assert made.filter(first).node == "mlu-node"
    made.binding.bind("default", "first", first["metadata"]["uid"], "mlu-node")
    lock = made.kube.get_node("mlu-node")["metadata"]["annotations"]["cambricon.com/dsmlu.lock"]
    assert lock.endswith("Z")
    # Another MLU pod while the lock is young: HAMi's 2-minute rule refuses it, and the failed bind
    # leaves the first pod's lock in place (it removes only what it set).
    made.kube.patch_node("mlu-node", {"metadata": {"annotations": {codec.NODE_LOCK: None}}})
    made.sync()
    second = made.add_pod(make_pod("second", containers=[make_container(limits=limits)]))
    assert made.filter(second).node == "mlu-node"
    with pytest.raises(LockError, match="locked within 2 minutes"):
        made.binding.bind("default", "second", second["metadata"]["uid"], "mlu-node")
    assert made.kube.get_node("mlu-node")["metadata"]["annotations"]["cambricon.com/dsmlu.lock"] == lock


def test_dcu_pods_set_no_vendor_lock() -> None:
    made = _fleet()
    pod = made.add_pod(make_pod("dcu", containers=[make_container(limits={"hygon.com/dcunum": 1})]))
    assert made.filter(pod).node == "dcu-node"
    made.binding.bind("default", "dcu", pod["metadata"]["uid"], "dcu-node")
    assert "cambricon.com/dsmlu.lock" not in made.kube.get_node("dcu-node")["metadata"]["annotations"]
