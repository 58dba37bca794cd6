"""The test kit's builders produce objects shaped like the API's JSON."""

from __future__ import annotations

import pytest
from hami_backend_mock.backend import MockBackend

from hami_core.devices import DeviceInfo
from hami_core.errors import ConfigError
from hami_core.testing import make_config
from hami_core.testing import make_container
from hami_core.testing import make_device
from hami_core.testing import make_node
from hami_core.testing import make_pod
from hami_core.testing import make_usage
from hami_core.testing import registered_node


def test_container_quantities_become_strings_and_env_keeps_its_order() -> None:
    container = make_container(
        "train", limits={"example.com/gpu": 2}, requests={"cpu": "500m"}, env={"B": "1", "A": "2"}
    )
    assert container == {
        "name": "train",
        "image": "busybox",
        "resources": {"limits": {"example.com/gpu": "2"}, "requests": {"cpu": "500m"}},
        "env": [{"name": "B", "value": "1"}, {"name": "A", "value": "2"}],
    }


def test_a_plain_container_has_no_resources_field() -> None:
    assert make_container() == {"name": "main", "image": "busybox"}


def test_a_default_pod_is_pending_with_one_container_and_a_stable_uid() -> None:
    pod = make_pod()
    assert pod["metadata"]["name"] == "pod"
    assert pod["metadata"]["namespace"] == "default"
    assert pod["spec"] == {"containers": [make_container()]}
    assert pod["status"] == {"phase": "Pending"}
    assert pod["metadata"]["uid"] == make_pod()["metadata"]["uid"] != make_pod("other")["metadata"]["uid"]


def test_pod_fields_are_set_only_when_given() -> None:
    pod = make_pod(
        "p",
        namespace="ml",
        init_containers=[make_container("init")],
        annotations={"a": "b"},
        labels={"app": "x"},
        node_name="n1",
        scheduler_name="hami-scheduler",
        phase="Running",
    )
    assert pod["spec"]["initContainers"] == [make_container("init")]
    assert (pod["spec"]["nodeName"], pod["spec"]["schedulerName"]) == ("n1", "hami-scheduler")
    assert (pod["metadata"]["annotations"], pod["metadata"]["labels"]) == ({"a": "b"}, {"app": "x"})
    assert pod["status"] == {"phase": "Running"}


def test_a_node_has_its_hostname_label_and_allocatable_as_capacity() -> None:
    node = make_node(
        "gpu-1", annotations={"k": "v"}, labels={"zone": "a"}, allocatable={"example.com/gpu": 20}
    )
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "gpu-1", "zone": "a"}
    assert node["metadata"]["annotations"] == {"k": "v"}
    assert node["status"] == {"capacity": {"example.com/gpu": "20"}, "allocatable": {"example.com/gpu": "20"}}


def test_a_device_defaults_to_a_healthy_shareable_whole_device() -> None:
    device = make_device(1, device_type="ACME", memory_mib=40960)
    assert device == DeviceInfo(
        id="ACME-1", index=1, count=10, devmem=40960, devcore=100, type="ACME", health=True
    )
    assert make_device(device_id="GPU-x", healthy=False).id == "GPU-x"


def test_usage_books_what_pods_hold_on_a_device() -> None:
    usage = make_usage(make_device(memory_mib=1000), used=2, used_mib=300, used_cores=40)
    assert (usage.used, usage.usedmem, usage.usedcores) == (2, 300, 40)
    assert (usage.count, usage.totalmem, usage.totalcore) == (10, 1000, 100)


def test_a_registered_node_carries_the_backends_register_annotation() -> None:
    backend = MockBackend()
    devices = backend.discover("gpu-1")
    node = registered_node(backend, devices, "gpu-1", annotations={"k": "v"}, labels={"zone": "a"})
    annotations = node["metadata"]["annotations"]
    assert annotations["k"] == "v"
    assert [d.id for d in backend.node_devices(annotations)] == [d.id for d in devices]
    assert node["metadata"]["labels"]["zone"] == "a"


def test_a_config_is_read_as_the_yaml_file_would_be() -> None:
    config = make_config({"mock": {"enabled": True}}, scheduler={"scheduler_name": "other"})
    assert config.enabled_backends == ("mock",)
    assert config.scheduler.scheduler_name == "other"
    with pytest.raises(ConfigError, match="scheduler"):
        make_config(scheduler={"no_such_key": 1})
