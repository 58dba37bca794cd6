"""``hami top`` rendered against a recorded cluster state (tests/top/data: nodes and pods as the API
returns them, and one node monitor's /metrics); no sleeps, no terminal."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hami_backend_mock.backend import MockBackend

from hami_core.localcluster.demo import DemoResult
from hami_core.localcluster.sharing import sharing_report
from hami_core.testing.fake_kube import FakeKube
from hami_core.top import live
from hami_core.top.demo_text import render_demo
from hami_core.top.render import render_text
from hami_core.top.state import ClusterState
from hami_core.top.usage import UsageReport
from hami_core.top.usage import fetch_usage
from hami_core.top.usage import parse_usage
from hami_core.top.view import build_view
from hami_core.top.view import device_rows

DATA = Path(__file__).with_name("data")
BACKENDS = [MockBackend()]


def recorded() -> dict[str, list[dict[str, Any]]]:
    return json.loads((DATA / "cluster.json").read_text())  # type: ignore[no-any-return]


def usage() -> UsageReport:
    return parse_usage([(DATA / "monitor-n1.prom").read_text()])


def view_json(**options: Any) -> dict[str, Any]:
    state = ClusterState(recorded()["nodes"], recorded()["pods"])
    return live.snapshot_view(
        state, BACKENDS, usage(), **({"namespace": None, "sort": "node"} | options)
    ).to_json()


def test_booked_per_pod_and_used_from_the_monitor() -> None:
    devices = view_json()["devices"]
    assert [(d["node"], d["uuid"]) for d in devices] == [
        ("n1", "MOCK-n1-0"),
        ("n1", "MOCK-n1-1"),
        ("n2", "MOCK-n2-0"),
        ("n2", "MOCK-n2-1"),
    ]
    first = devices[0]
    assert (first["memory_booked_mib"], first["cores_booked"], first["slots_used"]) == (13312, 90, 3)
    assert first["used"] == {"memory_mib": 10500, "utilization": 70}  # the host's own figures
    assert first["pods"] == [
        {
            "pod": "ml/trainer",
            "memory_mib": 10240,
            "cores": 60,
            "used": {"memory_mib": 7000, "utilization": 45},
        },
        {
            "pod": "web/infer",
            "memory_mib": 3072,
            "cores": 30,
            "used": {"memory_mib": 2900, "utilization": 25},
        },
    ]
    # n2 has no monitor: booked only; the finished pod holds nothing.
    assert devices[2]["used"] is None
    assert devices[2]["pods"] == [{"pod": "web/batch", "memory_mib": 1024, "cores": 0, "used": None}]
    assert devices[3]["healthy"] is False


def test_namespace_filter_and_sorting() -> None:
    web = view_json(namespace="web")["devices"]
    assert [(d["uuid"], [p["pod"] for p in d["pods"]]) for d in web] == [
        ("MOCK-n1-0", ["web/infer"]),
        ("MOCK-n2-0", ["web/batch"]),
    ]
    by_memory = view_json(sort="memory")["devices"]
    assert [d["uuid"] for d in by_memory] == ["MOCK-n1-0", "MOCK-n1-1", "MOCK-n2-0", "MOCK-n2-1"]
    by_used = view_json(sort="used")["devices"]
    assert [d["uuid"] for d in by_used][:2] == ["MOCK-n1-0", "MOCK-n1-1"]
    by_cores = view_json(sort="cores")["devices"][0]["pods"]
    assert [p["pod"] for p in by_cores] == ["ml/trainer", "web/infer"]


def test_text_rendering() -> None:
    state = ClusterState(recorded()["nodes"], recorded()["pods"])
    text = render_text(live.snapshot_view(state, BACKENDS, usage(), namespace=None, sort="node"))
    lines = text.splitlines()
    assert lines[0].split() == [
        "NODE",
        "DEVICE",
        "/",
        "POD",
        "TYPE",
        "MEMORY",
        "MiB",
        "USED",
        "MiB",
        "CORES",
        "%",
        "UTIL",
        "%",
        "SLOTS",
    ]
    rows = [line.split() for line in lines[2:]]
    assert rows[0] == ["n1", "MOCK-n1-0", "MOCK-GPU", "13312/16384", "10500", "90/100", "70", "3/4"]
    assert rows[1] == ["ml/trainer", "10240", "7000", "60", "45"]
    assert rows[2] == ["web/infer", "3072", "2900", "30", "25"]
    assert ["n2", "MOCK-n2-1", "MOCK-GPU", "(unhealthy)", "0/16384", "-", "0/100", "-", "0/4"] in rows


def test_demo_device_table_is_the_top_table() -> None:
    """The demo prints ``hami top --once``'s table of the same devices (without a monitor)."""
    nodes, pods = recorded()["nodes"], recorded()["pods"]
    report = sharing_report(nodes, pods, BACKENDS)
    result = DemoResult(report=report, warnings={}, unschedulable={}, nodes=("n1", "n2"))
    once = render_text(build_view(report))
    assert once == render_text(device_rows(report.devices))
    assert once in render_demo(result)


def test_watch_events_update_the_view() -> None:
    state = ClusterState(recorded()["nodes"], recorded()["pods"])
    infer = next(p for p in recorded()["pods"] if p["metadata"]["name"] == "infer")
    state.apply("pod", "DELETED", infer)
    view = live.snapshot_view(state, BACKENDS, None, namespace=None, sort="node").to_json()
    assert [p["pod"] for p in view["devices"][0]["pods"]] == ["ml/trainer"]
    assert view["devices"][0]["memory_booked_mib"] == 10240
    state.apply("pod", "ADDED", infer)
    view = live.snapshot_view(state, BACKENDS, None, namespace=None, sort="node").to_json()
    assert view["devices"][0]["memory_booked_mib"] == 13312


def test_follow_draws_after_listing_and_each_event() -> None:
    """The live loop over a fake API server: draws once both listings arrived, then per event."""
    kube = FakeKube()
    for namespace in ("ml", "web"):
        kube.create_namespace({"metadata": {"name": namespace}})
    for node in recorded()["nodes"]:
        kube.create_node(node)  # type: ignore[arg-type]
    pods = recorded()["pods"]
    for pod in pods[:-1]:
        kube.create_pod(pod["metadata"]["namespace"], pod)  # type: ignore[arg-type]
    stop = threading.Event()
    seen: list[int] = []

    def draw(state: ClusterState, _rescraped: bool) -> None:
        seen.append(len(state.pods))
        if len(seen) == 1:
            kube.delete_pod("web", "infer")
        elif len(state.pods) == len(pods) - 2:
            stop.set()

    thread = threading.Thread(target=live.follow, args=(kube, draw, lambda: None, stop, 60.0))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert seen[0] == len(pods) - 1
    assert seen[-1] == len(pods) - 2


def test_unreachable_monitor_is_reported_not_raised() -> None:
    report = fetch_usage(["http://127.0.0.1:1/metrics"])
    assert report.pods == {}
    assert len(report.errors) == 1
    assert report.errors[0].startswith("monitor http://127.0.0.1:1/metrics")


@pytest.mark.parametrize("bad", ["not metrics {", "hami_vgpu_memory_used_bytes{ 1"])
def test_unreadable_monitor_text_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="could not convert"):
        parse_usage([bad])
