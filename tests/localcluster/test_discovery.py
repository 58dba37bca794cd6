"""Discovery documents: resource lists, groups and the OpenAPI v3 that kubectl apply consults."""

from __future__ import annotations

from urllib.parse import urlsplit

from hami_core.localcluster import discovery
from hami_core.localcluster.resources import RESOURCES


def test_every_served_resource_is_in_its_group_version_list() -> None:
    for rt in RESOURCES:
        listed = discovery.resource_list(rt.group, rt.version)
        assert listed is not None
        entry = next(r for r in listed["resources"] if r["name"] == rt.plural)
        assert (entry["kind"], entry["namespaced"]) == (rt.kind, rt.namespaced)
        assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(entry["verbs"])


def test_binding_is_a_create_only_subresource() -> None:
    listed = discovery.resource_list("", "v1")
    assert listed is not None
    binding = next(r for r in listed["resources"] if r["name"] == "pods/binding")
    assert (binding["kind"], binding["verbs"]) == ("Binding", ["create"])


def test_unknown_groups_and_versions_have_no_document() -> None:
    assert discovery.resource_list("apps", "v1beta1") is None
    assert discovery.resource_list("", "v2") is None
    assert discovery.api_group("networking.k8s.io") is None
    assert discovery.api_group("") is None
    assert discovery.openapi_v3_document("apis/apps/v1beta1") is None


def test_the_openapi_index_points_at_documents_describing_every_patch() -> None:
    index = discovery.openapi_v3_index()
    assert set(index["paths"]) == {
        "api/v1",
        "apis/coordination.k8s.io/v1",
        "apis/admissionregistration.k8s.io/v1",
        "apis/events.k8s.io/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/policy/v1",
        "apis/rbac.authorization.k8s.io/v1",
    }
    for path, entry in index["paths"].items():
        url = urlsplit(entry["serverRelativeURL"])
        assert url.path == f"/openapi/v3/{path}"
        assert url.query.startswith("hash=")
        document = discovery.openapi_v3_document(path)
        assert document is not None
        kinds = set()
        for operations in document["paths"].values():
            patch = operations["patch"]
            assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
            # No strategic-merge body: kubectl then computes apply patches from its own Go types.
            assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
            kinds.add(patch["x-kubernetes-group-version-kind"]["kind"])
        served = {
            rt.kind for rt in RESOURCES if path == (f"apis/{rt.group}/{rt.version}" if rt.group else "api/v1")
        }
        assert kinds == served
