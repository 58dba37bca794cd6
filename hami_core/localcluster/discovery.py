"""Static discovery documents of the API server emulator, derived from the resource table.

Serves what ``kubectl`` and the ``kubernetes`` client ask for: ``/version``, ``/api``,
``/apis``, the group and group/version resource lists, and a minimal OpenAPI v3 (index plus
one document per group/version). The OpenAPI documents only describe each resource's PATCH
operation: its ``fieldValidation`` parameter tells kubectl that the server validates fields
itself, so ``kubectl apply`` works without ``--validate=false``. They deliberately list no
strategic-merge request body and no schemas: kubectl then computes client-side apply patches
from its compiled-in Go types, whose merge keys are exact, instead of from an abbreviated
schema. ``/openapi/v2`` is not served (kubectl only needs it as a fallback).
"""

from __future__ import annotations

import hashlib
import json

from hami_core.localcluster.resources import CRUD_VERBS
from hami_core.localcluster.resources import SUBRESOURCE_VERBS
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType
from hami_core.localcluster.resources import group_versions

KUBE_VERSION = {
    "major": "1",
    "minor": "34",
    "gitVersion": "v1.34.1",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-09-09T00:00:00Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_SUBRESOURCE_KINDS = {"binding": "Binding"}


def api_versions(server_address: str) -> JsonObj:
    """``/api``: the legacy core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str) -> JsonObj:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions() if g == name]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> JsonObj:
    """``/apis``: every named group."""
    names = dict.fromkeys(g for g, _ in group_versions() if g)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(name) for name in names]}


def api_group(name: str) -> JsonObj | None:
    """``/apis/<group>``, or None for an unknown group."""
    if not name or all(g != name for g, _ in group_versions()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1"} | _group(name)


def resource_list(group: str, version: str) -> JsonObj | None:
    """``/api/v1`` or ``/apis/<group>/<version>``: the APIResourceList, or None."""
    resources = group_versions().get((group, version))
    if resources is None:
        return None
    entries: list[JsonObj] = []
    for rt in resources:
        entry: JsonObj = {
            "name": rt.plural,
            "singularName": rt.kind.lower(),
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(CRUD_VERBS),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.plural == "pods":
            entry["categories"] = ["all"]
        entries.append(entry)
        entries.extend(
            {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": _SUBRESOURCE_KINDS.get(sub, rt.kind),
                "verbs": list(SUBRESOURCE_VERBS[sub]),
            }
            for sub in rt.subresources
        )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_index() -> JsonObj:
    """``/openapi/v3``: where each group/version document lives, with a content hash."""
    paths = {}
    for group, version in group_versions():
        path = _gv_path(group, version)
        digest = hashlib.sha512(json.dumps(openapi_v3_document(path)).encode()).hexdigest()[:32]
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}


def openapi_v3_document(path: str) -> JsonObj | None:
    """``/openapi/v3/<api/v1 | apis/g/v>``: one PATCH operation per resource, or None."""
    for (group, version), resources in group_versions().items():
        if _gv_path(group, version) == path:
            return {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
                "paths": dict(_patch_path(rt) for rt in resources),
                "components": {"schemas": {}},
            }
    return None


def _patch_path(rt: ResourceType) -> tuple[str, JsonObj]:
    scope = "namespaces/{namespace}/" if rt.namespaced else ""
    url = f"/{_gv_path(rt.group, rt.version)}/{scope}{rt.plural}/{{name}}"
    body = {"schema": {"type": "object"}}
    operation = {
        "operationId": f"patch{rt.kind}",
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        ],
        "requestBody": {
            "content": {"application/json-patch+json": body, "application/merge-patch+json": body}
        },
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }
    return url, {"patch": operation}
