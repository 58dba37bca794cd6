"""The simulated kubelet against a real gRPC device plugin on unix sockets, with FakeKube as API."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from hami_core.kube import objects
from hami_core.localcluster.fleet import NodeSpec
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.kubelet import Kubelet
from hami_core.localcluster.kubelet import is_extended_resource_name
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.localcluster.fake_plugin import FakePlugin
from tests.localcluster.polling import eventually

RESOURCE = "example.com/dev"


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    # Unix socket paths must stay under 108 bytes; pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="h"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kubelet(fake_kube: FakeKube, plugin_dir: Path) -> Iterator[Kubelet]:
    spec = NodeSpec("node-0", cpu="8", resources={"static.example.com/thing": "3"})
    node = Kubelet(fake_kube, spec, plugin_dir, dial_timeout=0.5)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def start_plugin(plugin_dir: Path) -> Iterator[Callable[..., FakePlugin]]:
    started: list[FakePlugin] = []

    def start(**kwargs: Any) -> FakePlugin:
        plugin = FakePlugin(plugin_dir, **kwargs)
        plugin.serve()
        plugin.register()
        started.append(plugin)
        return plugin

    yield start
    for plugin in started:
        plugin.stop()


def allocatable(fake_kube: FakeKube, resource: str = RESOURCE) -> str | None:
    return fake_kube.get_node("node-0")["status"]["allocatable"].get(resource)


def bound_pod(fake_kube: FakeKube, name: str, pod: objects.Pod) -> None:
    fake_kube.create_pod("default", pod)
    fake_kube.bind_pod("default", name, "node-0")


def phase(fake_kube: FakeKube, name: str) -> str:
    return fake_kube.get_pod("default", name).get("status", {}).get("phase", "")


def records(fake_kube: FakeKube, name: str) -> dict[str, dict[str, object]]:
    raw = fake_kube.get_pod("default", name)["metadata"].get("annotations", {})[ALLOCATIONS_ANNOTATION]
    return json.loads(raw)  # type: ignore[no-any-return]


def test_starting_creates_the_node_with_basics_and_static_resources(
    fake_kube: FakeKube, kubelet: Kubelet
) -> None:
    node = fake_kube.get_node("node-0")
    assert node["status"]["allocatable"] == {
        "cpu": "8",
        "memory": "64Gi",
        "pods": "110",
        "static.example.com/thing": "3",
    }
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-0"
    assert kubelet.socket_path.is_socket()


def test_registration_advertises_every_device_as_capacity_and_healthy_ones_as_allocatable(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    start_plugin(devices={"a": True, "b": True, "c": False})
    eventually(lambda: allocatable(fake_kube) == "2", what="allocatable 2")
    assert fake_kube.get_node("node-0")["status"]["capacity"][RESOURCE] == "3"
    assert kubelet.registered_resources() == [RESOURCE]


def test_a_health_change_on_list_and_watch_updates_allocatable(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(devices={"a": True, "b": True})
    eventually(lambda: allocatable(fake_kube) == "2", what="allocatable 2")
    plugin.set_health("b", False)
    eventually(lambda: allocatable(fake_kube) == "1", what="allocatable 1")
    plugin.set_health("b", True)
    eventually(lambda: allocatable(fake_kube) == "2", what="allocatable back to 2")


def test_a_bound_pod_gets_devices_allocated_recorded_and_runs(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(devices={"a": True, "b": True, "c": True})
    eventually(lambda: allocatable(fake_kube) == "3")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container("main", limits={RESOURCE: 2})]))
    eventually(lambda: phase(fake_kube, "p1") == "Running", what="p1 Running")
    assert plugin.allocate_calls == [["a", "b"]]
    assert records(fake_kube, "p1") == {
        "main": {
            "deviceIDs": {RESOURCE: ["a", "b"]},
            "envs": {"FAKE_DEVICES": "a,b"},
            "mounts": [{"containerPath": "/usr/lib/fake", "hostPath": "/opt/fake", "readOnly": True}],
            "devices": [
                {"containerPath": "/dev/a", "hostPath": "/dev/a", "permissions": "rw"},
                {"containerPath": "/dev/b", "hostPath": "/dev/b", "permissions": "rw"},
            ],
            "annotations": {"fake": "yes"},
            "cdiDevices": [],
        }
    }
    assert kubelet.assigned_devices(RESOURCE) == dict.fromkeys(
        ("a", "b"), fake_kube.get_pod("default", "p1")["metadata"]["uid"]
    )


def test_devices_held_by_one_pod_are_not_given_to_the_next(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(devices={"a": True, "b": True, "c": False})
    eventually(lambda: allocatable(fake_kube) == "2")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p1") == "Running")
    bound_pod(fake_kube, "p2", make_pod("p2", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p2") == "Running")
    assert plugin.allocate_calls == [["a"], ["b"]]


def test_a_pod_asking_for_more_devices_than_are_free_fails_admission(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    start_plugin(devices={"a": True})
    eventually(lambda: allocatable(fake_kube) == "1")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 2})]))
    eventually(lambda: phase(fake_kube, "p1") == "Failed", what="p1 Failed")
    status = fake_kube.get_pod("default", "p1")["status"]
    assert status["reason"] == "UnexpectedAdmissionError"
    assert status["message"] == (
        f"Allocate failed due to requested number of devices unavailable for {RESOURCE}. "
        "Requested: 2, Available: 1, which is unexpected"
    )
    assert kubelet.assigned_devices(RESOURCE) == {}


def test_an_allocate_error_fails_the_pod_with_the_plugins_message(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    start_plugin(allocate_error="no pending pod on node-0")
    eventually(lambda: allocatable(fake_kube) == "2")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p1") == "Failed")
    assert fake_kube.get_pod("default", "p1")["status"]["message"] == (
        "Allocate failed due to rpc error: code = Unknown desc = no pending pod on node-0, which is unexpected"
    )


def test_a_pod_without_device_plugin_resources_goes_straight_to_running(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin()
    bound_pod(
        fake_kube,
        "plain",
        make_pod("plain", containers=[make_container(limits={"cpu": 1, "static.example.com/thing": 1})]),
    )
    eventually(lambda: phase(fake_kube, "plain") == "Running")
    assert ALLOCATIONS_ANNOTATION not in fake_kube.get_pod("default", "plain")["metadata"].get(
        "annotations", {}
    )
    assert plugin.allocate_calls == []


def test_init_container_devices_are_reused_by_the_app_container(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(devices={"a": True, "b": True, "c": True})
    eventually(lambda: allocatable(fake_kube) == "3")
    pod = make_pod(
        "p1",
        init_containers=[make_container("init", limits={RESOURCE: 1})],
        containers=[make_container("main", limits={RESOURCE: 2})],
    )
    bound_pod(fake_kube, "p1", pod)
    eventually(lambda: phase(fake_kube, "p1") == "Running")
    assert plugin.allocate_calls == [["a"], ["a", "b"]]
    assert set(records(fake_kube, "p1")) == {"init", "main"}


def test_the_plugins_preferred_allocation_is_honoured(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(devices={"a": True, "b": True, "c": True}, preferred=["c", "b"])
    eventually(lambda: allocatable(fake_kube) == "3")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 2})]))
    eventually(lambda: phase(fake_kube, "p1") == "Running")
    assert plugin.preferred_calls == [(["a", "b", "c"], [], 2)]
    assert plugin.allocate_calls == [["b", "c"]]


def test_pre_start_container_is_called_when_the_plugin_requires_it(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(pre_start=True)
    eventually(lambda: allocatable(fake_kube) == "2")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p1") == "Running")
    assert plugin.pre_start_calls == [["dev-0"]]


def test_deleting_a_pod_frees_its_devices(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin]
) -> None:
    plugin = start_plugin(devices={"a": True})
    eventually(lambda: allocatable(fake_kube) == "1")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p1") == "Running")
    fake_kube.delete_pod("default", "p1")
    eventually(lambda: kubelet.assigned_devices(RESOURCE) == {}, what="devices freed")
    bound_pod(fake_kube, "p2", make_pod("p2", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p2") == "Running")
    assert plugin.allocate_calls == [["a"], ["a"]]


def test_registration_with_an_unsupported_version_is_refused(kubelet: Kubelet, plugin_dir: Path) -> None:
    plugin = FakePlugin(plugin_dir)
    plugin.serve()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            plugin.register(version="v1alpha")
        assert "not supported by kubelet" in caught.value.details()
    finally:
        plugin.stop()
    assert kubelet.registered_resources() == []


def test_registration_of_an_unreachable_endpoint_is_refused(kubelet: Kubelet, plugin_dir: Path) -> None:
    plugin = FakePlugin(plugin_dir)
    with pytest.raises(grpc.RpcError) as caught:
        plugin.register()
    assert "failed to dial device plugin" in caught.value.details()


def test_a_restart_wipes_sockets_and_plugins_must_register_again(
    fake_kube: FakeKube, kubelet: Kubelet, start_plugin: Callable[..., FakePlugin], plugin_dir: Path
) -> None:
    plugin = start_plugin(devices={"a": True, "b": True})
    eventually(lambda: allocatable(fake_kube) == "2")
    bound_pod(fake_kube, "p1", make_pod("p1", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p1") == "Running")
    before = kubelet.socket_path.stat().st_ctime_ns

    kubelet.restart()

    assert not (plugin_dir / plugin.endpoint).exists()
    assert kubelet.socket_path.is_socket()
    assert kubelet.socket_path.stat().st_ctime_ns != before
    assert kubelet.registered_resources() == []
    # Without its plugin the resource cannot be allocated.
    bound_pod(fake_kube, "p2", make_pod("p2", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p2") == "Failed")

    plugin.stop()
    plugin.serve()
    plugin.register()
    eventually(lambda: kubelet.devices(RESOURCE) == {"a": True, "b": True})
    bound_pod(fake_kube, "p3", make_pod("p3", containers=[make_container(limits={RESOURCE: 1})]))
    eventually(lambda: phase(fake_kube, "p3") == "Running")
    # Assignments survived the restart: p1 still holds "a".
    assert plugin.allocate_calls == [["a"], ["b"]]


def test_a_pod_already_running_keeps_its_recorded_devices(fake_kube: FakeKube, plugin_dir: Path) -> None:
    fake_kube.create_pod("default", make_pod("old", containers=[make_container(limits={RESOURCE: 1})]))
    fake_kube.bind_pod("default", "old", "node-0")
    recorded = {"main": {"deviceIDs": {RESOURCE: ["a"]}}}
    fake_kube.patch_pod(
        "default", "old", {"metadata": {"annotations": {ALLOCATIONS_ANNOTATION: json.dumps(recorded)}}}
    )
    fake_kube.patch_pod_status("default", "old", {"status": {"phase": "Running"}})
    kubelet = Kubelet(fake_kube, NodeSpec("node-0"), plugin_dir)
    kubelet.start()
    plugin = FakePlugin(plugin_dir, devices={"a": True, "b": True})
    plugin.serve()
    try:
        plugin.register()
        uid = fake_kube.get_pod("default", "old")["metadata"]["uid"]
        eventually(lambda: kubelet.assigned_devices(RESOURCE) == {"a": uid}, what="adopted devices")
        eventually(lambda: kubelet.devices(RESOURCE) == {"a": True, "b": True})
        bound_pod(fake_kube, "new", make_pod("new", containers=[make_container(limits={RESOURCE: 1})]))
        eventually(lambda: phase(fake_kube, "new") == "Running")
    finally:
        kubelet.stop()
        plugin.stop()
    assert plugin.allocate_calls == [["b"]]


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        pytest.param("nvidia.com/gpu", True, id="vendor-domain"),
        pytest.param("gpu", False, id="no-domain"),
        pytest.param("kubernetes.io/gpu", False, id="kubernetes-domain"),
        pytest.param("requests.example.com/gpu", False, id="quota-prefix"),
    ],
)
def test_only_extended_resource_names_can_be_registered(name: str, valid: bool) -> None:
    assert is_extended_resource_name(name) is valid
