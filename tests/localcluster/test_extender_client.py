"""The extender wire protocol as kube-scheduler speaks it: bodies, reply rules and the HTTP(S) call."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import trustme

from hami_core.localcluster import extender_client
from hami_core.localcluster.extender_client import ExtenderError
from hami_core.localcluster.extender_client import FilterOutcome
from hami_core.localcluster.extender_client import HttpExtender
from hami_core.localcluster.scheduler_config import ExtenderConfig
from hami_core.localcluster.scheduler_config import ManagedResource
from hami_core.localcluster.scheduler_config import TLSConfig
from hami_core.pods import PodView
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from tests.localcluster.fake_extender import FakeExtender
from tests.localcluster.fake_extender import Reply

POD = PodView.from_object(make_pod("p", containers=[make_container(limits={"nvidia.com/gpu": 1})]))
NODES = [make_node("node-a"), make_node("node-b")]


def test_go_json_is_compact_and_html_safe() -> None:
    assert extender_client.go_json({"A": "<b>&</b>", "B": None, "C": ["é"]}) == (
        '{"A":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e","B":null,"C":["é"]}'.encode()
    )


def test_cache_capable_filter_args_send_node_names_and_a_null_node_list() -> None:
    body = extender_client.go_json(extender_client.extender_args(POD, NODES, node_cache_capable=True))
    assert body.startswith(b'{"Pod":{')
    assert body.endswith(b',"Nodes":null,"NodeNames":["node-a","node-b"]}')


def test_full_filter_args_send_a_node_list_and_null_names() -> None:
    args = extender_client.extender_args(POD, NODES, node_cache_capable=False)
    assert list(args) == ["Pod", "Nodes", "NodeNames"]
    assert args["Nodes"] == {"metadata": {}, "items": NODES}
    assert args["NodeNames"] is None


def test_binding_args_are_pascal_case() -> None:
    assert extender_client.go_json(extender_client.binding_args(POD, "node-a")) == (
        f'{{"PodName":"p","PodNamespace":"default","PodUID":"{POD.uid}","Node":"node-a"}}'.encode()
    )


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        pytest.param(
            {"NodeNames": ["node-a"], "FailedNodes": {"node-b": "no GPU"}, "Error": ""},
            FilterOutcome(("node-a",), {"node-b": "no GPU"}),
            id="cache-capable",
        ),
        pytest.param(
            {"nodenames": ["node-b"], "failednodes": None, "failedAndUnresolvableNodes": {"node-a": "gone"}},
            FilterOutcome(("node-b",), {}, {"node-a": "gone"}),
            id="case-insensitive-and-null",
        ),
        pytest.param({"NodeNames": None, "Nodes": None}, FilterOutcome(()), id="null-means-no-node"),
    ],
)
def test_filter_replies_are_read_like_go_does(reply: dict[str, Any], outcome: FilterOutcome) -> None:
    result = extender_client.parse_filter_result(
        reply, ["node-a", "node-b"], node_cache_capable=True, url="u"
    )
    assert result == outcome
    assert dict(result.failed) == dict(outcome.failed)
    assert dict(result.failed_and_unresolvable) == dict(outcome.failed_and_unresolvable)


def test_a_filter_reply_naming_a_node_that_was_not_sent_fails() -> None:
    with pytest.raises(ExtenderError, match="not found in the input node list"):
        extender_client.parse_filter_result(
            {"NodeNames": ["node-z"]}, ["node-a"], node_cache_capable=True, url="u"
        )


def test_a_filter_reply_with_an_error_fails() -> None:
    with pytest.raises(ExtenderError, match=r"^node lock held$"):
        extender_client.parse_filter_result(
            {"Error": "node lock held"}, ["node-a"], node_cache_capable=True, url="u"
        )


def test_full_node_list_replies_keep_the_returned_nodes() -> None:
    reply = {"Nodes": {"items": [make_node("node-b")]}, "NodeNames": None}
    result = extender_client.parse_filter_result(
        reply, ["node-a", "node-b"], node_cache_capable=False, url="u"
    )
    assert result.node_names == ("node-b",)


def test_unresolvable_failures_take_precedence_when_merging_reasons() -> None:
    reasons = {"node-a": ["Insufficient cpu"]}
    outcome = FilterOutcome((), {"node-a": "busy", "node-b": "busy"}, {"node-b": "no such device"})
    extender_client.merge_failures(reasons, outcome)
    assert reasons == {"node-a": ["Insufficient cpu", "busy"], "node-b": ["no such device"]}


@pytest.mark.parametrize(
    ("managed", "pod", "interested"),
    [
        pytest.param((), PodView.from_object(make_pod("p")), True, id="manages-everything"),
        pytest.param(("nvidia.com/gpu",), POD, True, id="limit"),
        pytest.param(("nvidia.com/gpu",), PodView.from_object(make_pod("p")), False, id="not-requested"),
        pytest.param(
            ("nvidia.com/gpu",),
            PodView.from_object(
                make_pod("p", init_containers=[make_container("i", requests={"nvidia.com/gpu": 1})])
            ),
            True,
            id="init-container-request",
        ),
    ],
)
def test_an_extender_is_called_only_for_pods_requesting_a_managed_resource(
    managed: tuple[str, ...], pod: Any, interested: bool
) -> None:
    config = ExtenderConfig("http://x", managed_resources=tuple(ManagedResource(name) for name in managed))
    assert extender_client.is_interested(config, pod) is interested


def test_host_priorities_are_validated() -> None:
    assert extender_client.parse_host_priorities([{"Host": "a", "Score": 7}]) == [{"Host": "a", "Score": 7}]
    assert extender_client.parse_host_priorities(None) == []
    with pytest.raises(ExtenderError):
        extender_client.parse_host_priorities([{"Host": "a", "Score": "high"}])


def test_filter_posts_to_the_verb_under_the_url_prefix() -> None:
    with FakeExtender() as server:
        extender = HttpExtender(
            ExtenderConfig(server.url + "/", filter_verb="filter", node_cache_capable=True)
        )
        outcome = extender.filter(POD, NODES)
    assert outcome.node_names == ("node-a", "node-b")
    assert [(r.path, r.content_type) for r in server.received] == [("/ext/filter", "application/json")]
    assert server.received[0].raw.endswith(b'"Nodes":null,"NodeNames":["node-a","node-b"]}')


def test_a_non_200_reply_is_an_error_naming_verb_url_and_code() -> None:
    with FakeExtender(lambda verb, body: (500, {})) as server:
        extender = HttpExtender(ExtenderConfig(server.url, filter_verb="filter"))
        with pytest.raises(
            ExtenderError, match=f"failed filter with extender at URL {server.url}/filter, code 500"
        ):
            extender.filter(POD, NODES)


def test_an_unreachable_extender_is_an_error() -> None:
    extender = HttpExtender(ExtenderConfig("http://127.0.0.1:9", filter_verb="filter", http_timeout=1.0))
    with pytest.raises(ExtenderError, match="failed filter with extender"):
        extender.filter(POD, NODES)


def test_prioritize_scores_are_multiplied_by_the_weight() -> None:
    def scores(verb: str, body: Any) -> Reply:
        return 200, [{"Host": "node-a", "Score": 3}]

    with FakeExtender(scores) as server:
        extender = HttpExtender(ExtenderConfig(server.url, prioritize_verb="prioritize", weight=2))
        assert extender.prioritize(POD, NODES) == {"node-a": 6}


def test_bind_sends_the_binding_args_and_reports_the_error() -> None:
    with FakeExtender(lambda verb, body: (200, {"Error": "node lock held"})) as server:
        extender = HttpExtender(ExtenderConfig(server.url, bind_verb="bind"))
        with pytest.raises(ExtenderError, match="node lock held"):
            extender.bind(POD, "node-a")
    assert server.received[0].body == {
        "PodName": "p",
        "PodNamespace": "default",
        "PodUID": POD.uid,
        "Node": "node-a",
    }


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_extender(ca: trustme.CA) -> Iterator[FakeExtender]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("hami-scheduler.kube-system.svc").configure_cert(context)
    with FakeExtender(tls=context) as server:
        yield server


def test_https_without_a_ca_skips_verification_like_kube_scheduler(https_extender: FakeExtender) -> None:
    config = ExtenderConfig(
        https_extender.url, filter_verb="filter", enable_https=True, node_cache_capable=True
    )
    assert HttpExtender(config).filter(POD, NODES).node_names == ("node-a", "node-b")


def test_https_with_a_ca_verifies_the_server_name(https_extender: FakeExtender, ca: trustme.CA) -> None:
    pem = ca.cert_pem.bytes()
    trusted = TLSConfig(ca_data=pem, server_name="hami-scheduler.kube-system.svc")
    config = ExtenderConfig(https_extender.url, filter_verb="filter", enable_https=True, tls=trusted)
    assert HttpExtender(config).filter(POD, NODES).node_names == ("node-a", "node-b")
    wrong_name = ExtenderConfig(
        https_extender.url, filter_verb="filter", enable_https=True, tls=TLSConfig(ca_data=pem)
    )
    with pytest.raises(ExtenderError, match="certificate"):
        HttpExtender(wrong_name).filter(POD, NODES)


def test_the_stand_in_presents_its_tls_config_client_certificate_like_kube_scheduler(tmp_path: Any) -> None:
    """``tlsConfig`` ``certFile``/``keyFile``/``caFile`` against the scheduler's mutual-TLS server."""
    from hami_core.scheduler.server import ExtenderServer
    from hami_core.webhook import certs
    from hami_core.webhook.tls import ReloadingCertificate
    from tests.scheduler.test_server import RecordingService

    now = certs.utc_now()
    serving = certs.create_bundle(certs.ServingIdentity(dns_names=("hami.example",)), now)
    client_ca = certs.create_ca(now)
    client = certs.issue_client_certificate(client_ca, "kube-scheduler", now)
    files = {
        "tls.crt": serving.serving.cert_pem,
        "tls.key": serving.serving.key_pem,
        "ca.crt": serving.ca.cert_pem,
        "client-ca.crt": client_ca.cert_pem,
        "client.crt": client.cert_pem,
        "client.key": client.key_pem,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    tls = ReloadingCertificate(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "client-ca.crt")
    server = ExtenderServer(RecordingService(), tls=tls).start()
    pod = PodView.from_object(make_pod("p", containers=[make_container(limits={"x.io/gpu": 1})]))
    nodes = [make_node("a")]
    verified = TLSConfig(ca_file=str(tmp_path / "ca.crt"), server_name="hami.example")
    try:
        with_cert = ExtenderConfig(
            server.url,
            filter_verb="filter",
            node_cache_capable=True,
            enable_https=True,
            tls=attrs.evolve(
                verified, cert_file=str(tmp_path / "client.crt"), key_file=str(tmp_path / "client.key")
            ),
        )
        assert HttpExtender(with_cert).filter(pod, nodes).node_names == ("a",)
        without = ExtenderConfig(server.url, filter_verb="filter", enable_https=True, tls=verified)
        with pytest.raises(ExtenderError, match="code 403"):
            HttpExtender(without).filter(pod, nodes)
    finally:
        server.stop()
