"""The service proxy: CONNECT heads, the route table, and tunnels to loopback servers only."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hami_core.localcluster.service_proxy import ServiceProxy
from hami_core.localcluster.service_routes import BadConnect
from hami_core.localcluster.service_routes import ServiceRoutes
from hami_core.localcluster.service_routes import parse_connect
from hami_core.localcluster.service_routes import reply
from hami_core.localcluster.service_routes import service_targets


def test_a_connect_head_names_its_target_with_the_host_in_lower_case() -> None:
    head = b"CONNECT Hami-Scheduler.Kube-System.svc:443 HTTP/1.1\r\nHost: 127.0.0.1"
    assert parse_connect(head) == "hami-scheduler.kube-system.svc:443"
    assert parse_connect(b"CONNECT 10.0.0.17:443 HTTP/1.0") == "10.0.0.17:443"


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x",
        b"CONNECT 10.0.0.17:443",
        b"CONNECT 10.0.0.17:443 HTTP/2",
        b"CONNECT 10.0.0.17 HTTP/1.1",
        b"CONNECT :443 HTTP/1.1",
        b"CONNECT 10.0.0.17:0 HTTP/1.1",
        b"CONNECT 10.0.0.17:65536 HTTP/1.1",
        b"CONNECT 10.0.0.17:https HTTP/1.1",
        b"CONNECT  10.0.0.17:443 HTTP/1.1",
        "CONNECT h\u00e9te:443 HTTP/1.1".encode(),
    ],
)
def test_anything_but_a_connect_to_host_and_port_is_a_bad_request(head: bytes) -> None:
    with pytest.raises(BadConnect):
        parse_connect(head)


def test_a_service_is_reached_by_its_cluster_ip_and_its_dns_names() -> None:
    assert service_targets("kube-system", "hami-scheduler", "10.0.0.17", 443) == (
        "10.0.0.17:443",
        "hami-scheduler.kube-system.svc:443",
        "hami-scheduler.kube-system.svc.cluster.local:443",
    )
    # A headless Service has no cluster IP: only its names.
    assert service_targets("ns", "s", "", 80) == ("s.ns.svc:80", "s.ns.svc.cluster.local:80")


def test_routes_are_added_replaced_and_removed() -> None:
    routes = ServiceRoutes()
    targets = service_targets("ns", "s", "10.0.0.5", 443)
    routes.add(targets, 31000)
    assert [routes.resolve(t) for t in targets] == [31000] * 3
    routes.add(targets[:1], 31001)
    assert routes.resolve("10.0.0.5:443") == 31001
    routes.remove(targets)
    routes.remove(targets)  # twice is harmless
    assert routes.resolve("10.0.0.5:443") is None


def test_a_successful_connect_answer_has_no_length_and_a_refusal_has_an_empty_body() -> None:
    assert reply(200, "Connection established") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert reply(403, "Forbidden") == b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"


class _Echo(socketserver.ThreadingTCPServer):
    daemon_threads = True


class _EchoHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data.upper())


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback server that answers every chunk in upper case."""
    server = _Echo(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ServiceProxy]:
    with ServiceProxy(tmp_path / "proxy.sock") as running:
        yield running


def _connect_reading_past_the_head(proxy: ServiceProxy, head: bytes) -> tuple[socket.socket, bytes, bytes]:
    """A client of ``proxy`` that sent ``head``; the answer's head and the tunnelled bytes read with it.

    Under load the tunnel's first bytes can arrive in the same read as the answer's head.
    """
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(proxy.path))
    client.sendall(head)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        if not chunk:
            return client, data, b""
        data += chunk
    answer, _, after = data.partition(b"\r\n\r\n")
    return client, answer + b"\r\n\r\n", after


def _connect(proxy: ServiceProxy, head: bytes) -> tuple[socket.socket, bytes]:
    """A client of ``proxy`` that sent ``head`` and read the answer's head (and nothing after it)."""
    client, answer, after = _connect_reading_past_the_head(proxy, head)
    assert after == b""
    return client, answer


def _recv_exactly(client: socket.socket, size: int, already: bytes = b"") -> bytes:
    data = already
    while len(data) < size and (chunk := client.recv(4096)):
        data += chunk
    return data


def test_a_routed_target_is_tunnelled_both_ways_to_its_loopback_port(
    proxy: ServiceProxy, echo_port: int
) -> None:
    proxy.routes.add(service_targets("ns", "s", "10.0.0.5", 443), echo_port)
    client, answer = _connect(proxy, b"CONNECT 10.0.0.5:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    with client:
        assert answer == b"HTTP/1.1 200 Connection established\r\n\r\n"
        client.sendall(b"hello through the tunnel")
        assert _recv_exactly(client, 24) == b"HELLO THROUGH THE TUNNEL"
        client.shutdown(socket.SHUT_WR)
        assert client.recv(4096) == b""  # the server's end closes after ours


def test_bytes_sent_with_the_head_reach_the_target(proxy: ServiceProxy, echo_port: int) -> None:
    proxy.routes.add(("s.ns.svc:443",), echo_port)
    client, answer, after = _connect_reading_past_the_head(
        proxy, b"CONNECT S.ns.svc:443 HTTP/1.1\r\n\r\nearly"
    )
    with client:
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert _recv_exactly(client, 5, after) == b"EARLY"


def test_an_unrouted_target_is_refused_and_logged(
    proxy: ServiceProxy, echo_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.routes.add(("10.0.0.5:443",), echo_port)
    with caplog.at_level(logging.WARNING, logger="hami_core.localcluster.service_proxy"):
        client, answer = _connect(proxy, b"CONNECT 192.0.2.7:443 HTTP/1.1\r\n\r\n")
        with client:
            assert answer == b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
            assert client.recv(4096) == b""
    assert "refused 192.0.2.7:443" in caplog.text


@pytest.mark.parametrize(
    "head", [b"GET / HTTP/1.1\r\n\r\n", b"CONNECT nowhere HTTP/1.1\r\n\r\n", b"X" * 9000 + b"\r\n\r\n"]
)
def test_a_bad_request_is_answered_400(proxy: ServiceProxy, head: bytes) -> None:
    client, answer = _connect(proxy, head)
    with client:
        assert answer == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


def test_a_route_to_a_closed_port_is_answered_502(proxy: ServiceProxy) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    proxy.routes.add(("10.0.0.5:443",), closed)
    client, answer = _connect(proxy, b"CONNECT 10.0.0.5:443 HTTP/1.1\r\n\r\n")
    with client:
        assert answer.startswith(b"HTTP/1.1 502 ")


def test_stop_closes_open_tunnels_and_removes_the_socket(tmp_path: Path, echo_port: int) -> None:
    proxy = ServiceProxy(tmp_path / "proxy.sock").start()
    proxy.routes.add(("10.0.0.5:443",), echo_port)
    client, answer = _connect(proxy, b"CONNECT 10.0.0.5:443 HTTP/1.1\r\n\r\n")
    with client:
        assert answer.startswith(b"HTTP/1.1 200 ")
        proxy.stop()
        proxy.stop()  # idempotent
        assert client.recv(4096) == b""
    assert not proxy.path.exists()
