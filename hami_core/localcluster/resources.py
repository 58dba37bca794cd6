"""The resource types the API server emulator serves, described once.

Discovery documents, URL routing, field selectors and store tables are all derived from
:data:`RESOURCES`, so adding a resource is one entry here. Holds no state and does no I/O.
"""

from __future__ import annotations

from typing import Any

import attrs

from hami_core.kube.selectors import CORE_FIELDS
from hami_core.kube.selectors import META_FIELDS

JsonObj = dict[str, Any]
"""A decoded JSON object as it travels on the wire (a Kubernetes object, a patch, a Status)."""

CRUD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = {"status": ("get", "patch", "update"), "binding": ("create",)}


@attrs.frozen
class ResourceType:
    """One REST resource: where it lives, what it is called and what it supports.

    Attributes:
        group: API group, "" for core.
        version: API version inside the group.
        plural: the URL segment, e.g. "pods".
        kind: the object kind, e.g. "Pod".
        namespaced: whether objects live in a namespace.
        short_names: kubectl aliases ("po").
        subresources: "status" (main writes then ignore .status) and/or "binding".
        fields: field-selector labels beyond metadata.name / metadata.namespace.
        returns_deleted: DELETE answers with the object rather than a Success Status
            (the registry's ReturnDeletedObject).
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    returns_deleted: bool = False

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of the objects, "v1" or "group/version"."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name used in Status messages: "pods", "leases.coordination.k8s.io"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def field_labels(self) -> tuple[str, ...]:
        """Every field-selector label this resource accepts."""
        return META_FIELDS + self.fields

    @property
    def has_status(self) -> bool:
        """Whether .status is owned by the status subresource."""
        return "status" in self.subresources


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("status",),
        CORE_FIELDS["namespaces"],
        returns_deleted=True,
    ),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",), CORE_FIELDS["nodes"]),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("status", "binding"),
        CORE_FIELDS["pods"],
        returns_deleted=True,
    ),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, (), (), CORE_FIELDS["secrets"]),
    ResourceType("", "v1", "events", "Event", True, ("ev",), (), CORE_FIELDS["events"]),
    ResourceType(
        "", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",), returns_deleted=True
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    # What a Helm chart install creates (charts/hami): stored and served, not acted on; no
    # controller runs Deployments, DaemonSets or Jobs.
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("status",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    ResourceType("batch", "v1", "jobs", "Job", True, (), ("status",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
)


def group_versions() -> dict[tuple[str, str], list[ResourceType]]:
    """The served (group, version) pairs, in discovery order, with their resources."""
    out: dict[tuple[str, str], list[ResourceType]] = {}
    for rt in RESOURCES:
        out.setdefault((rt.group, rt.version), []).append(rt)
    return out


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``group/version/plural``, or None."""
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def require(group: str, version: str, plural: str) -> ResourceType:
    """The resource served at ``group/version/plural``; KeyError when none is."""
    rt = lookup(group, version, plural)
    if rt is None:
        raise KeyError(f"{group}/{version}/{plural} is not served")
    return rt
