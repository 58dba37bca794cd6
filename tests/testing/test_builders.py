"""The test kit's builders produce objects shaped like the API's JSON."""

from __future__ import annotations

from hami_core.testing import make_container
from hami_core.testing import make_node
from hami_core.testing import make_pod


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
