"""Allocate against the API as HAMi's device plugin does it: find the pod, consume entries, settle the phase."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend
from hami_backend_mock.settings import DeviceGroup
from hami_backend_mock.settings import MockSettings

from hami_core import codec
from hami_core.deviceplugin.allocating import Allocator
from hami_core.deviceplugin.allocating import PreferenceRequest
from hami_core.deviceplugin.allocating import allocation_patch
from hami_core.deviceplugin.allocating import prefer
from hami_core.deviceplugin.devices import DeviceState
from hami_core.deviceplugin.devices import replica_ids
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceInfo
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import LockError
from hami_core.errors import NotFoundError
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.objects import Container
from hami_core.kube.objects import Pod
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.deviceplugin.binding import bind

NODE = "node-a"
GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory
PRIORITY = resources.RESOURCE_NAMES.priority
KEY = resources.KEYS.to_allocate


class Setup:
    def __init__(self) -> None:
        self.backend = MockBackend(MockSettings(devices=(DeviceGroup(count=2, memory_mib=16384, split=4),)))
        self.devices: list[DeviceInfo] = self.backend.discover(NODE)
        self.kube = FakeKube()
        self.kube.create_node(make_node(NODE))
        self.allocator = Allocator(
            self.kube, self.backend, NODE, DeviceState(self.devices), NodeLock(self.kube)
        )

    def share(self, device: int, mem: int = 1000, cores: int = 10) -> ContainerDevice:
        return ContainerDevice(self.devices[device].id, "MOCK", mem, cores)

    def replica(self, device: int, replica: int = 0) -> str:
        return replica_ids(self.devices[device])[replica]

    def bound(
        self, name: str, containers: list[Container], entries: list[tuple[ContainerDevice, ...]]
    ) -> Pod:
        pod = self.kube.create_pod("default", make_pod(name, containers=containers))
        bind(self.kube, self.backend, pod, NODE, entries)
        return pod

    def annotations(self, name: str) -> dict[str, str]:
        return dict(self.kube.get_pod("default", name)["metadata"].get("annotations", {}))

    def lock(self) -> str | None:
        return self.kube.get_node(NODE)["metadata"].get("annotations", {}).get(codec.NODE_LOCK)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_a_single_container_gets_its_env_and_the_pod_ends_success_without_a_lock(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1, MEM: 3000})], [(setup.share(0, 3000, 30),)])
    [allocation] = setup.allocator.allocate([[setup.replica(0, 2)]])
    assert dict(allocation.envs) == {
        "MOCK_VISIBLE_DEVICES": setup.devices[0].id,
        "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
        "CUDA_DEVICE_SM_LIMIT": "30",
    }
    annotations = setup.annotations("p")
    assert annotations[KEY] == ";;"  # hami-wire.md 1.4.3, example 10
    assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
    assert annotations[resources.KEYS.allocated].startswith(setup.devices[0].id)
    assert setup.lock() is None


def test_containers_are_served_in_order_and_success_waits_for_the_last(setup: Setup) -> None:
    containers = [make_container("a", limits={GPU: 1}), make_container("b", limits={GPU: 2})]
    setup.bound("p", containers, [(setup.share(0),), (setup.share(0, 500), setup.share(1, 500))])
    [first] = setup.allocator.allocate([[setup.replica(0)]])
    assert first.envs["MOCK_VISIBLE_DEVICES"] == setup.devices[0].id
    annotations = setup.annotations("p")
    assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_ALLOCATING
    assert (
        annotations[KEY]
        == ";" + codec.encode_container_devices([setup.share(0, 500), setup.share(1, 500)]) + ";;"
    )
    assert setup.lock() is not None
    [second] = setup.allocator.allocate([[setup.replica(0, 1), setup.replica(1)]])
    assert second.envs["MOCK_VISIBLE_DEVICES"] == f"{setup.devices[0].id},{setup.devices[1].id}"
    assert second.envs["CUDA_DEVICE_MEMORY_LIMIT_1"] == "500m"
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
    assert setup.lock() is None


def test_init_containers_come_first_and_containers_without_devices_are_skipped(setup: Setup) -> None:
    init = make_container("init", limits={GPU: 1, PRIORITY: 0})
    plain = make_container("sidecar")
    app = make_container("app", limits={GPU: 1, PRIORITY: 1})
    pod = setup.kube.create_pod("default", make_pod("p", init_containers=[init], containers=[plain, app]))
    bind(setup.kube, setup.backend, pod, NODE, [(setup.share(0),), (), (setup.share(1),)])
    [for_init] = setup.allocator.allocate([[setup.replica(0)]])
    [for_app] = setup.allocator.allocate([[setup.replica(1)]])
    assert (for_init.envs["MOCK_VISIBLE_DEVICES"], for_init.envs["CUDA_TASK_PRIORITY"]) == (
        setup.devices[0].id,
        "0",
    )
    assert (for_app.envs["MOCK_VISIBLE_DEVICES"], for_app.envs["CUDA_TASK_PRIORITY"]) == (
        setup.devices[1].id,
        "1",
    )
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS


def test_several_containers_in_one_request_are_answered_in_order(setup: Setup) -> None:
    containers = [make_container("a", limits={GPU: 1}), make_container("b", limits={GPU: 1})]
    setup.bound("p", containers, [(setup.share(1),), (setup.share(0),)])
    allocations = setup.allocator.allocate([[setup.replica(1)], [setup.replica(0)]])
    assert [a.envs["MOCK_VISIBLE_DEVICES"] for a in allocations] == [setup.devices[1].id, setup.devices[0].id]
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS


def test_without_a_lock_the_oldest_pending_allocating_pod_on_the_node_is_served(setup: Setup) -> None:
    pod = setup.kube.create_pod("default", make_pod("p", containers=[make_container(limits={GPU: 1})]))
    bind(setup.kube, setup.backend, pod, NODE, [(setup.share(0),)], take_lock=False)
    setup.kube.create_pod("default", make_pod("elsewhere", node_name="node-b"))
    [allocation] = setup.allocator.allocate([[setup.replica(0)]])
    assert allocation.envs["MOCK_VISIBLE_DEVICES"] == setup.devices[0].id
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS


def test_no_pod_waiting_is_not_found_and_changes_nothing(setup: Setup) -> None:
    before = setup.kube.resource_version
    with pytest.raises(NotFoundError, match="node node-a: no pod is waiting for mock devices"):
        setup.allocator.allocate([[setup.replica(0)]])
    assert setup.kube.resource_version == before


def test_a_malformed_annotation_fails_the_pod_and_releases_the_lock(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    setup.kube.patch_pod("default", "p", {"metadata": {"annotations": {KEY: "uuid,MOCK,100:;"}}})
    with pytest.raises(
        CodecError, match=r"pod default/p: malformed hami\.io/mock-devices-to-allocate annotation"
    ):
        setup.allocator.allocate([[setup.replica(0)]])
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_FAILED
    assert setup.lock() is None


def test_a_pod_that_vanished_after_bind_releases_its_lock(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    setup.kube.delete_pod("default", "p")
    with pytest.raises(NotFoundError, match="pod default/p holds the node lock but no longer exists"):
        setup.allocator.allocate([[setup.replica(0)]])
    assert setup.lock() is None


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        pytest.param(
            ["GPU-1-0"], "device IDs GPU-1-0, which are not mock.hami.io/gpu devices", id="foreign-ids"
        ),
        pytest.param(["d-0", "d-1"], "not mock.hami.io/gpu devices", id="physical-id-shaped-but-unknown"),
    ],
)
def test_device_ids_the_plugin_does_not_own_fail_the_pod(setup: Setup, ids: list[str], message: str) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    with pytest.raises(BackendError, match=message):
        setup.allocator.allocate([ids])
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_FAILED
    assert setup.lock() is None


def test_a_device_count_other_than_the_schedulers_fails_the_pod(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    with pytest.raises(
        BackendError, match="device number not matched: kubelet gave container main of pod default/p 2"
    ):
        setup.allocator.allocate([[setup.replica(0), setup.replica(1)]])
    assert setup.lock() is None


def test_a_backend_refusal_names_the_pod_and_fails_it(setup: Setup) -> None:
    setup.bound(
        "p", [make_container(limits={GPU: 1})], [(ContainerDevice(setup.devices[0].id, "NVIDIA", 1, 0),)]
    )
    with pytest.raises(BackendError, match=r"pod default/p: container main: devices .* are not MOCK devices"):
        setup.allocator.allocate([[setup.replica(0)]])
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_FAILED


def test_an_allocate_after_every_entry_was_consumed_fails(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    setup.kube.patch_pod("default", "p", {"metadata": {"annotations": {KEY: ";;"}}})
    with pytest.raises(BackendError, match="pod default/p has no container left to allocate"):
        setup.allocator.allocate([[setup.replica(0)]])


def test_preference_takes_one_replica_of_each_assigned_device(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 2})], [(setup.share(1), setup.share(0))])
    available = tuple(replica_ids(setup.devices[0])[1:] + replica_ids(setup.devices[1]))
    [preferred] = setup.allocator.preferred([PreferenceRequest(available, (), 2)])
    assert preferred == [setup.replica(1, 0), setup.replica(0, 1)]
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_ALLOCATING


def test_without_a_pod_the_preference_is_the_kubelets_own_choice(setup: Setup) -> None:
    available = tuple(replica_ids(setup.devices[1]))
    [preferred] = setup.allocator.preferred([PreferenceRequest(available, (setup.replica(0),), 2)])
    assert preferred == [setup.replica(0), setup.replica(1, 0)]


def test_must_include_ids_come_first_and_the_size_is_respected() -> None:
    def physical(replica: str) -> str:
        return replica.rsplit("-", 1)[0]

    entry = (ContainerDevice("A", "MOCK", 1, 0), ContainerDevice("B", "MOCK", 1, 0))
    request = PreferenceRequest(("A-0", "A-1", "B-0", "C-0"), ("C-0",), 2)
    assert prefer(entry, request, physical) == ["C-0", "A-0"]


def test_the_patch_marks_success_only_when_no_entry_is_left() -> None:
    share = ContainerDevice("A", "MOCK", 1, 2)
    assert allocation_patch(KEY, [(), (share,)]) == {"metadata": {"annotations": {KEY: ";A,MOCK,1,2:;"}}}
    assert allocation_patch(KEY, [(), ()]) == {
        "metadata": {"annotations": {KEY: ";;", codec.BIND_PHASE: codec.BIND_PHASE_SUCCESS}}
    }


def test_a_lock_left_by_a_pod_the_kubelet_failed_is_cleared_and_the_pod_marked_failed(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    setup.allocator.clear_stale_lock(datetime.now(UTC))
    assert setup.lock() is not None
    setup.kube.patch_pod_status("default", "p", {"status": {"phase": "Failed"}})
    setup.allocator.clear_stale_lock(datetime.now(UTC))
    assert setup.lock() is None
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_FAILED


def test_an_expired_lock_is_released_but_the_pod_may_still_be_allocated(setup: Setup) -> None:
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    setup.allocator.clear_stale_lock(datetime.now(UTC) + timedelta(seconds=301))
    assert setup.lock() is None
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_ALLOCATING
    [allocation] = setup.allocator.allocate([[setup.replica(0)]])
    assert allocation.envs["MOCK_VISIBLE_DEVICES"] == setup.devices[0].id


class _StuckLock(NodeLock):
    def release(self, node: str, namespace: str, name: str, *, force: bool = False) -> bool:
        raise LockError(
            f"node {node}: could not release the node lock of {namespace}/{name} after 5 attempts"
        )


def test_a_lock_that_cannot_be_released_after_success_leaves_the_pod_successful(setup: Setup) -> None:
    allocator = Allocator(setup.kube, setup.backend, NODE, DeviceState(setup.devices), _StuckLock(setup.kube))
    setup.bound("p", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    [allocation] = allocator.allocate([[setup.replica(0)]])
    assert allocation.envs["MOCK_VISIBLE_DEVICES"] == setup.devices[0].id
    assert setup.annotations("p")[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
    assert setup.lock() is not None
    setup.allocator.clear_stale_lock(datetime.now(UTC))
    assert setup.lock() is None


def test_a_lock_left_by_a_finished_allocation_never_fails_that_pod(setup: Setup) -> None:
    setup.bound("done", [make_container(limits={GPU: 1})], [(setup.share(0),)])
    setup.kube.patch_pod("default", "done", {"metadata": {"annotations": {codec.BIND_PHASE: "success"}}})
    with pytest.raises(NotFoundError, match="no pod is waiting"):
        setup.allocator.allocate([[setup.replica(0)]])
    assert setup.annotations("done")[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
