"""The API server emulator over HTTP, with the official kubernetes client as the client.

These are the semantics of specs/kube-wire.md section 1.2: discovery, metadata, optimistic
concurrency, PATCH by Content-Type, status subresources, pods/binding, deletion, selectors,
watches, the extra resources, snapshot restarts and TLS.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from kubernetes import client
from kubernetes import config
from kubernetes import watch

from hami_core.localcluster import ApiServer
from hami_core.localcluster import ServingTLS

ApiException = client.ApiException
STALE = "the object has been modified; please apply your changes to the latest version and try again"


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(server: ApiServer) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    cfg.host = server.url
    with client.ApiClient(cfg) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    """A fresh namespace per test, so tests sharing the module's server do not see each other."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def raw(
    server: ApiServer, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, http.client.HTTPMessage, Any]:
    """One request without a client library: status, headers and decoded body."""
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    try:
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        conn.request(method, path, data, {"Content-Type": content_type} if data is not None else {})
        resp = conn.getresponse()
        payload = resp.read()
        decoded = json.loads(payload) if resp.headers.get("Content-Type") == "application/json" else payload
        return resp.status, resp.headers, decoded
    finally:
        conn.close()


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def rv_of(obj: Any) -> int:
    return int(obj.metadata.resource_version)


def status_of(err: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.value.body)
    return body


def cluster_rv(core: client.CoreV1Api) -> int:
    return int(core.list_namespace().metadata.resource_version)


class TestDiscovery:
    def test_version_reports_a_1_34_server(self, server: ApiServer) -> None:
        for path in ("/version", "/version/"):
            code, _, body = raw(server, "GET", path)
            assert code == 200
            assert (body["major"], body["minor"]) == ("1", "34")
            assert body["gitVersion"].startswith("v1.34.")

    def test_legacy_and_named_groups_are_listed(self, server: ApiServer) -> None:
        assert raw(server, "GET", "/api")[2]["versions"] == ["v1"]
        groups = {
            g["name"]: g["preferredVersion"]["groupVersion"] for g in raw(server, "GET", "/apis")[2]["groups"]
        }
        assert groups == {
            "coordination.k8s.io": "coordination.k8s.io/v1",
            "admissionregistration.k8s.io": "admissionregistration.k8s.io/v1",
            "events.k8s.io": "events.k8s.io/v1",
            "apps": "apps/v1",
            "batch": "batch/v1",
            "policy": "policy/v1",
            "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1",
        }
        assert raw(server, "GET", "/apis/coordination.k8s.io")[2]["kind"] == "APIGroup"

    def test_core_v1_lists_the_served_resources_and_subresources(self, server: ApiServer) -> None:
        body = raw(server, "GET", "/api/v1")[2]
        assert body["groupVersion"] == "v1"
        names = {r["name"] for r in body["resources"]}
        assert names == {
            "pods",
            "pods/binding",
            "pods/status",
            "nodes",
            "nodes/status",
            "configmaps",
            "secrets",
            "events",
            "namespaces",
            "namespaces/status",
            "resourcequotas",
            "resourcequotas/status",
            "serviceaccounts",
            "services",
            "services/status",
        }

    def test_the_python_client_reads_group_resource_lists(self, api: client.ApiClient) -> None:
        leases = client.CoordinationV1Api(api).get_api_resources()
        assert [r.name for r in leases.resources] == ["leases"]
        webhooks = client.AdmissionregistrationV1Api(api).get_api_resources()
        assert webhooks.resources[0].kind == "MutatingWebhookConfiguration"

    def test_unknown_paths_are_404_status_bodies(self, server: ApiServer) -> None:
        for path in (
            "/api/v1/widgets",
            "/apis/nope/v1",
            "/apis/apps/v1/namespaces/default/statefulsets",
            "/x",
        ):
            code, _, body = raw(server, "GET", path)
            assert code == 404, path
            assert body["kind"] == "Status"
            assert body["reason"] == "NotFound"

    def test_health_endpoints_answer_ok(self, server: ApiServer) -> None:
        assert raw(server, "GET", "/healthz")[:1] == (200,)


