"""The pod view: one read of a pod, types checked at the edge, containers in the kubelet's order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hami_core.errors import CodecError
from hami_core.errors import PodFormatError
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.testing import make_container
from hami_core.testing import make_pod


def test_a_pod_is_read_with_identity_placement_and_containers_init_first() -> None:
    init = make_container("setup", limits={"example.com/gpu": 1})
    app = make_container("main", limits={"example.com/gpu": 2}, requests={"cpu": "500m"}, env={"A": "1"})
    raw = make_pod(
        "p",
        namespace="team",
        containers=[app],
        init_containers=[init],
        annotations={"a": "b"},
        labels={"l": "v"},
        node_name="node-1",
        scheduler_name="hami-scheduler",
        phase="Running",
    )
    pod = PodView.from_object(raw)
    assert (pod.namespace, pod.name, pod.key) == ("team", "p", "team/p")
    assert pod.uid == raw["metadata"]["uid"]
    assert (pod.scheduler_name, pod.node_name, pod.phase) == ("hami-scheduler", "node-1", "Running")
    assert dict(pod.annotations) == {"a": "b"}
    assert dict(pod.labels) == {"l": "v"}
    assert [c.name for c in pod.containers] == ["setup", "main"]
    assert pod.n_init == 1
    assert [c.name for c in pod.init_containers] == ["setup"]
    assert [c.name for c in pod.app_containers] == ["main"]
    assert [c.init for c in pod.containers] == [True, False]
    main = pod.containers[1]
    assert main.value("example.com/gpu") == "2"
    assert main.value("cpu") == "500m"
    assert main.limit("cpu") is None
    assert dict(main.env) == {"A": "1"}
    assert main.spec is raw["spec"]["containers"][0]
    assert not pod.finished
    assert not pod.deleting
    assert not pod.init_done


@pytest.mark.parametrize(("phase", "finished"), [("Succeeded", True), ("Failed", True), ("Pending", False)])
def test_finished_means_the_pod_holds_nothing_any_more(phase: str, finished: bool) -> None:
    assert PodView.from_object(make_pod(phase=phase)).finished is finished  # type: ignore[arg-type]


def test_limits_win_over_requests() -> None:
    view = ContainerView.from_object(make_container(limits={"r": 2}, requests={"r": 1}))
    assert view.value("r") == "2"


def test_init_done_needs_every_init_container_terminated_with_exit_code_zero() -> None:
    raw = make_pod(init_containers=[make_container("a"), make_container("b")])
    done = {"state": {"terminated": {"exitCode": 0}}}
    raw["status"]["initContainerStatuses"] = [done, done]  # type: ignore[typeddict-unknown-key]
    assert PodView.from_object(raw).init_done
    raw["status"]["initContainerStatuses"] = [done, {"state": {"terminated": {"exitCode": 1}}}]  # type: ignore[typeddict-unknown-key]
    assert not PodView.from_object(raw).init_done
    raw["status"]["initContainerStatuses"] = [done]  # type: ignore[typeddict-unknown-key]
    assert not PodView.from_object(raw).init_done


def test_a_deletion_timestamp_marks_the_pod_deleting() -> None:
    raw = make_pod()
    raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert PodView.from_object(raw).deleting


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "a pod must be an object, got an array"),
        ({"metadata": 1}, "metadata must be an object, got a number"),
        ({"metadata": {"name": 5}}, "metadata.name must be a string, got a number"),
        ({"metadata": {"annotations": {"k": 1}}}, "metadata.annotations['k'] must be a string, got a number"),
        ({"metadata": {"labels": []}}, "metadata.labels must be an object, got an array"),
        ({"spec": {"containers": {}}}, "spec.containers must be an array, got an object"),
        ({"spec": {"initContainers": [None]}}, "spec.initContainers[0] must be an object, got null"),
        ({"spec": {"containers": [{"name": 1}]}}, "spec.containers[0].name must be a string, got a number"),
        (
            {"spec": {"containers": [{"name": "c", "resources": {"limits": {"gpu": True}}}]}},
            "container c: resources.limits['gpu'] must be a quantity string, got a boolean",
        ),
        (
            {"spec": {"containers": [{"name": "c", "env": [3]}]}},
            "container c: env entries must be objects, got a number",
        ),
        ({"spec": {"nodeName": ["n"]}}, "spec.nodeName must be a string, got an array"),
        ({"status": {"phase": 1}}, "status.phase must be a string, got a number"),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_at_the_edge_naming_it(raw: object, message: str) -> None:
    with pytest.raises(PodFormatError) as caught:
        PodView.from_object(raw)
    assert str(caught.value) == message
    assert isinstance(caught.value, CodecError)


def test_a_long_key_is_cut_in_the_message() -> None:
    with pytest.raises(PodFormatError) as caught:
        PodView.from_object({"metadata": {"annotations": {"k" * 10_000: 1}}})
    assert len(str(caught.value)) < 200


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=20,
)
_POD_KEYS = ("metadata", "spec", "status", "containers", "initContainers", "resources", "limits", "env")


@given(
    st.dictionaries(st.sampled_from(_POD_KEYS), _JSON, max_size=4),
    st.dictionaries(st.sampled_from(_POD_KEYS), _JSON, max_size=4),
)
def test_any_json_is_either_a_view_or_a_pod_format_error(
    spec: dict[str, object], meta: dict[str, object]
) -> None:
    raw = {"metadata": meta, "spec": {**spec, "containers": [spec]}}
    try:
        pod = PodView.from_object(raw)
    except PodFormatError:
        return
    for container in pod.containers:
        assert all(isinstance(value, str | int | float) for value in container.limits.values())
    assert all(isinstance(value, str) for value in pod.annotations.values())
