"""Least privilege: every verb on every resource the chart grants, each with the code that needs it.

``NEEDED`` is the whole list; the test fails when the chart grants anything not on it or lacks
anything on it, and when a named code path no longer makes the call the grant is for.
"""

from __future__ import annotations

import pytest

from tests.chart.chart import KUBE_VERSIONS
from tests.chart.chart import ROOT
from tests.chart.chart import by_kind
from tests.chart.chart import render

#: (role, apiGroup, resource, verb, resourceNames) -> (source file, client call made there).
NEEDED: dict[tuple[str, str, str, str, tuple[str, ...]], tuple[str, str]] = {
    # hami scheduler (extender and webhook)
    ("ClusterRole/hami-scheduler", "", "pods", "get", ()): ("hami_core/scheduler/binding.py", "get_pod("),
    ("ClusterRole/hami-scheduler", "", "pods", "list", ()): ("hami_core/scheduler/watching.py", "list_pods("),
    ("ClusterRole/hami-scheduler", "", "pods", "watch", ()): (
        "hami_core/scheduler/watching.py",
        "watch_pods(",
    ),
    ("ClusterRole/hami-scheduler", "", "pods", "patch", ()): (
        "hami_core/scheduler/committing.py",
        "patch_pod(",
    ),
    ("ClusterRole/hami-scheduler", "", "pods/binding", "create", ()): (
        "hami_core/scheduler/binding.py",
        "bind_pod(",
    ),
    ("ClusterRole/hami-scheduler", "", "nodes", "get", ()): ("hami_core/kube/nodelock.py", "get_node("),
    ("ClusterRole/hami-scheduler", "", "nodes", "list", ()): (
        "hami_core/scheduler/watching.py",
        "list_nodes(",
    ),
    ("ClusterRole/hami-scheduler", "", "nodes", "watch", ()): (
        "hami_core/scheduler/watching.py",
        "watch_nodes(",
    ),
    ("ClusterRole/hami-scheduler", "", "nodes", "patch", ()): ("hami_core/kube/nodelock.py", "patch_node("),
    ("ClusterRole/hami-scheduler", "", "events", "create", ()): (
        "hami_core/scheduler/recording.py",
        "create_event(",
    ),
    ("ClusterRole/hami-scheduler", "", "resourcequotas", "list", ()): (
        "hami_core/scheduler/watching.py",
        "list_resource_quotas(",
    ),
    (
        "Role/hami-scheduler",
        "coordination.k8s.io",
        "leases",
        "get",
        ("hami-scheduler", "hami-scheduler-kube-scheduler"),
    ): (
        "hami_core/scheduler/leader.py",
        "get_lease(",
    ),
    (
        "Role/hami-scheduler",
        "coordination.k8s.io",
        "leases",
        "update",
        ("hami-scheduler", "hami-scheduler-kube-scheduler"),
    ): (
        "hami_core/scheduler/leader.py",
        "replace_lease(",
    ),
    # hami certs (the scheduler pod's init container and sidecar)
    (
        "ClusterRole/hami-scheduler",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "get",
        ("hami-webhook",),
    ): (
        "hami_core/webhook/certs_sync.py",
        "get_mutating_webhook_configuration(",
    ),
    (
        "ClusterRole/hami-scheduler",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "patch",
        ("hami-webhook",),
    ): (
        "hami_core/webhook/certs_sync.py",
        "patch_mutating_webhook_configuration(",
    ),
    ("Role/hami-scheduler", "", "secrets", "get", ("hami-scheduler-tls",)): (
        "hami_core/webhook/certs_sync.py",
        "get_secret(",
    ),
    ("Role/hami-scheduler", "", "secrets", "patch", ("hami-scheduler-tls",)): (
        "hami_core/webhook/certs_sync.py",
        "patch_secret(",
    ),
    # hami device-plugin
    ("ClusterRole/hami-device-plugin", "", "pods", "list", ()): (
        "hami_core/deviceplugin/allocating.py",
        "list_pods(",
    ),
    ("ClusterRole/hami-device-plugin", "", "pods", "get", ()): (
        "hami_core/deviceplugin/allocating.py",
        "get_pod(",
    ),
    ("ClusterRole/hami-device-plugin", "", "pods", "patch", ()): (
        "hami_core/deviceplugin/allocating.py",
        "patch_pod(",
    ),
    ("ClusterRole/hami-device-plugin", "", "nodes", "get", ()): (
        "hami_core/deviceplugin/registering.py",
        "get_node(",
    ),
    ("ClusterRole/hami-device-plugin", "", "nodes", "patch", ()): (
        "hami_core/deviceplugin/registering.py",
        "patch_node(",
    ),
}
#: Built-in ClusterRoles/Roles bound for the upstream kube-scheduler container (same service account).
BUILT_IN = {
    ("ClusterRoleBinding/hami-scheduler-kube-scheduler", "system:kube-scheduler"),
    ("ClusterRoleBinding/hami-scheduler-volume-scheduler", "system:volume-scheduler"),
    ("RoleBinding/hami-scheduler-authentication-reader", "extension-apiserver-authentication-reader"),
}


def granted(docs: list[dict]) -> set[tuple[str, str, str, str, tuple[str, ...]]]:
    out = set()
    for kind in ("ClusterRole", "Role"):
        for role in by_kind(docs, kind):
            for rule in role["rules"] or []:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            names = tuple(rule.get("resourceNames") or ())
                            out.add((f"{kind}/{role['metadata']['name']}", group, resource, verb, names))
    return out


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return render(
        tmp_path_factory.mktemp("helm"), {"backends.mock.enabled": True}, kube_version=KUBE_VERSIONS[-1]
    )


def test_grants_are_exactly_the_needed_ones(docs: list[dict]) -> None:
    assert granted(docs) == set(NEEDED)
    for grant in granted(docs):
        assert "*" not in grant, grant


def test_every_grant_is_used_where_the_list_says(docs: list[dict]) -> None:
    for grant, (path, call) in NEEDED.items():
        source = (ROOT / path).read_text()
        assert call in source, f"{grant}: {path} no longer calls {call}"


def test_bindings_tie_each_role_to_its_own_service_account(docs: list[dict]) -> None:
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in by_kind(docs, kind):
            (subject,) = binding["subjects"]
            assert subject["kind"] == "ServiceAccount"
            ref = binding["roleRef"]["name"]
            key = (f"{kind}/{binding['metadata']['name']}", ref)
            if key in BUILT_IN:
                assert subject["name"] == "hami-scheduler"
            else:
                assert ref == binding["metadata"]["name"]
                assert subject["name"] == ref
    assert {
        b["roleRef"]["name"] for k in ("ClusterRoleBinding", "RoleBinding") for b in by_kind(docs, k)
    } >= {name for _, name in BUILT_IN}


def test_workloads_run_as_their_role_service_accounts(docs: list[dict]) -> None:
    accounts = {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["serviceAccountName"]
        for doc in by_kind(docs, "Deployment") + by_kind(docs, "DaemonSet")
    }
    assert accounts == {
        "hami-scheduler": "hami-scheduler",
        "hami-device-plugin-mock": "hami-device-plugin",
        "hami-device-plugin-nvidia": "hami-device-plugin",
    }