class TestMetadata:
    def test_default_namespaces_exist_at_start(self, core: client.CoreV1Api) -> None:
        names = {n.metadata.name for n in core.list_namespace().items}
        assert {"default", "kube-system"} <= names
        assert core.read_namespace("default").metadata.labels == {"kubernetes.io/metadata.name": "default"}

    def test_create_sets_uid_timestamp_version_and_generation(self, core: client.CoreV1Api, ns: str) -> None:
        created = core.create_namespaced_pod(ns, pod("p1"))
        assert uuid.UUID(created.metadata.uid).version == 4
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw_field(core, ns, "p1", "creationTimestamp")
        )
        assert rv_of(created) > 0
        assert created.metadata.generation == 1
        assert created.status.phase == "Pending"
        assert created.spec.scheduler_name == "default-scheduler"

    def test_generate_name_appends_five_characters(self, core: client.CoreV1Api, ns: str) -> None:
        created = core.create_namespaced_pod(ns, {**pod(""), "metadata": {"generateName": "job-"}})
        assert re.fullmatch(r"job-[a-z0-9]{5}", created.metadata.name)

    def test_every_write_bumps_the_cluster_wide_version(self, core: client.CoreV1Api, ns: str) -> None:
        first = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        second = core.create_namespaced_pod(ns, pod("p"))
        third = core.patch_namespaced_config_map("a", ns, {"data": {"k": "v"}})
        assert rv_of(first) < rv_of(second) < rv_of(third)
        assert cluster_rv(core) == rv_of(third)

    def test_creating_an_existing_name_is_409_already_exists(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_pod(ns, pod("p1"))
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_pod(ns, pod("p1"))
        assert caught.value.status == 409
        assert status_of(caught) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'pods "p1" already exists',
            "reason": "AlreadyExists",
            "details": {"name": "p1", "kind": "pods"},
            "code": 409,
        }

    def test_reading_or_deleting_a_missing_object_is_404(self, core: client.CoreV1Api, ns: str) -> None:
        for call in (core.read_namespaced_pod, core.delete_namespaced_pod):
            with pytest.raises(ApiException) as caught:
                call("p1", ns)
            assert caught.value.status == 404
            assert status_of(caught)["message"] == 'pods "p1" not found'
            assert status_of(caught)["reason"] == "NotFound"

    def test_creating_in_a_missing_namespace_is_404(self, core: client.CoreV1Api) -> None:
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_pod("nowhere", pod("p1"))
        assert status_of(caught)["message"] == 'namespaces "nowhere" not found'

    def test_a_body_namespace_that_differs_from_the_url_is_400(self, core: client.CoreV1Api, ns: str) -> None:
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_pod(ns, {**pod("p"), "metadata": {"name": "p", "namespace": "default"}})
        assert caught.value.status == 400

    def test_invalid_names_and_specs_are_422(self, core: client.CoreV1Api, ns: str) -> None:
        for body in (pod("Not_A_Name"), {"metadata": {"name": "p"}, "spec": {"containers": []}}):
            with pytest.raises(ApiException) as caught:
                core.create_namespaced_pod(ns, body)
            assert caught.value.status == 422
            assert status_of(caught)["reason"] == "Invalid"

    def test_container_names_must_be_unique_in_pods_and_pod_templates(
        self, api: client.ApiClient, core: client.CoreV1Api, ns: str
    ) -> None:
        """As kube-apiserver: an init container may not share a regular container's name."""
        spec = {"initContainers": [{"name": "a", "image": "x"}], "containers": [{"name": "a", "image": "x"}]}
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_pod(ns, {"metadata": {"name": "p"}, "spec": spec})
        assert caught.value.status == 422
        assert 'spec.initContainers[0].name: Duplicate value: "a"' in status_of(caught)["message"]
        deployment = {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec},
            },
        }
        with pytest.raises(ApiException) as caught:
            client.AppsV1Api(api).create_namespaced_deployment(ns, deployment)
        assert caught.value.status == 422
        assert (
            'spec.template.spec.initContainers[0].name: Duplicate value: "a"' in status_of(caught)["message"]
        )

    def test_dry_run_creates_nothing(self, core: client.CoreV1Api, ns: str) -> None:
        before = cluster_rv(core)
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}}, dry_run="All")
        assert core.list_namespaced_config_map(ns).items == []
        assert cluster_rv(core) == before


def raw_field(core: client.CoreV1Api, ns: str, name: str, field: str) -> str:
    resp = core.read_namespaced_pod(name, ns, _preload_content=False)
    value: str = json.loads(resp.data)["metadata"][field]
    return value


