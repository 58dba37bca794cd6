"""Table renderings for kubectl get: columns, cells and ages."""

from __future__ import annotations

import calendar
import time

import pytest

from hami_core.localcluster import tables
from hami_core.localcluster.resources import require

T0 = "2025-01-01T00:00:00Z"
NOW = calendar.timegm(time.strptime(T0, "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0, "0s", id="now"),
        pytest.param(119, "119s", id="under-two-minutes"),
        pytest.param(5 * 60 + 3, "5m3s", id="minutes-and-seconds"),
        pytest.param(5 * 60, "5m", id="whole-minutes"),
        pytest.param(2 * 3600, "120m", id="under-three-hours"),
        pytest.param(5 * 3600 + 60, "5h1m", id="hours-and-minutes"),
        pytest.param(30 * 3600, "30h", id="under-two-days"),
        pytest.param(3 * 86400 + 3600, "3d1h", id="days-and-hours"),
        pytest.param(100 * 86400, "100d", id="days"),
        pytest.param(800 * 86400, "2y", id="years"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert tables.age(T0, NOW + seconds) == text


def test_only_tables_are_rendered_when_asked() -> None:
    assert tables.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not tables.wants_table("application/json")


def test_pod_rows_show_readiness_phase_restarts_and_node() -> None:
    pod = {
        "metadata": {"name": "p", "creationTimestamp": T0},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "containerStatuses": [{"ready": True, "restartCount": 2}],
        },
    }
    table = tables.table(require("", "v1", "pods"), [pod], "7", NOW + 5)
    assert table is not None
    assert (table["kind"], table["apiVersion"], table["metadata"]) == (
        "Table",
        "meta.k8s.io/v1",
        {"resourceVersion": "7"},
    )
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    [row] = table["rows"]
    assert row["cells"] == ["p", "1/2", "Running", 2, "5s", "10.0.0.1", "n1", "<none>", "<none>"]
    assert row["object"] is pod


def test_a_pod_being_deleted_is_terminating() -> None:
    pod = {"metadata": {"name": "p", "deletionTimestamp": T0}, "spec": {}, "status": {"phase": "Running"}}
    table = tables.table(require("", "v1", "pods"), [pod], "1", NOW)
    assert table is not None
    assert table["rows"][0]["cells"][2] == "Terminating"


def test_node_rows_show_readiness_roles_and_addresses() -> None:
    node = {
        "metadata": {"name": "n", "creationTimestamp": T0, "labels": {"node-role.kubernetes.io/gpu": ""}},
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.34.1"},
        },
    }
    table = tables.table(require("", "v1", "nodes"), [node], "1", NOW + 60)
    assert table is not None
    cells = table["rows"][0]["cells"]
    assert cells[:6] == ["n", "Ready,SchedulingDisabled", "gpu", "60s", "v1.34.1", "192.168.0.2"]


def test_resources_without_columns_are_not_tabulated() -> None:
    assert tables.table(require("", "v1", "configmaps"), [], "1", NOW) is None
    assert tables.table(require("events.k8s.io", "v1", "events"), [], "1", NOW) is None
