"""RBAC authorization of requests made with a service-account token."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from hami_core.localcluster import rbac
from hami_core.localcluster.apiserver import ApiServer
from hami_core.localcluster.resources import require
from tests.localcluster.test_apiserver import raw

PODS = require("", "v1", "pods")
LEASES = require("coordination.k8s.io", "v1", "leases")


def request(
    verb: str, rt: Any = PODS, name: str = "", subresource: str = "", namespace: str = "ns"
) -> rbac.Request:
    return rbac.Request("ns", "sa", verb, rt, subresource, namespace, name)


@pytest.mark.parametrize(
    ("rule", "req", "allowed"),
    [
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, request("get", name="p"), True),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, request("list"), False),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, request("watch"), True),
        ({"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]}, request("get", name="p"), False),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
            request("create", name="p", subresource="binding"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]},
            request("create", name="p", subresource="binding"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["*/binding"], "verbs": ["create"]},
            request("create", name="p", subresource="binding"),
            True,
        ),
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, request("delete", LEASES, "l"), True),
        (
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["a"],
                "verbs": ["get"],
            },
            request("get", LEASES, "a"),
            True,
        ),
        (
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["a"],
                "verbs": ["get"],
            },
            request("get", LEASES, "b"),
            False,
        ),
        (
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["a"],
                "verbs": ["create"],
            },
            request("create", LEASES),
            False,
        ),
    ],
)
def test_rule_matching(rule: dict[str, Any], req: rbac.Request, allowed: bool) -> None:
    assert rbac._rule_allows(rule, req) is allowed


@pytest.mark.parametrize(
    ("method", "named", "watch", "verb"),
    [
        ("GET", True, False, "get"),
        ("GET", False, False, "list"),
        ("GET", False, True, "watch"),
        ("POST", False, False, "create"),
        ("PUT", True, False, "update"),
        ("PATCH", True, False, "patch"),
        ("DELETE", True, False, "delete"),
        ("DELETE", False, False, "deletecollection"),
    ],
)
def test_http_methods_map_to_verbs(method: str, named: bool, watch: bool, verb: str) -> None:
    assert rbac.verb_of(method, named=named, watch=watch) == verb


def test_only_service_account_tokens_are_restricted() -> None:
    assert rbac.service_account("Bearer serviceaccount:kube-system:hami") == ("kube-system", "hami")
    assert rbac.service_account("Bearer hami-local") is None
    assert rbac.service_account(None) is None
    assert rbac.service_account("Bearer serviceaccount:nons") is None


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with ApiServer() as running:
        yield running


def as_account(server: ApiServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": "Bearer serviceaccount:default:reader",
            "Content-Type": "application/json",
        }
        conn.request(method, path, data, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_the_api_server_enforces_bindings_for_service_accounts(server: ApiServer) -> None:
    code, status = as_account(server, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 403
    assert status["reason"] == "Forbidden"
    assert (
        'User "system:serviceaccount:default:reader" cannot list resource "configmaps"' in status["message"]
    )
    assert status["message"] in server.rbac_denials
    # Discovery stays open, and the unrestricted kubeconfig token is unaffected.
    assert as_account(server, "GET", "/api/v1")[0] == 200
    assert raw(server, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200

    role = {
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
    }
    binding = {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}],
    }
    assert raw(server, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", role)[0] == 201
    assert (
        raw(server, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", binding)[0]
        == 201
    )
    assert as_account(server, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    # A Role grants in its own namespace only.
    assert as_account(server, "GET", "/api/v1/namespaces/kube-system/configmaps")[0] == 403
