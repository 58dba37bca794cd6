"""KubeClient behaviour, run against FakeKube, and RealKubeClient on the emulator and on a real kube-apiserver.

One suite for all three keeps the doubles honest: whatever hami code sees in unit tests is what the
emulator (and so the official client) gives it, and what a real API server gives it. The real server
is started once for the module (``make kube``) and emptied between tests.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from hami_core.errors import ConfigError
from hami_core.errors import ConflictError
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube import objects
from hami_core.kube.client import KubeClient
from hami_core.kube.client import RealKubeClient
from hami_core.kube.client import WatchExpiredError
from hami_core.kube.client import WatchStream
from hami_core.kube.client import warning_text
from hami_core.localcluster.apiserver import ApiServer
from hami_core.localcluster.controlplane import ControlPlane
from hami_core.localcluster.controlplane import ControlPlaneError
from hami_core.localcluster.controlplane import find_binaries
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.localcluster.polling import eventually


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        find_binaries()
    except ControlPlaneError as err:
        pytest.fail(str(err))
    with ControlPlane(tmp_path_factory.mktemp("real-api", numbered=True)) as running:
        yield running


def wipe(kubeconfig: Path) -> None:
    """Delete what the tests create, at once (grace period 0), so the next test starts empty."""
    with kubernetes.config.new_client_from_config(str(kubeconfig)) as api:
        core = kubernetes.client.CoreV1Api(api)
        for namespace in ("default", "other"):
            core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        for delete in (
            core.delete_collection_namespaced_config_map,
            core.delete_collection_namespaced_secret,
            core.delete_collection_namespaced_event,
            kubernetes.client.CoordinationV1Api(api).delete_collection_namespaced_lease,
        ):
            delete("default")
        core.delete_collection_node()
        kubernetes.client.AdmissionregistrationV1Api(api).delete_collection_mutating_webhook_configuration()


@pytest.fixture(params=["fake", "emulator", "real"])
def kube(request: pytest.FixtureRequest) -> Iterator[KubeClient]:
    if request.param == "fake":
        yield FakeKube()
        return
    if request.param == "real":
        real: ControlPlane = request.getfixturevalue("real_server")
        wipe(real.kubeconfig)
        with RealKubeClient(kubeconfig=real.kubeconfig) as client:
            yield client
        return
    server = ApiServer().start()
    client = RealKubeClient(host=server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def take(stream: WatchStream[Any], count: int) -> list[tuple[str, str]]:
    """The first ``count`` events as (type, name); stops the watch."""
    seen: list[tuple[str, str]] = []
    for event_type, obj in stream:
        if event_type == "BOOKMARK":
            continue  # a real API server sends them whenever it likes; they change nothing
        seen.append((event_type, obj.get("metadata", {}).get("name", "")))
        if len(seen) == count:
            break
    stream.stop()
    return seen


def test_fake_kube_implements_the_protocol() -> None:
    client: KubeClient = FakeKube()
    assert client.list_pods()["items"] == []


def test_created_pod_gets_identity_version_and_pending_phase(kube: KubeClient) -> None:
    created = kube.create_pod("default", make_pod("p1"))
    fetched = kube.get_pod("default", "p1")
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(fetched["metadata"]["resourceVersion"]) > 0
    assert fetched["metadata"]["creationTimestamp"].endswith("Z")
    assert fetched["status"]["phase"] == "Pending"


def test_creating_an_existing_name_is_a_conflict(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("p1"))
    with pytest.raises(ConflictError, match="already exists") as caught:
        kube.create_pod("default", make_pod("p1"))
    assert caught.value.status == 409


def test_creating_in_a_missing_namespace_raises_not_found(kube: KubeClient) -> None:
    with pytest.raises(NotFoundError, match='namespaces "absent" not found'):
        kube.create_pod("absent", make_pod("p1", namespace="absent"))


def test_reading_a_missing_object_raises_not_found(kube: KubeClient) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        kube.get_pod("default", "absent")
    with pytest.raises(NotFoundError):
        kube.patch_node("absent", {"metadata": {"labels": {"a": "b"}}})


def test_patch_with_a_stale_resource_version_is_refused(kube: KubeClient) -> None:
    node = kube.create_node(make_node("n1"))
    version = node["metadata"]["resourceVersion"]
    updated = kube.patch_node("n1", {"metadata": {"annotations": {"lock": "a"}}}, resource_version=version)
    assert int(updated["metadata"]["resourceVersion"]) > int(version)
    with pytest.raises(ConflictError, match="the object has been modified"):
        kube.patch_node("n1", {"metadata": {"annotations": {"lock": "b"}}}, resource_version=version)
    assert kube.get_node("n1")["metadata"]["annotations"] == {"lock": "a"}


def test_merge_patch_null_removes_an_annotation(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("p1", annotations={"keep": "1", "drop": "2"}))
    patched = kube.patch_pod("default", "p1", {"metadata": {"annotations": {"drop": None}}})
    assert patched["metadata"]["annotations"] == {"keep": "1"}


def test_main_resource_write_ignores_status_and_status_write_keeps_the_spec(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("p1"))
    kube.patch_pod("default", "p1", {"metadata": {"labels": {"a": "1"}}, "status": {"phase": "Running"}})
    assert kube.get_pod("default", "p1")["status"]["phase"] == "Pending"
    kube.patch_pod_status(
        "default",
        "p1",
        {"metadata": {"labels": {"a": "2"}}, "spec": {"nodeName": "n9"}, "status": {"phase": "Running"}},
    )
    pod = kube.get_pod("default", "p1")
    assert pod["status"]["phase"] == "Running"
    # kube-apiserver's status strategy resets the spec but writes labels and annotations.
    assert pod["metadata"]["labels"] == {"a": "2"}
    assert not pod["spec"].get("nodeName")


def test_node_status_patch_merges_capacity(kube: KubeClient) -> None:
    kube.create_node(make_node("n1", allocatable={"cpu": 4}))
    kube.patch_node_status("n1", {"status": {"allocatable": {"nvidia.com/gpu": "2"}}})
    assert kube.get_node("n1")["status"]["allocatable"] == {"cpu": "4", "nvidia.com/gpu": "2"}


def test_binding_assigns_the_node_once(kube: KubeClient) -> None:
    created = kube.create_pod("default", make_pod("p1"))
    kube.bind_pod("default", "p1", "n1", uid=created["metadata"]["uid"], annotations={"placed": "yes"})
    pod = kube.get_pod("default", "p1")
    assert pod["spec"]["nodeName"] == "n1"
    assert pod["metadata"]["annotations"]["placed"] == "yes"
    assert {"type": "PodScheduled", "status": "True"}.items() <= pod["status"]["conditions"][0].items()
    with pytest.raises(ConflictError, match="already assigned"):
        kube.bind_pod("default", "p1", "n2")


def test_binding_with_another_uid_is_refused(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("p1"))
    with pytest.raises(ConflictError):
        kube.bind_pod("default", "p1", "n1", uid="00000000-0000-0000-0000-000000000000")


def test_list_applies_label_and_field_selectors(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("a", labels={"app": "x"}))
    kube.create_pod("default", make_pod("b", labels={"app": "y"}))
    kube.create_namespace({"metadata": {"name": "other"}})
    kube.create_pod("other", make_pod("c", namespace="other", labels={"app": "x"}))
    kube.bind_pod("default", "b", "n1")
    assert [p["metadata"]["name"] for p in kube.list_pods(label_selector="app=x")["items"]] == ["a", "c"]
    assert [
        p["metadata"]["name"] for p in kube.list_pods("default", label_selector="app in (x,y)")["items"]
    ] == [
        "a",
        "b",
    ]
    assert [p["metadata"]["name"] for p in kube.list_pods(field_selector="spec.nodeName=n1")["items"]] == [
        "b"
    ]
    unbound = kube.list_pods("default", field_selector="spec.nodeName=")["items"]
    assert [p["metadata"]["name"] for p in unbound] == ["a"]


def test_unknown_field_selector_is_a_bad_request(kube: KubeClient) -> None:
    with pytest.raises(KubeError) as caught:
        kube.list_pods(field_selector="spec.bogus=1")
    assert caught.value.status == 400


def test_watch_from_a_list_version_sees_later_changes(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("before"))
    version = kube.list_pods("default")["metadata"]["resourceVersion"]
    stream = kube.watch_pods("default", resource_version=version)
    kube.create_pod("default", make_pod("p1"))
    kube.patch_pod("default", "p1", {"metadata": {"labels": {"a": "1"}}})
    kube.delete_pod("default", "p1")
    events: list[tuple[str, str]] = []
    for event_type, obj in stream:
        if event_type != "BOOKMARK":
            events.append((event_type, obj["metadata"]["name"]))
        if event_type == "DELETED":
            break
    stream.stop()
    # kube-apiserver first marks the pod deleted (deletionTimestamp, grace 0: one more MODIFIED),
    # then removes it; the emulator removes it at once.
    assert events[:2] == [("ADDED", "p1"), ("MODIFIED", "p1")]
    assert events[2:] in ([("DELETED", "p1")], [("MODIFIED", "p1"), ("DELETED", "p1")])


def test_watch_without_version_starts_with_current_objects(kube: KubeClient) -> None:
    kube.create_node(make_node("n1"))
    stream = kube.watch_nodes()
    kube.create_node(make_node("n2"))
    events = [(t, n) for t, n in take(stream, 2)]
    assert events == [("ADDED", "n1"), ("ADDED", "n2")]


def test_watch_reports_an_object_leaving_its_field_selector_as_deleted(kube: KubeClient) -> None:
    kube.create_pod("default", make_pod("p1"))
    version = kube.get_pod("default", "p1")["metadata"]["resourceVersion"]
    stream = kube.watch_pods(field_selector="spec.nodeName=", resource_version=version)
    kube.bind_pod("default", "p1", "n1")
    assert take(stream, 1) == [("DELETED", "p1")]


def test_stopping_a_watch_before_iterating_ends_it(kube: KubeClient) -> None:
    stream = kube.watch_pods()
    stream.stop()
    assert list(stream) == []


def test_stop_ends_a_watch_blocked_in_another_thread(kube: KubeClient) -> None:
    stream = kube.watch_pods()
    seen: list[tuple[str, objects.Pod]] = []
    reader = threading.Thread(target=lambda: seen.extend(e for e in stream if e[0] != "BOOKMARK"))
    reader.start()
    kube.create_pod("default", make_pod("p1"))
    eventually(lambda: seen, what="the first event")
    stream.stop()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert [event for event, _ in seen] == ["ADDED"]


def test_lease_replace_is_guarded_by_its_resource_version(kube: KubeClient) -> None:
    lease: objects.Lease = {
        "metadata": {"name": "hami"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
    }
    created = kube.create_lease("default", lease)
    taken = kube.replace_lease("default", "hami", {**created, "spec": {"holderIdentity": "b"}})
    assert taken["spec"]["holderIdentity"] == "b"
    with pytest.raises(ConflictError):
        kube.replace_lease("default", "hami", {**created, "spec": {"holderIdentity": "c"}})
    assert kube.get_lease("default", "hami")["spec"]["holderIdentity"] == "b"


def test_a_pod_patch_naming_another_uid_is_refused(kube: KubeClient) -> None:
    """The filter's annotation patch carries the pod's uid so a pod recreated under the name is left alone."""
    created = kube.create_pod("default", make_pod("p1"))
    with pytest.raises(KubeError) as caught:
        kube.patch_pod("default", "p1", {"metadata": {"uid": str(uuid.uuid4()), "annotations": {"a": "b"}}})
    assert caught.value.status == 422, caught.value
    assert "a" not in (kube.get_pod("default", "p1")["metadata"].get("annotations") or {})
    uid = created["metadata"]["uid"]
    patched = kube.patch_pod("default", "p1", {"metadata": {"uid": uid, "annotations": {"a": "b"}}})
    assert patched["metadata"]["annotations"]["a"] == "b"


def test_events_config_maps_secrets_and_webhook_configurations_round_trip(kube: KubeClient) -> None:
    kube.create_event(
        "default",
        {
            "metadata": {"name": "p1.1"},
            "involvedObject": {"kind": "Pod", "name": "p1"},
            "reason": "Scheduled",
        },
    )
    assert [e["reason"] for e in kube.list_events("default")["items"]] == ["Scheduled"]
    kube.create_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    assert kube.patch_config_map("default", "cm", {"data": {"b": "2"}})["data"] == {"a": "1", "b": "2"}
    kube.create_secret("default", {"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}})
    kube.patch_secret("default", "s", {"data": {"k": "dw=="}})
    assert kube.get_secret("default", "s")["data"] == {"k": "dw=="}
    webhook = {
        "name": "w.hami.io",
        "clientConfig": {"url": "https://127.0.0.1:9443/webhook"},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    kube.create_mutating_webhook_configuration({"metadata": {"name": "hami"}, "webhooks": [webhook]})
    kube.patch_mutating_webhook_configuration("hami", {"metadata": {"labels": {"a": "b"}}})
    assert kube.get_mutating_webhook_configuration("hami")["webhooks"][0]["name"] == "w.hami.io"
    assert kube.list_resource_quotas("default")["items"] == []


def test_pod_requests_default_to_limits(kube: KubeClient) -> None:
    pod = make_pod(
        "p1", containers=[make_container(limits={"nvidia.com/gpu": 1, "cpu": "1"}, requests={"cpu": "500m"})]
    )
    created = kube.create_pod("default", pod)
    assert created["spec"]["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "1", "cpu": "500m"}


class TestRealKubeClientOnly:
    """Transport behaviour of the real client against the emulator."""

    def test_a_watch_older_than_the_servers_history_raises_expired(self) -> None:
        with ApiServer(history_size=2) as server, RealKubeClient(host=server.url) as kube:
            for name in ("a", "b", "c", "d"):
                kube.create_node(make_node(name))
            with pytest.raises(WatchExpiredError) as caught:
                list(kube.watch_nodes(resource_version="1"))
            assert caught.value.status == 410

    def test_an_unreachable_server_is_a_kube_error_without_status(self) -> None:
        with RealKubeClient(host="http://127.0.0.1:9", timeout=2) as kube, pytest.raises(KubeError) as caught:
            kube.get_node("n")
        assert caught.value.status == 0

    def test_a_missing_kubeconfig_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot load Kubernetes credentials"):
            RealKubeClient(kubeconfig=tmp_path / "absent")


class TestFakeKubeOnly:
    """Behaviour the emulator shares but that needs FakeKube's knobs to provoke quickly."""

    def test_watch_from_a_version_older_than_the_history_is_gone(self) -> None:
        kube = FakeKube(history=2)
        for name in ("a", "b", "c", "d"):
            kube.create_node(make_node(name))
        with pytest.raises(WatchExpiredError, match="too old resource version"):
            list(kube.watch_nodes(resource_version="1"))

    def test_watch_replays_recent_history(self) -> None:
        kube = FakeKube(history=2)
        kube.create_node(make_node("a"))
        version = kube.create_node(make_node("b"))["metadata"]["resourceVersion"]
        kube.create_node(make_node("c"))
        assert take(kube.watch_nodes(resource_version=version), 1) == [("ADDED", "c")]

    def test_resource_quotas_can_be_seeded(self) -> None:
        kube = FakeKube()
        kube.create_namespace({"metadata": {"name": "team"}})
        kube.create_resource_quota(
            "team", {"metadata": {"name": "q"}, "spec": {"hard": {"limits.nvidia.com/gpu": "2"}}}
        )
        assert kube.list_resource_quotas()["items"][0]["metadata"]["namespace"] == "team"

    def test_delete_with_finalizers_only_marks_the_object(self) -> None:
        kube = FakeKube()
        pod = make_pod("p1")
        pod["metadata"]["finalizers"] = ["x"]
        kube.create_pod("default", pod)
        kube.delete_pod("default", "p1")
        assert "deletionTimestamp" in kube.get_pod("default", "p1")["metadata"]


@pytest.mark.parametrize(
    ("header", "text"),
    [
        pytest.param('299 - "memory above every device"', "memory above every device", id="plain"),
        pytest.param('299 - "say \\"hi\\""', 'say "hi"', id="escaped-quotes"),
        pytest.param("not a warning header", "not a warning header", id="unparsable-kept"),
    ],
)
def test_warning_header_text_is_unquoted(header: str, text: str) -> None:
    assert warning_text(header) == text
