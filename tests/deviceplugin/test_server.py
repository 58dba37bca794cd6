"""The gRPC edge: kubelet calls over a real unix socket, and hami errors as gRPC statuses with reasons."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend
from hami_backend_mock.settings import DeviceGroup
from hami_backend_mock.settings import MockSettings

from hami_core import codec
from hami_core.deviceplugin import constants
from hami_core.deviceplugin.allocating import Allocator
from hami_core.deviceplugin.devices import DeviceState
from hami_core.deviceplugin.devices import replica_ids
from hami_core.deviceplugin.proto import deviceplugin_pb2
from hami_core.deviceplugin.proto import deviceplugin_pb2_grpc
from hami_core.deviceplugin.registration import PluginOptions
from hami_core.deviceplugin.server import DevicePluginServicer
from hami_core.deviceplugin.server import PluginServer
from hami_core.deviceplugin.server import status_of
from hami_core.devices import ContainerDevice
from hami_core.devices import ContainerDevices
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import ConfigError
from hami_core.errors import HamiError
from hami_core.errors import KubeError
from hami_core.errors import LockError
from hami_core.errors import NotFoundError
from hami_core.kube.nodelock import NodeLock
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.deviceplugin.binding import bind

NODE = "node-a"
GPU = resources.RESOURCE_NAMES.count


class Served:
    def __init__(self, directory: Path, backend_class: type[MockBackend] = MockBackend) -> None:
        self.backend = backend_class(MockSettings(devices=(DeviceGroup(count=2, memory_mib=8192, split=2),)))
        self.devices = self.backend.discover(NODE)
        self.kube = FakeKube()
        self.kube.create_node(make_node(NODE))
        self.state = DeviceState(self.devices)
        allocator = Allocator(self.kube, self.backend, NODE, self.state, NodeLock(self.kube))
        self.servicer = DevicePluginServicer(allocator, self.state, PluginOptions())
        self.server = PluginServer(self.servicer, directory / "mock-gpu.sock")
        self.server.start()
        self.channel = grpc.insecure_channel(f"unix://{self.server.socket_path}")
        self.stub = deviceplugin_pb2_grpc.DevicePluginStub(self.channel)  # type: ignore[no-untyped-call,unused-ignore]

    def close(self) -> None:
        self.channel.close()
        self.server.stop()

    def bound(self, name: str, entry: ContainerDevices, **kw: str) -> None:
        pod = self.kube.create_pod(
            "default", make_pod(name, containers=[make_container(limits={GPU: len(entry)})])
        )
        bind(self.kube, self.backend, pod, NODE, [entry], **kw)  # type: ignore[arg-type]

    def allocate(self, *ids: str) -> deviceplugin_pb2.AllocateResponse:
        request = deviceplugin_pb2.AllocateRequest(
            container_requests=[deviceplugin_pb2.ContainerAllocateRequest(devices_ids=list(ids))]
        )
        return self.stub.Allocate(request, timeout=10)  # type: ignore[no-any-return]

    def locked(self) -> bool:
        return codec.NODE_LOCK in self.kube.get_node(NODE)["metadata"].get("annotations", {})


@pytest.fixture
def directory() -> Iterator[Path]:
    made = Path(tempfile.mkdtemp(prefix="h"))
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def served(directory: Path) -> Iterator[Served]:
    serving = Served(directory)
    yield serving
    serving.close()


def test_options_offer_preferred_allocation_and_no_pre_start(served: Served) -> None:
    options = served.stub.GetDevicePluginOptions(deviceplugin_pb2.Empty(), timeout=10)
    assert (options.pre_start_required, options.get_preferred_allocation_available) == (False, True)


def test_list_and_watch_sends_every_replica_then_each_health_change(served: Served) -> None:
    stream = served.stub.ListAndWatch(deviceplugin_pb2.Empty())
    try:
        first = next(stream)
        assert [(d.ID, d.health) for d in first.devices] == [
            (replica, constants.HEALTHY) for device in served.devices for replica in replica_ids(device)
        ]
        served.state.set_health({served.devices[0].id: False})
        second = next(stream)
        assert [d.health for d in second.devices] == [constants.UNHEALTHY] * 2 + [constants.HEALTHY] * 2
    finally:
        stream.cancel()


def test_allocate_answers_with_the_backends_env(served: Served) -> None:
    served.bound("p", (ContainerDevice(served.devices[1].id, "MOCK", 4096, 50),))
    response = served.allocate(replica_ids(served.devices[1])[0])
    [container] = response.container_responses
    assert dict(container.envs) == {
        "MOCK_VISIBLE_DEVICES": served.devices[1].id,
        "CUDA_DEVICE_MEMORY_LIMIT_0": "4096m",
        "CUDA_DEVICE_SM_LIMIT": "50",
    }
    assert not served.locked()


def test_device_ids_the_plugin_does_not_own_are_a_failed_precondition_and_free_the_node(
    served: Served,
) -> None:
    served.bound("p", (ContainerDevice(served.devices[0].id, "MOCK", 1, 0),))
    with pytest.raises(grpc.RpcError) as caught:
        served.allocate("GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76-0")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == (
        "kubelet asked for device IDs GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76-0, which are not "
        "mock.hami.io/gpu devices of node node-a"
    )
    assert not served.locked()
    assert served.kube.get_pod("default", "p")["metadata"]["annotations"][codec.BIND_PHASE] == "failed"


def test_a_malformed_annotation_is_an_invalid_argument_and_frees_the_node(served: Served) -> None:
    served.bound("p", (), to_allocate="MOCK-x,MOCK,lots,0:;")
    with pytest.raises(grpc.RpcError) as caught:
        served.allocate(replica_ids(served.devices[0])[0])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        "pod default/p: malformed hami.io/mock-devices-to-allocate annotation 'MOCK-x,MOCK,lots,0:;': "
        'invalid memory field: strconv.ParseInt: parsing "lots": invalid syntax'
    )
    assert not served.locked()


def test_a_pod_that_vanished_between_bind_and_allocate_is_not_found_and_frees_the_node(
    served: Served,
) -> None:
    served.bound("gone", (ContainerDevice(served.devices[0].id, "MOCK", 1, 0),))
    served.kube.delete_pod("default", "gone")
    with pytest.raises(grpc.RpcError) as caught:
        served.allocate(replica_ids(served.devices[0])[0])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (
        "pod default/gone holds the node lock but no longer exists; the lock was released"
        in caught.value.details()
    )
    assert not served.locked()


def test_preferred_allocation_picks_replicas_of_the_assigned_devices(served: Served) -> None:
    served.bound("p", (ContainerDevice(served.devices[1].id, "MOCK", 1, 0),))
    request = deviceplugin_pb2.PreferredAllocationRequest(
        container_requests=[
            deviceplugin_pb2.ContainerPreferredAllocationRequest(
                available_deviceIDs=[r for d in served.devices for r in replica_ids(d)], allocation_size=1
            )
        ]
    )
    response = served.stub.GetPreferredAllocation(request, timeout=10)
    assert [list(c.deviceIDs) for c in response.container_responses] == [[replica_ids(served.devices[1])[0]]]


def test_pre_start_container_has_nothing_to_do(served: Served) -> None:
    request = deviceplugin_pb2.PreStartContainerRequest(devices_ids=["x"])
    assert served.stub.PreStartContainer(request, timeout=10) == deviceplugin_pb2.PreStartContainerResponse()


def test_stopping_removes_the_socket_and_a_restart_serves_it_again(served: Served) -> None:
    served.server.stop()
    assert not served.server.socket_path.exists()
    served.server.start()
    assert served.server.socket_path.is_socket()
    assert served.stub.GetDevicePluginOptions(
        deviceplugin_pb2.Empty(), timeout=10
    ).get_preferred_allocation_available


def test_a_socket_path_too_long_for_unix_sockets_is_refused(served: Served) -> None:
    with pytest.raises(ValueError, match="longer than 107 bytes"):
        PluginServer(served.servicer, Path("/tmp/" + "x" * 110))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(NotFoundError("x"), grpc.StatusCode.NOT_FOUND, id="not-found"),
        pytest.param(KubeError("x"), grpc.StatusCode.UNAVAILABLE, id="api-failure"),
        pytest.param(CodecError("x"), grpc.StatusCode.INVALID_ARGUMENT, id="malformed-annotation"),
        pytest.param(LockError("x"), grpc.StatusCode.ABORTED, id="lock-race"),
        pytest.param(BackendError("x"), grpc.StatusCode.FAILED_PRECONDITION, id="backend-refusal"),
        pytest.param(ConfigError("x"), grpc.StatusCode.INTERNAL, id="anything-else"),
    ],
)
def test_each_hami_error_has_its_grpc_status(error: HamiError, code: grpc.StatusCode) -> None:
    assert status_of(error) == code


class _BuggyBackend(MockBackend):
    def allocate(self, devices: ContainerDevices, container: object, pod: object) -> object:  # type: ignore[override]
        raise RuntimeError("driver exploded")


def test_an_unexpected_backend_exception_is_internal_and_still_frees_the_node(directory: Path) -> None:
    served = Served(directory, _BuggyBackend)
    try:
        served.bound("p", (ContainerDevice(served.devices[0].id, "MOCK", 1, 0),))
        with pytest.raises(grpc.RpcError) as caught:
            served.allocate(replica_ids(served.devices[0])[0])
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert caught.value.details() == "RuntimeError: driver exploded"
        assert not served.locked()
        assert served.kube.get_pod("default", "p")["metadata"]["annotations"][codec.BIND_PHASE] == "failed"
    finally:
        served.close()
