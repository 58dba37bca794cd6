"""RBAC authorization in the API server emulator, for requests made as a service account.

The emulator authenticates nobody. A request whose bearer token is ``serviceaccount:<namespace>:<name>``
acts as that service account and is authorized as kube-apiserver's RBAC authorizer would: allowed
when a rule of a ClusterRole bound by a ClusterRoleBinding, or of a Role or ClusterRole bound by a
RoleBinding in the request's namespace, matches its verb, API group, resource (with subresource)
and object name. Any other token, like the kubeconfig's own, is unrestricted. Discovery documents
are open to everyone, as ``system:discovery`` makes them. Every refusal is kept in
:attr:`Authorizer.denials`, so a test can show that processes needed nothing they were not granted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import attrs

from hami_core.localcluster import statuses
from hami_core.localcluster.registry import Registry
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType
from hami_core.localcluster.resources import require

TOKEN_PREFIX = "serviceaccount:"
_RBAC = "rbac.authorization.k8s.io"
_CLUSTER_ROLES = require(_RBAC, "v1", "clusterroles")
_CLUSTER_BINDINGS = require(_RBAC, "v1", "clusterrolebindings")
_ROLES = require(_RBAC, "v1", "roles")
_BINDINGS = require(_RBAC, "v1", "rolebindings")


@attrs.frozen
class Request:
    """What a request asks, in RBAC's terms."""

    namespace: str
    account: str
    verb: str
    rt: ResourceType
    subresource: str
    object_namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"

    @property
    def resource(self) -> str:
        return f"{self.rt.plural}/{self.subresource}" if self.subresource else self.rt.plural


def service_account(authorization: str | None) -> tuple[str, str] | None:
    """(namespace, name) of the service account a bearer token names, or None."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not token.startswith(TOKEN_PREFIX):
        return None
    namespace, _, name = token.removeprefix(TOKEN_PREFIX).partition(":")
    return (namespace, name) if namespace and name else None


def verb_of(method: str, *, named: bool, watch: bool) -> str:
    """The RBAC verb of an HTTP request on a resource (collection or named object)."""
    if method == "GET":
        return "get" if named else "watch" if watch else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]


def _rule_allows(rule: JsonObj, request: Request) -> bool:
    def has(field: str, value: str) -> bool:
        allowed = rule.get(field) or []
        return value in allowed or "*" in allowed

    resources = rule.get("resources") or []
    resource_ok = (
        request.resource in resources
        or "*" in resources
        or (bool(request.subresource) and f"*/{request.subresource}" in resources)
    )
    names = rule.get("resourceNames") or []
    return (
        has("verbs", request.verb)
        and has("apiGroups", request.rt.group)
        and resource_ok
        and (not names or request.name in names)
    )


def _binds(binding: JsonObj, request: Request) -> bool:
    return any(
        subject.get("kind") == "ServiceAccount"
        and subject.get("name") == request.account
        and subject.get("namespace") == request.namespace
        for subject in binding.get("subjects") or []
    )


class Authorizer:
    """Evaluates requests against the RBAC objects stored in ``registry``."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self.denials: list[str] = []

    def check(self, request: Request) -> None:
        """Raise 403 Forbidden unless a bound rule allows ``request``."""
        if any(_rule_allows(rule, request) for rule in self._rules(request)):
            return
        scope = (
            f' in the namespace "{request.object_namespace}"'
            if request.rt.namespaced
            else " at the cluster scope"
        )
        message = (
            f"{request.rt.qualified}{f' {request.name!r}' if request.name else ''} is forbidden: "
            f'User "{request.user}" cannot {request.verb} resource "{request.resource}" '
            f'in API group "{request.rt.group}"{scope}'
        )
        with self._lock:
            self.denials.append(message)
        raise statuses.ApiError(403, "Forbidden", message)

    def _rules(self, request: Request) -> Iterable[JsonObj]:
        for binding in self._registry.list(_CLUSTER_BINDINGS, None)["items"]:
            if _binds(binding, request):
                yield from self._role_rules(binding["roleRef"], "")
        if request.rt.namespaced and request.object_namespace:
            for binding in self._registry.list(_BINDINGS, request.object_namespace)["items"]:
                if _binds(binding, request):
                    yield from self._role_rules(binding["roleRef"], request.object_namespace)

    def _role_rules(self, ref: JsonObj, namespace: str) -> list[JsonObj]:
        rt = _ROLES if ref.get("kind") == "Role" else _CLUSTER_ROLES
        try:
            role = self._registry.get(rt, namespace if rt is _ROLES else "", ref.get("name", ""))
        except statuses.ApiError:
            return []
        return list(role.get("rules") or [])
