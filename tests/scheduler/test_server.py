"""The HTTP(S) edge: routes, extender JSON, bad input, TLS with a rotating certificate."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from collections.abc import Sequence

import pytest
import trustme

from hami_core.kube.objects import ExtenderBindingResult
from hami_core.kube.objects import ExtenderFilterResult
from hami_core.kube.objects import HostPriority
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler.metrics import SchedulerMetrics
from hami_core.scheduler.server import ExtenderServer
from hami_core.scheduler.server import split_bind
from tests.loopback import request

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {"containers": []}}


class RecordingService:
    """Answers every verb with a fixed reply and remembers the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.ready = (True, "ok")

    def readiness(self) -> tuple[bool, str]:
        return self.ready

    def filter(
        self, pod: PodView, node_names: Sequence[str] | None, nodes: list[Node] | None
    ) -> ExtenderFilterResult:
        self.calls.append(("filter", pod.name, node_names, nodes))
        return {
            "Nodes": None,
            "NodeNames": list(node_names or [])[:1],
            "FailedNodes": None,
            "FailedAndUnresolvableNodes": None,
            "Error": "",
        }

    def prioritize(self, pod: PodView, node_names: Sequence[str]) -> list[HostPriority]:
        self.calls.append(("prioritize", tuple(node_names)))
        return [{"Host": name, "Score": 5} for name in node_names]

    def bind(self, namespace: str, name: str, uid: str, node: str) -> ExtenderBindingResult:
        self.calls.append(("bind", namespace, name, uid, node))
        return {"Error": ""}


class EchoAdmission:
    def handle(self, body: bytes) -> tuple[int, bytes]:
        return 200, b'{"echo":' + body + b"}"


@pytest.fixture
def service() -> RecordingService:
    return RecordingService()


@pytest.fixture
def server(service: RecordingService) -> Iterator[ExtenderServer]:
    running = ExtenderServer(
        service, registry=SchedulerMetrics().registry, admission=EchoAdmission(), max_body=4096
    ).start()
    yield running
    running.stop()


def call(server: ExtenderServer, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    return request(server.port, method, path, body, timeout=5)


def test_filter_takes_kube_schedulers_pascal_case_json(
    server: ExtenderServer, service: RecordingService
) -> None:
    body = json.dumps({"Pod": POD, "Nodes": None, "NodeNames": ["a", "b"]}).encode()
    status, reply = call(server, "POST", "/filter", body)
    assert status == 200
    assert json.loads(reply) == {
        "Nodes": None,
        "NodeNames": ["a"],
        "FailedNodes": None,
        "FailedAndUnresolvableNodes": None,
        "Error": "",
    }
    assert service.calls == [("filter", "p", ["a", "b"], None)]


def test_keys_match_case_insensitively_like_gos_decoder(
    server: ExtenderServer, service: RecordingService
) -> None:
    status, _ = call(server, "POST", "/filter", json.dumps({"pod": POD, "nodenames": ["a"]}).encode())
    assert status == 200
    assert service.calls[0][2] == ["a"]


def test_bind_and_prioritize_are_routed(server: ExtenderServer, service: RecordingService) -> None:
    bind = {"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "a"}
    assert call(server, "POST", "/bind", json.dumps(bind).encode()) == (200, b'{"Error":""}')
    status, reply = call(server, "POST", "/prioritize", json.dumps({"Pod": POD, "NodeNames": ["a"]}).encode())
    assert (status, json.loads(reply)) == (200, [{"Host": "a", "Score": 5}])
    assert service.calls == [("bind", "default", "p", "u", "a"), ("prioritize", ("a",))]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        pytest.param("/filter", b"{not json", "the body is not JSON", id="not-json"),
        pytest.param("/filter", b"[]", "must be a JSON object", id="not-an-object"),
        pytest.param("/filter", b'{"NodeNames": []}', "extender args missing pod", id="no-pod"),
        pytest.param(
            "/filter",
            json.dumps({"Pod": POD, "NodeNames": [1]}).encode(),
            "NodeNames must be",
            id="bad-names",
        ),
        pytest.param(
            "/filter",
            json.dumps({"Pod": POD, "Nodes": {"items": [3]}}).encode(),
            "every item of Nodes",
            id="bad-nodes",
        ),
        pytest.param(
            "/bind", b'{"PodName": "p"}', "PodNamespace must be a non-empty string", id="bind-missing"
        ),
    ],
)
def test_malformed_extender_json_is_a_400_with_a_message(
    server: ExtenderServer, service: RecordingService, path: str, body: bytes, message: str
) -> None:
    status, reply = call(server, "POST", path, body)
    assert status == 400
    assert message in json.loads(reply)["Error"]
    assert service.calls == []


def test_a_body_over_the_cap_is_refused(server: ExtenderServer) -> None:
    status, reply = call(server, "POST", "/filter", b" " * 5000)
    assert status == 413
    assert "at most 4096" in json.loads(reply)["Error"]


def test_health_readiness_and_metrics(server: ExtenderServer, service: RecordingService) -> None:
    assert call(server, "GET", "/healthz") == (200, b"ok")
    assert call(server, "GET", "/readyz") == (200, b"ok")
    service.ready = (False, "replica-b is not the leader")
    assert call(server, "GET", "/readyz") == (503, b"replica-b is not the leader")
    status, text = call(server, "GET", "/metrics")
    assert status == 200
    assert b"hami_build_info" in text


def test_the_webhook_route_hands_the_body_to_the_admission_handler(server: ExtenderServer) -> None:
    assert call(server, "POST", "/webhook", b'{"x":1}') == (200, b'{"echo":{"x":1}}')


def test_unknown_routes_are_404(server: ExtenderServer) -> None:
    assert call(server, "GET", "/nowhere")[0] == 404
    assert call(server, "POST", "/preempt", b"{}")[0] == 404


def test_without_an_admission_handler_there_is_no_webhook(service: RecordingService) -> None:
    running = ExtenderServer(service).start()
    try:
        assert call(running, "POST", "/webhook", b"{}")[0] == 404
        assert call(running, "GET", "/metrics")[0] == 404
    finally:
        running.stop()


class Rotating:
    """A TLS provider whose certificate can be swapped, like a reloading certificate file pair."""

    verifies_clients = False

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.use(cert)

    def use(self, cert: trustme.LeafCert) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._context = context

    def context(self) -> ssl.SSLContext:
        return self._context


def serial_seen(port: int, ca: trustme.CA) -> int:
    client = ssl.create_default_context()
    ca.configure_trust(client)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=5)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() == b"ok"
        der = connection.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    finally:
        connection.close()
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def test_https_serves_the_providers_current_certificate(service: RecordingService) -> None:
    ca = trustme.CA()
    first, second = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    provider = Rotating(first)
    running = ExtenderServer(service, tls=provider).start()
    try:
        assert running.url.startswith("https://127.0.0.1:")
        before = serial_seen(running.port, ca)
        provider.use(second)
        after = serial_seen(running.port, ca)
    finally:
        running.stop()
    assert before != after


def test_a_client_that_is_not_tls_does_not_stop_the_server(service: RecordingService) -> None:
    ca = trustme.CA()
    running = ExtenderServer(service, tls=Rotating(ca.issue_cert("127.0.0.1"))).start()
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as plain:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            plain.recv(1024)
        assert serial_seen(running.port, ca) > 0
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":9395", ("0.0.0.0", 9395)), ("[::1]:443", ("::1", 443))],
)
def test_bind_addresses_are_split_like_go_flags(text: str, expected: tuple[str, int]) -> None:
    assert split_bind(text, 80) == expected
