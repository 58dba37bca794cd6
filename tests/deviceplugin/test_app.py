"""One node end to end: hami's device plugin on the simulated kubelet, with FakeKube as the API."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

import pytest
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend
from hami_backend_mock.settings import DeviceGroup
from hami_backend_mock.settings import MockSettings

from hami_core import codec
from hami_core.config import HamiConfig
from hami_core.deviceplugin.app import DevicePlugin
from hami_core.deviceplugin.app import endpoint_name
from hami_core.deviceplugin.app import only_backend
from hami_core.devices import DeviceInfo
from hami_core.localcluster.fleet import NodeSpec
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.kubelet import Kubelet
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.deviceplugin.binding import ProtocolScheduler
from tests.deviceplugin.binding import bind
from tests.deviceplugin.fleet import PluginFleet
from tests.localcluster.polling import eventually

NODE = "node-0"
GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory
CORES = resources.RESOURCE_NAMES.cores


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="h"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kubelet(fake_kube: FakeKube, plugin_dir: Path) -> Iterator[Kubelet]:
    node = Kubelet(fake_kube, NodeSpec(NODE), plugin_dir)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def fleet(fake_kube: FakeKube, plugin_dir: Path) -> Iterator[PluginFleet]:
    plugins = PluginFleet(lambda: fake_kube, lambda _: plugin_dir, plugin_dir)
    yield plugins
    plugins.close()


@pytest.fixture
def backend() -> MockBackend:
    return MockBackend(MockSettings(devices=(DeviceGroup(count=2, memory_mib=16384, split=4),)))


@pytest.fixture
def plugin(fleet: PluginFleet, kubelet: Kubelet, backend: MockBackend) -> DevicePlugin:
    started = fleet.start_plugin(NODE, backend)
    assert started.registration.wait_registered(1)
    eventually(lambda: len(kubelet.devices(GPU)) == 8, what="the kubelet lists the devices")
    return started


def allocatable(fake_kube: FakeKube) -> str | None:
    return fake_kube.get_node(NODE)["status"]["allocatable"].get(GPU)


def registered(fake_kube: FakeKube, backend: MockBackend) -> list[bool]:
    value = fake_kube.get_node(NODE)["metadata"].get("annotations", {}).get(backend.keys.register)
    return [device.health for device in codec.decode_node_devices(value)] if value else []


def phase(fake_kube: FakeKube, name: str) -> str:
    return str(fake_kube.get_pod("default", name)["status"].get("phase", ""))


def test_the_plugin_registers_its_split_devices_and_the_node_annotation(
    fake_kube: FakeKube, backend: MockBackend, plugin: DevicePlugin, kubelet: Kubelet, plugin_dir: Path
) -> None:
    assert endpoint_name(backend) == "mock-gpu.sock"
    assert (plugin_dir / "mock-gpu.sock").is_socket()
    eventually(lambda: allocatable(fake_kube) == "8", what="2 devices x split 4 allocatable")
    eventually(lambda: registered(fake_kube, backend) == [True, True], what="register annotation")
    assert kubelet.registered_resources() == [GPU]


def test_a_bound_pod_is_allocated_recorded_by_the_kubelet_and_ends_success(
    fake_kube: FakeKube, backend: MockBackend, plugin: DevicePlugin
) -> None:
    eventually(lambda: registered(fake_kube, backend) == [True, True])
    pod = fake_kube.create_pod(
        "default", make_pod("p", containers=[make_container(limits={GPU: 1, MEM: 2048, CORES: 25})])
    )
    assert ProtocolScheduler(fake_kube, backend).schedule(pod, [NODE]) == NODE
    eventually(lambda: phase(fake_kube, "p") == "Running", what="p Running")
    annotations = fake_kube.get_pod("default", "p")["metadata"]["annotations"]
    record = json.loads(annotations[ALLOCATIONS_ANNOTATION])["main"]
    assert record["envs"]["CUDA_DEVICE_MEMORY_LIMIT_0"] == "2048m"
    assert record["envs"]["CUDA_DEVICE_SM_LIMIT"] == "25"
    assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
    assert codec.NODE_LOCK not in fake_kube.get_node(NODE)["metadata"]["annotations"]


def test_an_injected_unhealthy_device_leaves_allocatable_and_the_scheduler_stops_placing_on_it(
    fake_kube: FakeKube, backend: MockBackend, plugin: DevicePlugin, kubelet: Kubelet
) -> None:
    eventually(lambda: allocatable(fake_kube) == "8")
    sick = plugin.state.devices[1].id
    backend.set_health(sick, False)
    eventually(lambda: allocatable(fake_kube) == "4", what="the sick device's replicas leave allocatable")
    eventually(
        lambda: registered(fake_kube, backend) == [True, False],
        what="health false in the register annotation",
    )
    assert sum(not healthy for healthy in kubelet.devices(GPU).values()) == 4
    scheduler = ProtocolScheduler(fake_kube, backend)
    for index in range(3):
        pod = fake_kube.create_pod(
            "default", make_pod(f"p{index}", containers=[make_container(limits={GPU: 1, MEM: 1024})])
        )
        assert scheduler.schedule(pod, [NODE]) == NODE
        eventually(lambda index=index: phase(fake_kube, f"p{index}") == "Running")  # type: ignore[misc]
        entry = fake_kube.get_pod("default", f"p{index}")["metadata"]["annotations"][backend.keys.allocated]
        assert sick not in entry
    two = fake_kube.create_pod(
        "default", make_pod("two", containers=[make_container(limits={GPU: 2, MEM: 1024})])
    )
    assert scheduler.schedule(two, [NODE]) is None
    backend.set_health(sick, True)
    eventually(lambda: allocatable(fake_kube) == "8", what="the device comes back")


def test_a_restarted_kubelet_gets_the_plugin_registered_again(
    fake_kube: FakeKube, backend: MockBackend, plugin: DevicePlugin, kubelet: Kubelet
) -> None:
    eventually(lambda: allocatable(fake_kube) == "8")
    kubelet.restart()
    assert plugin.registration.wait_registered(2)
    eventually(lambda: len(kubelet.devices(GPU)) == 8, what="devices listed again")
    pod = fake_kube.create_pod(
        "default", make_pod("after", containers=[make_container(limits={GPU: 1, MEM: 1024})])
    )
    assert ProtocolScheduler(fake_kube, backend).schedule(pod, [NODE]) == NODE
    eventually(lambda: phase(fake_kube, "after") == "Running", what="a pod runs after the restart")


def test_a_plugin_started_before_its_kubelet_registers_once_the_kubelet_is_up(
    fake_kube: FakeKube, backend: MockBackend, fleet: PluginFleet, plugin_dir: Path
) -> None:
    plugin = fleet.start_plugin(NODE, backend)
    assert not plugin.registration.wait_registered(1, timeout=0.2)
    kubelet = Kubelet(fake_kube, NodeSpec(NODE), plugin_dir)
    kubelet.start()
    try:
        assert plugin.registration.wait_registered(1)
        eventually(lambda: allocatable(fake_kube) == "8")
    finally:
        kubelet.stop()


def test_stopping_the_plugin_removes_its_socket_and_its_devices_go_unhealthy(
    fake_kube: FakeKube, fleet: PluginFleet, plugin: DevicePlugin, plugin_dir: Path
) -> None:
    eventually(lambda: allocatable(fake_kube) == "8")
    fleet.stop_plugin(NODE)
    assert not (plugin_dir / "mock-gpu.sock").exists()
    eventually(lambda: allocatable(fake_kube) == "0", what="kubelet sees the stream end")


def test_a_malformed_annotation_fails_the_pod_through_the_kubelet_and_frees_the_node(
    fake_kube: FakeKube, backend: MockBackend, plugin: DevicePlugin
) -> None:
    eventually(lambda: allocatable(fake_kube) == "8")
    pod = fake_kube.create_pod("default", make_pod("bad", containers=[make_container(limits={GPU: 1})]))
    bind(fake_kube, backend, pod, NODE, [], to_allocate="x,MOCK,1,y:;")
    eventually(lambda: phase(fake_kube, "bad") == "Failed", what="bad Failed")
    status = fake_kube.get_pod("default", "bad")["status"]
    assert (
        "code = InvalidArgument desc = pod default/bad: malformed hami.io/mock-devices-to-allocate"
        in status["message"]
    )
    assert (
        fake_kube.get_pod("default", "bad")["metadata"]["annotations"][codec.BIND_PHASE]
        == codec.BIND_PHASE_FAILED
    )
    assert codec.NODE_LOCK not in fake_kube.get_node(NODE)["metadata"]["annotations"]


def test_only_the_named_backend_is_enabled_for_a_device_plugin() -> None:
    config = HamiConfig().with_enabled(["mock", "other"])
    assert only_backend(config, "mock").enabled_backends == ("mock",)


class _FlakyHealthBackend(MockBackend):
    """Its first health poll fails the way a vendor SDK call can; later ones report device 0 unhealthy."""

    polls = 0

    def health(self, devices: Sequence[DeviceInfo]) -> Mapping[str, bool]:
        self.polls += 1
        if self.polls == 1:
            raise OSError("NVML_ERROR_UNKNOWN")
        return {device.id: device.index != 0 for device in devices}


def test_a_failing_health_poll_is_logged_and_polling_goes_on(
    fake_kube: FakeKube, fleet: PluginFleet, kubelet: Kubelet, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _FlakyHealthBackend(MockSettings(devices=(DeviceGroup(count=2, memory_mib=1024, split=1),)))
    fleet.start_plugin(NODE, backend)
    eventually(lambda: registered(fake_kube, backend) == [False, True], what="device 0 reported unhealthy")
    assert "mock health check failed" in caplog.text
