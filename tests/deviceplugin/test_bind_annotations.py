"""The device plugin removes what a backend's bind set on the node (a vendor lock) when allocation ends.

Cambricon's ``cambricon.com/dsmlu.lock`` (``specs/hami-wire.md`` 3.8) is set by the scheduler's bind
for MLU pods; hami's MLU device plugin takes it off before releasing the node lock, on success and on
failure, so the next MLU bind on the node never finds it.
"""

from __future__ import annotations

import pytest
from hami_backend_mlu.backend import MluBackend
from hami_backend_mlu.settings import MluSettings

from hami_core.deviceplugin.allocating import Allocator
from hami_core.deviceplugin.devices import DeviceState
from hami_core.deviceplugin.devices import replica_ids
from hami_core.devices import ContainerDevice
from hami_core.errors import BackendError
from hami_core.kube.nodelock import NodeLock
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.deviceplugin.binding import bind

NODE = "mlu-node"
DSMLU_LOCK = "cambricon.com/dsmlu.lock"


def _setup(kind: str = "MLU") -> tuple[FakeKube, Allocator, str]:
    backend = MluBackend(MluSettings(fake="2xMLU370"))
    devices = backend.discover(NODE)
    kube = FakeKube()
    kube.create_node(make_node(NODE, annotations={DSMLU_LOCK: "2026-08-01T06:00:00Z"}))
    allocator = Allocator(kube, backend, NODE, DeviceState(devices), NodeLock(kube))
    pod = kube.create_pod("default", make_pod("p", containers=[make_container(limits={"cambricon.com/vmlu": 1})]))
    bind(kube, backend, pod, NODE, [(ContainerDevice(devices[1].id, kind, 2048, 25),)])
    return kube, allocator, replica_ids(devices[1])[0]


def _node_annotations(kube: FakeKube) -> dict[str, str]:
    return dict(kube.get_node(NODE)["metadata"].get("annotations") or {})


def test_a_finished_allocation_removes_the_dsmlu_lock_and_the_node_lock() -> None:
    kube, allocator, replica = _setup()
    [given] = allocator.allocate([[replica]])
    assert given.envs["CAMBRICON_SPLIT_VISIBLE_DEVICES"] == "1"
    annotations = _node_annotations(kube)
    assert DSMLU_LOCK not in annotations
    assert "hami.io/mutex.lock" not in annotations


def test_a_failed_allocation_removes_it_too() -> None:
    kube, allocator, replica = _setup(kind="DCU")
    with pytest.raises(BackendError, match="not an MLU device"):
        allocator.allocate([[replica]])
    assert DSMLU_LOCK not in _node_annotations(kube)