class TestDecoding:
    def test_numeric_quantities_are_stored_as_strings(self, server: ApiServer, ns: str) -> None:
        resources = {"limits": {"nvidia.com/gpu": 1, "cpu": 0.5}}
        body = pod("p") | {"spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}}
        code, _, created = raw(server, "POST", f"/api/v1/namespaces/{ns}/pods", body)
        assert code == 201
        assert created["spec"]["containers"][0]["resources"]["limits"] == {
            "nvidia.com/gpu": "1",
            "cpu": "500m",
        }
        node = {"metadata": {"name": f"q-{ns}"}, "status": {"capacity": {"nvidia.com/gpu": 4}}}
        assert raw(server, "POST", "/api/v1/nodes", node)[2]["status"]["capacity"] == {"nvidia.com/gpu": "4"}
        raw(server, "DELETE", f"/api/v1/nodes/q-{ns}")

    def test_pod_requests_default_to_limits(self, core: client.CoreV1Api, ns: str) -> None:
        resources = {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}, "requests": {"cpu": "1"}}
        created = core.create_namespaced_pod(
            ns, pod("p") | {"spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}}
        )
        assert created.spec.containers[0].resources.requests == {"cpu": "1", "nvidia.com/gpu": "1"}

    def test_yaml_bodies_are_accepted(self, server: ApiServer, core: client.CoreV1Api, ns: str) -> None:
        body = b"metadata:\n  name: from-yaml\ndata:\n  k: v\n"
        code, _, created = raw(
            server, "POST", f"/api/v1/namespaces/{ns}/configmaps", body, "application/yaml"
        )
        assert (code, created["data"]) == (201, {"k": "v"})
        assert core.read_namespaced_config_map("from-yaml", ns).data == {"k": "v"}

    def test_protobuf_bodies_are_unsupported_media(self, server: ApiServer, ns: str) -> None:
        code, _, status = raw(
            server,
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            b"k8s\x00",
            "application/vnd.kubernetes.protobuf",
        )
        assert code == 415
        assert status["reason"] == "UnsupportedMediaType"


class TestTables:
    ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

    def get(self, server: ApiServer, path: str) -> Any:
        conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
        conn.request("GET", path, headers={"Accept": self.ACCEPT})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return json.loads(body) if "watch" not in path else [json.loads(line) for line in body.splitlines()]

    def test_pods_and_nodes_come_as_tables_when_asked(
        self, server: ApiServer, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        listed = self.get(server, f"/api/v1/namespaces/{ns}/pods")
        assert listed["kind"] == "Table"
        assert [row["cells"][0] for row in listed["rows"]] == ["p"]
        assert listed["rows"][0]["object"]["metadata"]["name"] == "p"
        assert self.get(server, f"/api/v1/namespaces/{ns}/pods/p")["kind"] == "Table"
        assert self.get(server, "/api/v1/nodes")["kind"] == "Table"
        assert self.get(server, f"/api/v1/namespaces/{ns}/pods/p/status")["kind"] == "Pod"

    def test_watch_events_carry_one_row_tables(
        self, server: ApiServer, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        [event] = self.get(server, f"/api/v1/namespaces/{ns}/pods?watch=1&timeoutSeconds=1")
        assert (event["type"], event["object"]["kind"]) == ("ADDED", "Table")
        assert event["object"]["rows"][0]["cells"][:3] == ["p", "0/1", "Pending"]

    def test_other_resources_stay_plain_lists(self, server: ApiServer, ns: str) -> None:
        assert self.get(server, f"/api/v1/namespaces/{ns}/configmaps")["kind"] == "ConfigMapList"


class TestConcurrency:
    def test_put_with_a_stale_version_is_409_conflict(self, core: client.CoreV1Api, ns: str) -> None:
        created = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
        stale = {"metadata": {"name": "a", "resourceVersion": created.metadata.resource_version}, "data": {}}
        with pytest.raises(ApiException) as caught:
            core.replace_namespaced_config_map("a", ns, stale)
        assert caught.value.status == 409
        assert status_of(caught)["reason"] == "Conflict"
        assert status_of(caught)["message"] == f'Operation cannot be fulfilled on configmaps "a": {STALE}'

    def test_put_with_the_current_version_succeeds(self, core: client.CoreV1Api, ns: str) -> None:
        node_name = f"n-{ns}"
        created = core.create_node({"metadata": {"name": node_name}})
        created.metadata.annotations = {"lock": "held"}
        updated = core.replace_node(node_name, created)
        assert updated.metadata.annotations == {"lock": "held"}
        assert rv_of(updated) > rv_of(created)
        core.delete_node(node_name)

    def test_put_without_a_version_is_unconditional(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        updated = core.replace_namespaced_config_map("a", ns, {"metadata": {"name": "a"}, "data": {"k": "v"}})
        assert updated.data == {"k": "v"}

    def test_a_patch_carrying_a_stale_version_is_409(self, core: client.CoreV1Api, ns: str) -> None:
        created = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
        patch = {"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"x": "2"}}
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map("a", ns, patch, _content_type="application/merge-patch+json")
        assert caught.value.status == 409
        assert core.read_namespaced_config_map("a", ns).data == {"x": "1"}

    def test_delete_preconditions_are_checked(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        for preconditions in ({"uid": "other"}, {"resourceVersion": "1"}):
            with pytest.raises(ApiException) as caught:
                core.delete_namespaced_config_map("a", ns, body={"preconditions": preconditions})
            assert caught.value.status == 409
            assert "Precondition failed" in status_of(caught)["message"]
        core.read_namespaced_config_map("a", ns)


class TestPatch:
    def test_dict_bodies_are_strategic_merges_of_containers_and_env(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "a", "env": [{"name": "A", "value": "1"}]},
                        {"name": "d", "image": "b"},
                    ]
                },
            },
        )
        # Images are the part of a pod's containers an update may change (kube-apiserver's rule).
        patched = core.patch_namespaced_pod("p", ns, {"spec": {"containers": [{"name": "d", "image": "c"}]}})
        assert [(c.name, c.image) for c in patched.spec.containers] == [("c", "a"), ("d", "c")]
        assert [(e.name, e.value) for e in patched.spec.containers[0].env] == [("A", "1")]
        added = {"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}}
        with pytest.raises(client.ApiException) as refused:
            core.patch_namespaced_pod("p", ns, added)
        assert refused.value.status == 422
        assert "pod updates may not change fields other than" in str(refused.value.body)

    def test_merge_patch_replaces_lists(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_pod(ns, pod("p", tolerations=[{"key": "a"}]))
        patch = {"spec": {"tolerations": [{"key": "b"}, {"key": "a"}]}, "metadata": {"labels": {"l": "1"}}}
        patched = core.patch_namespaced_pod("p", ns, patch, _content_type="application/merge-patch+json")
        assert [t.key for t in patched.spec.tolerations] == ["b", "a"]
        assert patched.metadata.labels == {"l": "1"}
        with pytest.raises(client.ApiException) as refused:
            core.patch_namespaced_pod(
                "p",
                ns,
                {"spec": {"tolerations": [{"key": "c"}]}},
                _content_type="application/merge-patch+json",
            )
        assert refused.value.status == 422

    def test_list_bodies_are_json_patches_with_test(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"k": "v"}})
        ops = [
            {"op": "test", "path": "/data/k", "value": "v"},
            {"op": "replace", "path": "/data/k", "value": "w"},
        ]
        assert core.patch_namespaced_config_map("a", ns, ops).data == {"k": "w"}
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map("a", ns, [{"op": "test", "path": "/data/k", "value": "v"}])
        assert caught.value.status == 422
        assert core.read_namespaced_config_map("a", ns).data == {"k": "w"}

    @pytest.mark.parametrize(
        ("content_type", "body", "code"),
        [
            pytest.param("application/apply-patch+yaml", b"data: {}", 415, id="server-side-apply"),
            pytest.param("text/plain", b"{}", 415, id="unknown-type"),
            pytest.param("application/merge-patch+json", b"{nope", 400, id="invalid-json"),
            pytest.param("application/merge-patch+json", b"[1]", 400, id="merge-patch-not-object"),
            pytest.param("application/json-patch+json", b'{"op": "add"}', 400, id="json-patch-not-list"),
            pytest.param(
                "application/json-patch+json", b'[{"op":"remove","path":"/x"}]', 422, id="json-patch-misses"
            ),
            pytest.param(
                "application/strategic-merge-patch+json", b'{"metadata":{"$patch":"x"}}', 400, id="directive"
            ),
        ],
    )
    def test_bad_patches_get_their_status_and_change_nothing(
        self, server: ApiServer, core: client.CoreV1Api, ns: str, content_type: str, body: bytes, code: int
    ) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        before = cluster_rv(core)
        status, _, reply = raw(server, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/a", body, content_type)
        assert status == code
        assert (reply["kind"], reply["code"]) == ("Status", code)
        assert cluster_rv(core) == before

    def test_patching_a_missing_object_is_404(self, core: client.CoreV1Api, ns: str) -> None:
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map("a", ns, {"data": {}})
        assert caught.value.status == 404

    def test_changing_the_name_through_a_patch_is_refused(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map(
                "a", ns, [{"op": "replace", "path": "/metadata/name", "value": "b"}]
            )
        assert caught.value.status == 422

    def test_a_patch_naming_another_uid_is_refused_and_changes_nothing(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        created = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        with pytest.raises(ApiException) as caught:
            core.patch_namespaced_config_map("a", ns, {"metadata": {"uid": "other", "labels": {"x": "y"}}})
        assert caught.value.status == 422
        assert "metadata.uid" in status_of(caught)["message"]
        uid = created.metadata.uid
        patched = core.patch_namespaced_config_map("a", ns, {"metadata": {"uid": uid, "labels": {"x": "y"}}})
        assert patched.metadata.labels == {"x": "y"}


class TestBadRequests:
    @pytest.mark.parametrize(
        ("method", "path", "body", "code"),
        [
            pytest.param("POST", "/api/v1/namespaces/{ns}/configmaps", b"{nope", 400, id="invalid-json"),
            pytest.param("POST", "/api/v1/namespaces/{ns}/configmaps", b"[]", 400, id="not-an-object"),
            pytest.param(
                "POST",
                "/api/v1/namespaces/{ns}/configmaps",
                b'{"kind":"Pod","metadata":{"name":"x"}}',
                400,
                id="wrong-kind",
            ),
            pytest.param(
                "POST",
                "/api/v1/namespaces/{ns}/configmaps",
                b'{"metadata":{"name":"x","labels":{"a":1}}}',
                400,
                id="label-not-string",
            ),
            pytest.param("POST", "/api/v1/namespaces/{ns}/widgets", b"{}", 404, id="unknown-resource"),
            pytest.param("POST", "/api/v1/pods", b"{}", 405, id="create-without-namespace"),
            pytest.param("PUT", "/api/v1/namespaces/{ns}/configmaps", b"{}", 405, id="put-on-collection"),
            pytest.param(
                "GET",
                "/api/v1/namespaces/{ns}/pods?labelSelector=a%20in%20b",
                None,
                400,
                id="bad-label-selector",
            ),
            pytest.param(
                "GET",
                "/api/v1/namespaces/{ns}/pods?fieldSelector=spec.color%3Dred",
                None,
                400,
                id="bad-field-selector",
            ),
            pytest.param(
                "GET", "/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion=abc", None, 400, id="bad-version"
            ),
            pytest.param(
                "POST",
                "/api/v1/namespaces/{ns}/configmaps?dryRun=Some",
                b'{"metadata":{"name":"x"}}',
                400,
                id="bad-dry-run",
            ),
        ],
    )
    def test_bad_requests_get_status_bodies_and_change_nothing(
        self,
        server: ApiServer,
        core: client.CoreV1Api,
        ns: str,
        method: str,
        path: str,
        body: bytes | None,
        code: int,
    ) -> None:
        before = cluster_rv(core)
        status, _, reply = raw(server, method, path.format(ns=ns), body)
        assert status == code
        assert (reply["kind"], reply["status"], reply["code"]) == ("Status", "Failure", code)
        assert cluster_rv(core) == before


class TestStatusSubresource:
    def test_status_writes_keep_the_spec(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        patch = {
            "status": {"phase": "Running"},
            "metadata": {"labels": {"x": "y"}},
            "spec": {"nodeName": "n"},
        }
        patched = core.patch_namespaced_pod_status("p", ns, patch)
        assert patched.status.phase == "Running"
        # As kube-apiserver's status strategy: labels and annotations are written, the spec is not.
        assert patched.metadata.labels == {"x": "y"}
        assert patched.spec.node_name is None

    def test_main_resource_writes_ignore_pod_status(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_pod(ns, {**pod("p"), "status": {"phase": "Running"}})
        assert core.read_namespaced_pod("p", ns).status.phase == "Pending"
        patched = core.patch_namespaced_pod(
            "p", ns, {"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "b"}}}
        )
        assert patched.status.phase == "Pending"
        assert patched.metadata.labels == {"a": "b"}

    def test_node_status_is_owned_by_the_status_subresource(self, core: client.CoreV1Api, ns: str) -> None:
        name = f"n-{ns}"
        core.create_node({"metadata": {"name": name}, "status": {"capacity": {"cpu": "4"}}})
        core.patch_node(name, {"status": {"capacity": {"cpu": "8"}}})
        assert core.read_node(name).status.capacity == {"cpu": "4"}
        core.patch_node_status(name, {"status": {"capacity": {"cpu": "8", "memory": "16Gi"}}})
        node = core.read_node(name)
        assert node.status.capacity == {"cpu": "8", "memory": "16Gi"}
        replaced = core.replace_node_status(
            name, {"metadata": {"name": name}, "status": {"allocatable": {"cpu": "1"}}}
        )
        assert replaced.status.capacity is None
        core.delete_node(name)


class TestBinding:
    def bind(self, core: client.CoreV1Api, ns: str, name: str, target: dict[str, Any], **meta: Any) -> Any:
        body = {"metadata": {"name": name, **meta}, "target": target}
        return core.create_namespaced_pod_binding(name, ns, body, _preload_content=False)

    def test_binding_sets_the_node_annotations_and_pod_scheduled(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        resp = self.bind(core, ns, "p", {"name": "n1"}, annotations={"a": "b"})
        assert resp.status == 201
        assert json.loads(resp.data) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
        bound = core.read_namespaced_pod("p", ns)
        assert bound.spec.node_name == "n1"
        assert bound.metadata.annotations == {"a": "b"}
        assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]

    def test_binding_a_bound_pod_is_409_with_the_apiserver_message(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        self.bind(core, ns, "p", {"name": "n1"})
        with pytest.raises(ApiException) as caught:
            self.bind(core, ns, "p", {"name": "n2"})
        assert caught.value.status == 409
        message = 'Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1"'
        assert status_of(caught)["message"] == message
        assert core.read_namespaced_pod("p", ns).spec.node_name == "n1"

    def test_binding_preconditions_and_targets_are_checked(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        for target, meta, code in (
            ({"name": "n", "kind": "Pod"}, {}, 422),
            ({}, {}, 422),
            ({"name": "n"}, {"uid": "other"}, 409),
            ({"name": "n"}, {"resourceVersion": "1"}, 409),
        ):
            with pytest.raises(ApiException) as caught:
                self.bind(core, ns, "p", target, **meta)
            assert caught.value.status == code
        assert core.read_namespaced_pod("p", ns).spec.node_name is None

    def test_binding_a_pod_being_deleted_fails(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_pod(ns, {**pod("p"), "metadata": {"name": "p", "finalizers": ["x/y"]}})
        core.delete_namespaced_pod("p", ns)
        with pytest.raises(ApiException) as caught:
            self.bind(core, ns, "p", {"name": "n"})
        assert (
            status_of(caught)["message"]
            == "Internal error occurred: pod p is being deleted, cannot be assigned to a host"
        )

    def test_binding_a_missing_pod_is_404(self, core: client.CoreV1Api, ns: str) -> None:
        with pytest.raises(ApiException) as caught:
            self.bind(core, ns, "p", {"name": "n"})
        assert caught.value.status == 404


class TestDeletion:
    def test_delete_without_finalizers_removes_and_returns_the_pod(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(ns, pod("p"))
        deleted = core.delete_namespaced_pod("p", ns, grace_period_seconds=0)
        assert deleted.metadata.name == "p"
        assert core.list_namespaced_pod(ns).items == []

    def test_delete_of_a_configmap_answers_a_success_status(
        self, server: ApiServer, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        status, _, body = raw(server, "DELETE", f"/api/v1/namespaces/{ns}/configmaps/a")
        assert status == 200
        assert (body["kind"], body["status"], body["details"]["name"]) == ("Status", "Success", "a")

    def test_finalizers_turn_delete_into_a_deletion_timestamp(
        self, server: ApiServer, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_pod(
            ns, {**pod("p"), "metadata": {"name": "p", "finalizers": ["example.com/f"]}}
        )
        status, _, body = raw(server, "DELETE", f"/api/v1/namespaces/{ns}/pods/p")
        assert status == 202
        assert body["metadata"]["deletionTimestamp"].endswith("Z")
        assert body["metadata"]["deletionGracePeriodSeconds"] == 0
        core.patch_namespaced_pod(
            "p", ns, {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json"
        )
        assert core.list_namespaced_pod(ns).items == []

    def test_delete_collection_removes_what_the_selector_matches(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        for name, app in (("a", "x"), ("b", "y"), ("c", "x")):
            core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"app": app}}})
        core.delete_collection_namespaced_config_map(ns, label_selector="app=x")
        assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["b"]


class TestSelectors:
    @pytest.fixture
    def pods(self, core: client.CoreV1Api, ns: str) -> str:
        core.create_namespaced_pod(
            ns,
            {
                **pod("a", schedulerName="hami-scheduler"),
                "metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}},
            },
        )
        core.create_namespaced_pod(ns, {**pod("b"), "metadata": {"name": "b", "labels": {"app": "db"}}})
        core.create_namespaced_pod(ns, {**pod("c"), "metadata": {"name": "c"}})
        core.create_namespaced_pod_binding(
            "c", ns, {"metadata": {"name": "c"}, "target": {"name": "n1"}}, _preload_content=False
        )
        return ns

    @pytest.mark.parametrize(
        ("selector", "names"),
        [
            pytest.param("app=web", ["a"], id="equals"),
            pytest.param("app==db", ["b"], id="double-equals"),
            pytest.param("app!=web", ["b", "c"], id="not-equals"),
            pytest.param("app in (web,db)", ["a", "b"], id="in"),
            pytest.param("app notin (web)", ["b", "c"], id="notin"),
            pytest.param("tier", ["a"], id="exists"),
            pytest.param("!app", ["c"], id="not-exists"),
        ],
    )
    def test_label_selectors(
        self, core: client.CoreV1Api, pods: str, selector: str, names: list[str]
    ) -> None:
        assert [
            p.metadata.name for p in core.list_namespaced_pod(pods, label_selector=selector).items
        ] == names

    @pytest.mark.parametrize(
        ("selector", "names"),
        [
            pytest.param("metadata.name=b", ["b"], id="name"),
            pytest.param("spec.nodeName=", ["a", "b"], id="unscheduled"),
            pytest.param("spec.nodeName=n1", ["c"], id="node"),
            pytest.param("spec.schedulerName=hami-scheduler", ["a"], id="scheduler"),
            pytest.param("status.phase=Pending,metadata.name!=a", ["b", "c"], id="phase-and-not-name"),
        ],
    )
    def test_field_selectors(
        self, core: client.CoreV1Api, pods: str, selector: str, names: list[str]
    ) -> None:
        assert [
            p.metadata.name for p in core.list_namespaced_pod(pods, field_selector=selector).items
        ] == names

    def test_field_selectors_work_across_namespaces(self, core: client.CoreV1Api, pods: str) -> None:
        found = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={pods},spec.nodeName=n1")
        assert [p.metadata.name for p in found.items] == ["c"]

    def test_node_field_selectors(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_node({"metadata": {"name": f"cordoned-{ns}"}, "spec": {"unschedulable": True}})
        names = [n.metadata.name for n in core.list_node(field_selector="spec.unschedulable=true").items]
        assert names == [f"cordoned-{ns}"]
        core.delete_node(f"cordoned-{ns}")

    def test_a_list_carries_the_current_version_and_items_their_own(
        self, core: client.CoreV1Api, pods: str
    ) -> None:
        listed = core.list_namespaced_pod(pods)
        assert int(listed.metadata.resource_version) == cluster_rv(core)
        assert len({p.metadata.resource_version for p in listed.items}) == 3


def stream_events(core: client.CoreV1Api, ns: str, count: int, **kwargs: Any) -> list[tuple[str, str]]:
    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    for event in w.stream(core.list_namespaced_config_map, ns, **kwargs):
        seen.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
        if len(seen) == count:
            w.stop()
    return seen


class TestWatch:
    def test_watch_from_a_version_replays_added_modified_deleted(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        start = cluster_rv(core)
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        core.patch_namespaced_config_map("a", ns, {"data": {"k": "v"}})
        core.delete_namespaced_config_map("a", ns)
        events = stream_events(core, ns, 3, resource_version=str(start), timeout_seconds=5)
        assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]

    def test_watch_without_a_version_starts_with_current_objects(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
        assert stream_events(core, ns, 1, timeout_seconds=5) == [("ADDED", "a")]

    def test_events_are_in_resource_version_order(self, core: client.CoreV1Api, ns: str) -> None:
        start = cluster_rv(core)
        for i in range(5):
            core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{i}"}})
        w = watch.Watch()
        rvs = []
        for event in w.stream(
            core.list_namespaced_config_map, ns, resource_version=str(start), timeout_seconds=5
        ):
            rvs.append(int(event["raw_object"]["metadata"]["resourceVersion"]))
            if len(rvs) == 5:
                w.stop()
        assert rvs == sorted(rvs)

    def test_an_object_leaving_the_selector_is_deleted_for_that_watcher(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        start = cluster_rv(core)
        core.create_namespaced_config_map(ns, {"metadata": {"name": "a", "labels": {"app": "x"}}})
        core.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"app": "y"}}})
        core.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"app": "x"}}})
        events = stream_events(
            core, ns, 3, resource_version=str(start), label_selector="app=x", timeout_seconds=5
        )
        assert events == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a")]

    def test_timeout_seconds_ends_the_stream(self, core: client.CoreV1Api, ns: str) -> None:
        assert stream_events(core, ns, 99, timeout_seconds=1) == []

    def test_bookmarks_carry_a_resource_version(self, server: ApiServer, ns: str) -> None:
        conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
        conn.request(
            "GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&allowWatchBookmarks=true&timeoutSeconds=1"
        )
        resp = conn.getresponse()
        assert resp.headers["Transfer-Encoding"] == "chunked"
        lines = [json.loads(line) for line in resp.read().splitlines()]
        conn.close()
        assert lines
        assert {line["type"] for line in lines} == {"BOOKMARK"}
        assert lines[0]["object"]["metadata"]["resourceVersion"].isdigit()

    def test_watch_from_a_version_older_than_history_is_410_gone(self, ns: str) -> None:
        with ApiServer(history_size=2) as small:
            cfg = client.Configuration()
            cfg.host = small.url
            with client.ApiClient(cfg) as api_client:
                core = client.CoreV1Api(api_client)
                for i in range(4):
                    core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
                code, _, _ = raw(
                    small, "GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1"
                )
                assert code == 200
                with pytest.raises(ApiException) as caught:
                    stream_events(core, "default", 1, resource_version="1", timeout_seconds=2)
                assert caught.value.status == 410
                assert "too old resource version: 1" in str(caught.value)


class TestOtherResources:
    def test_leases_have_the_same_conflict_semantics(self, api: client.ApiClient, ns: str) -> None:
        leases = client.CoordinationV1Api(api)
        created = leases.create_namespaced_lease(
            ns, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}
        )
        version = created.metadata.resource_version
        current = {
            "metadata": {"name": "leader", "resourceVersion": version},
            "spec": {"holderIdentity": "b"},
        }
        leases.replace_namespaced_lease("leader", ns, current)
        stale = {"metadata": {"name": "leader", "resourceVersion": version}, "spec": {"holderIdentity": "c"}}
        with pytest.raises(ApiException) as caught:
            leases.replace_namespaced_lease("leader", ns, stale)
        message = f'Operation cannot be fulfilled on leases.coordination.k8s.io "leader": {STALE}'
        assert status_of(caught)["message"] == message
        assert leases.read_namespaced_lease("leader", ns).spec.holder_identity == "b"

    def test_events_are_accepted_and_selectable_by_involved_object(
        self, core: client.CoreV1Api, ns: str
    ) -> None:
        core.create_namespaced_event(
            ns,
            {
                "metadata": {"name": "e1"},
                "involvedObject": {"kind": "Pod", "name": "p"},
                "reason": "Scheduled",
            },
        )
        core.create_namespaced_event(
            ns,
            {"metadata": {"name": "e2"}, "involvedObject": {"kind": "Pod", "name": "q"}, "reason": "Failed"},
        )
        found = core.list_namespaced_event(ns, field_selector="involvedObject.name=p,involvedObject.kind=Pod")
        assert [e.metadata.name for e in found.items] == ["e1"]

    def test_secret_string_data_is_stored_base64_encoded(self, core: client.CoreV1Api, ns: str) -> None:
        created = core.create_namespaced_secret(ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        assert (created.type, created.data) == ("Opaque", {"k": "dg=="})

    def test_resource_quota_status_is_a_subresource(self, core: client.CoreV1Api, ns: str) -> None:
        core.create_namespaced_resource_quota(
            ns, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}}
        )
        core.patch_namespaced_resource_quota_status("q", ns, {"status": {"used": {"pods": "1"}}})
        assert core.read_namespaced_resource_quota("q", ns).status.used == {"pods": "1"}

    def test_webhook_configurations_are_cluster_scoped(self, api: client.ApiClient, ns: str) -> None:
        admission = client.AdmissionregistrationV1Api(api)
        body = {"metadata": {"name": f"w-{ns}"}, "webhooks": []}
        admission.create_mutating_webhook_configuration(body)
        names = [w.metadata.name for w in admission.list_mutating_webhook_configuration().items]
        assert f"w-{ns}" in names
        admission.delete_mutating_webhook_configuration(f"w-{ns}")


class TestRestart:
    def test_a_restart_with_a_state_file_loses_nothing(self, tmp_path: Path) -> None:
        state = tmp_path / "state.json"
        with ApiServer(state_file=state) as first:
            cfg = client.Configuration()
            cfg.host = first.url
            with client.ApiClient(cfg) as api_client:
                core = client.CoreV1Api(api_client)
                core.create_namespaced_pod("default", pod("p"))
                core.create_node({"metadata": {"name": "n1", "annotations": {"a": "b"}}})
                before = core.read_namespaced_pod("p", "default")
                last = cluster_rv(core)
        with ApiServer(state_file=state) as second:
            cfg = client.Configuration()
            cfg.host = second.url
            with client.ApiClient(cfg) as api_client:
                core = client.CoreV1Api(api_client)
                after = core.read_namespaced_pod("p", "default")
                assert (after.metadata.uid, after.metadata.resource_version) == (
                    before.metadata.uid,
                    before.metadata.resource_version,
                )
                assert core.read_node("n1").metadata.annotations == {"a": "b"}
                assert cluster_rv(core) == last
                assert (
                    rv_of(core.create_namespaced_config_map("default", {"metadata": {"name": "c"}}))
                    == last + 1
                )

    def test_the_same_object_restarts_on_the_same_port(self, tmp_path: Path) -> None:
        server = ApiServer(state_file=tmp_path / "s.json")
        with server:
            url = server.url
            raw(server, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
        with server:
            assert server.url == url
            assert raw(server, "GET", "/api/v1/namespaces/default/configmaps/c")[0] == 200


class TestKubeconfig:
    def test_the_client_loads_the_written_kubeconfig(self, server: ApiServer, tmp_path: Path) -> None:
        path = server.write_kubeconfig(tmp_path / "kubeconfig")
        with config.new_client_from_config(config_file=str(path)) as api_client:
            assert client.CoreV1Api(api_client).read_namespace("default").metadata.name == "default"

    def test_tls_serving_is_verified_through_the_kubeconfig_ca(self, tmp_path: Path) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "chain.pem")
        cert.private_key_pem.write_to_path(tmp_path / "key.pem")
        ca.cert_pem.write_to_path(tmp_path / "ca.pem")
        tls = ServingTLS(tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
        with ApiServer(tls=tls) as secure:
            assert secure.url.startswith("https://127.0.0.1:")
            path = secure.write_kubeconfig(tmp_path / "kubeconfig")
            with config.new_client_from_config(config_file=str(path)) as api_client:
                assert (
                    client.CoreV1Api(api_client).read_namespace("kube-system").metadata.name == "kube-system"
                )
            untrusted = ssl.create_default_context()
            conn = http.client.HTTPSConnection(urlsplit(secure.url).netloc, context=untrusted, timeout=5)
            with pytest.raises(ssl.SSLCertVerificationError):
                conn.request("GET", "/version")
            conn.close()
