"""The composed scheduler on a FakeKube: serving over HTTP, leadership, restarts, prompt retries, CLI."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from hami_core import codec
from hami_core.cli import hami
from hami_core.config import parse_config
from hami_core.errors import ConfigError
from hami_core.scheduler.app import SchedulerApp
from hami_core.scheduler.app import build_scheduler
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.scheduler.fakes import MOCK_GPU
from tests.scheduler.fakes import MOCK_MEM
from tests.scheduler.fakes import eventually
from tests.scheduler.fakes import mock_backend

CONFIG = {
    "version": "v1",
    "backends": {"mock": {"enabled": True, "devices": [{"count": 1, "memory_mib": 8000}]}},
}
MOCK = mock_backend()


def mock_node(kube: FakeKube, name: str) -> None:
    from hami_core.testing.builders import make_node

    devices = MOCK.encode_node_devices(MOCK.discover(name)[:1])
    kube.create_node(make_node(name, annotations={MOCK.keys.register: devices}, allocatable={MOCK_GPU: 10}))


def asking(name: str, memory: int) -> dict[str, object]:
    return make_pod(name, containers=[make_container(limits={MOCK_GPU: 1, MOCK_MEM: memory})])  # type: ignore[return-value]


def started(kube: FakeKube, **kwargs: object) -> SchedulerApp:
    config = parse_config({**CONFIG, "scheduler": kwargs.pop("scheduler", {})}, "test")
    return build_scheduler(config, kube, bind="127.0.0.1:0", metrics_bind="", resync=3600, **kwargs).start(
        sync_timeout=5
    )  # type: ignore[arg-type]


@pytest.fixture
def kube(fake_kube: FakeKube) -> FakeKube:
    mock_node(fake_kube, "node-0")
    return fake_kube


@pytest.fixture
def app(kube: FakeKube) -> Iterator[SchedulerApp]:
    running = started(kube)
    yield running
    running.stop()


def post(app: SchedulerApp, verb: str, body: object) -> dict[str, object]:
    assert app.server is not None
    connection = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=5)
    try:
        connection.request(
            "POST", f"/{verb}", body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())  # type: ignore[no-any-return]
    finally:
        connection.close()


def test_a_pod_is_filtered_and_bound_over_http(app: SchedulerApp, kube: FakeKube) -> None:
    pod = kube.create_pod("default", asking("p", 3000))
    reply = post(app, "filter", {"Pod": pod, "Nodes": None, "NodeNames": ["node-0"]})
    assert reply["NodeNames"] == ["node-0"]
    meta = pod["metadata"]
    assert post(
        app, "bind", {"PodName": "p", "PodNamespace": "default", "PodUID": meta["uid"], "Node": "node-0"}
    ) == {"Error": ""}
    assert kube.get_pod("default", "p")["spec"]["nodeName"] == "node-0"
    eventually(
        lambda: any(e["reason"] == "BindingSucceed" for e in kube.list_events("default")["items"]),
        what="the BindingSucceed event",
    )


def test_a_pending_pod_rejected_for_capacity_is_retried_when_a_pod_ends(
    app: SchedulerApp, kube: FakeKube
) -> None:
    holder = kube.create_pod("default", asking("holder", 16000))
    assert post(app, "filter", {"Pod": holder, "NodeNames": ["node-0"]})["NodeNames"] == ["node-0"]
    waiting = kube.create_pod("default", asking("waiting", 4000))
    assert post(app, "filter", {"Pod": waiting, "NodeNames": ["node-0"]})["NodeNames"] is None
    kube.delete_pod("default", "holder")
    eventually(
        lambda: (
            codec.SCHEDULING_RETRY
            in (kube.get_pod("default", "waiting")["metadata"].get("annotations") or {})
        ),
        what="the retry annotation on the waiting pod",
    )
    again = kube.get_pod("default", "waiting")
    assert post(app, "filter", {"Pod": again, "NodeNames": ["node-0"]})["NodeNames"] == ["node-0"]


def test_a_malformed_registration_becomes_a_warning_event_on_the_node(
    app: SchedulerApp, kube: FakeKube
) -> None:
    kube.patch_node("node-0", {"metadata": {"annotations": {MOCK.keys.register: "garbage:"}}})
    eventually(
        lambda: any(e["reason"] == "InvalidDeviceRegistration" for e in kube.list_events("default")["items"]),
        what="the warning event",
    )
    assert app.cache.view("node-0") is not None


def test_devices_outside_the_register_bounds_are_rejected_with_an_event_and_a_metric(
    app: SchedulerApp, kube: FakeKube
) -> None:
    good, bad = MOCK.discover("node-0")[:2]
    devices = [good, attrs.evolve(bad, devmem=-1)]
    kube.patch_node(
        "node-0", {"metadata": {"annotations": {MOCK.keys.register: MOCK.encode_node_devices(devices)}}}
    )
    eventually(
        lambda: any(
            e["reason"] == "DeviceRegistrationRejected" for e in kube.list_events("default")["items"]
        ),
        what="the warning event",
    )
    view = app.cache.view("node-0")
    assert view is not None
    assert [device.id for device in view.all_devices()] == [good.id]
    sample = app.metrics.registry.get_sample_value(
        "hami_scheduler_cache_warnings_total", {"kind": "Node", "reason": "DeviceRegistrationRejected"}
    )
    assert sample == 1


def test_a_replica_that_does_not_hold_the_lease_follows(kube: FakeKube) -> None:
    kube.create_lease(
        "kube-system",
        {
            "metadata": {"name": "hami-scheduler"},
            "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 15},
        },
    )
    follower = started(kube, leader_election=True, identity="me", lease_namespace="kube-system")
    try:
        pod = kube.create_pod("default", asking("p", 100))
        assert (
            post(follower, "filter", {"Pod": pod, "NodeNames": ["node-0"]})["Error"] == "me is not the leader"
        )
        assert follower.extender.readiness() == (False, "me is not the leader")
    finally:
        follower.stop()


def test_a_replica_that_wins_the_lease_serves(kube: FakeKube) -> None:
    leader = started(kube, leader_election=True, identity="me", lease_namespace="kube-system")
    try:
        eventually(leader.is_leader, what="leadership")
        pod = kube.create_pod("default", asking("p", 100))
        assert post(leader, "filter", {"Pod": pod, "NodeNames": ["node-0"]})["NodeNames"] == ["node-0"]
    finally:
        leader.stop()
    assert kube.get_lease("kube-system", "hami-scheduler")["spec"]["holderIdentity"] == ""


def test_a_restarted_scheduler_counts_what_the_first_one_placed(kube: FakeKube) -> None:
    first = started(kube)
    try:
        pod = kube.create_pod("default", asking("p", 12000))
        assert post(first, "filter", {"Pod": pod, "NodeNames": ["node-0"]})["NodeNames"] == ["node-0"]
    finally:
        first.stop()
    second = started(kube)
    try:
        other = kube.create_pod("default", asking("q", 6000))
        reply = post(second, "filter", {"Pod": other, "NodeNames": ["node-0"]})
        assert reply["FailedNodes"] == {"node-0": "1/1 CardInsufficientMemory"}
    finally:
        second.stop()


def test_an_unknown_default_node_policy_is_a_config_error(kube: FakeKube) -> None:
    config = parse_config({**CONFIG, "scheduler": {"node_scheduler_policy": "fastest"}}, "hami.yaml")
    with pytest.raises(ConfigError, match=r"scheduler\.node_scheduler_policy: unknown policy 'fastest'"):
        build_scheduler(config, kube)


def test_the_cli_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("x")
    result = CliRunner().invoke(hami, ["scheduler", "--cert-file", str(cert)])
    assert result.exit_code == 2
    assert "both a certificate and a key" in result.output


def test_the_cli_refuses_a_client_ca_without_https(tmp_path: Path) -> None:
    ca = tmp_path / "client-ca.crt"
    ca.write_text("unused")
    result = CliRunner().invoke(hami, ["scheduler", "--client-ca", str(ca)])
    assert result.exit_code == 2
    assert "client certificates need HTTPS" in result.output


def test_certs_refuses_a_client_certificate_without_a_folder_to_write_it() -> None:
    result = CliRunner().invoke(hami, ["certs", "--client-cert", "kube-scheduler"])
    assert result.exit_code == 2
    assert "--client-cert writes into --cert-dir" in result.output
