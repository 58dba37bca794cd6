"""A local HTTP CONNECT proxy that stands in for the Service network of the real control plane.

kube-apiserver's ``cluster`` egress selector (``controlplane.py``) tunnels every dial to a Service
(webhooks, aggregated APIs) through this proxy; it connects a routed target (``service_routes.py``) to
its 127.0.0.1 port and answers 403 for anything else, 400 for a malformed request and 502 when the
port refuses. It listens on a unix socket (kube-apiserver v1.37 dereferences a TCP transport's
absent TLS configuration, so plain HTTP over TCP is not an option); one thread per tunnel.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from pathlib import Path

from hami_core.localcluster.service_routes import MAX_HEAD
from hami_core.localcluster.service_routes import BadConnect
from hami_core.localcluster.service_routes import ServiceRoutes
from hami_core.localcluster.service_routes import parse_connect
from hami_core.localcluster.service_routes import reply

_log = logging.getLogger(__name__)
#: Seconds a client has to send its request head, and the proxy to reach the routed port.
_HANDSHAKE_SECONDS = 10.0
_CHUNK = 65536


class ServiceProxy:
    """The proxy server on the unix socket ``path``; ``routes`` says where each target goes.

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.routes = ServiceRoutes()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServiceProxy:
        self.path.unlink(missing_ok=True)
        self._server = _Server(str(self.path), self.routes)
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every open tunnel and wait for the accept loop; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_tunnels()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ServiceProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, routes: ServiceRoutes) -> None:
        self.routes = routes
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(path, _Tunnel)

    def track(self, sock: socket.socket, *, add: bool) -> None:
        with self._open_lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_tunnels(self) -> None:
        with self._open_lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()


class _Tunnel(socketserver.BaseRequestHandler):
    """One CONNECT: read the head, answer, then copy bytes both ways until either side closes."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        client = self.request
        self.server.track(client, add=True)
        try:
            self._serve(client)
        finally:
            self.server.track(client, add=False)

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(_HANDSHAKE_SECONDS)
        try:
            head, rest = _read_head(client)
            target = parse_connect(head)
        except (BadConnect, OSError) as err:
            _log.warning("service proxy: bad request: %s", err)
            _send(client, reply(400, "Bad Request"))
            return
        port = self.server.routes.resolve(target)
        if port is None:
            _log.warning("service proxy: refused %s: no route to a loopback port", target)
            _send(client, reply(403, "Forbidden"))
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=_HANDSHAKE_SECONDS)
        except OSError as err:
            _log.warning("service proxy: %s -> 127.0.0.1:%d: %s", target, port, err)
            _send(client, reply(502, "Bad Gateway"))
            return
        self.server.track(upstream, add=True)
        try:
            client.settimeout(None)
            upstream.settimeout(None)
            client.sendall(reply(200, "Connection established"))
            if rest:
                upstream.sendall(rest)
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()
        except OSError:
            pass  # a side went away mid-tunnel; both are closed below
        finally:
            self.server.track(upstream, add=False)
            _close(upstream)


def _read_head(client: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and any bytes already read after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            raise BadConnect(f"request head longer than {MAX_HEAD} bytes")
        chunk = client.recv(4096)
        if not chunk:
            raise BadConnect("connection closed before the end of the request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until EOF, then half-close ``sink`` so its peer sees the EOF."""
    try:
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        _close(sink)
        _close(source)


def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the client is gone; nothing to tell it
        sock.sendall(data)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected (any more)
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
