"""Where the service proxy sends a tunnel: HTTP CONNECT request heads and the table of routes.

kube-apiserver dials a webhook Service at its cluster IP (``<clusterIP>:<port>``), through the
``cluster`` egress selector when one is configured. No kube-proxy runs here, so the local control
plane's egress selector names a loopback HTTP CONNECT proxy (``service_proxy.py``), and a test
registers which loopback port stands for a Service's port. A target that nobody registered is
refused: nothing the API server dials leaves this machine's loopback interface.
"""

from __future__ import annotations

import threading

#: The most bytes a CONNECT request head may have (request line and headers).
MAX_HEAD = 8192


class BadConnect(ValueError):
    """The request head is not a CONNECT to ``host:port``."""


def parse_connect(head: bytes) -> str:
    """The ``host:port`` that an HTTP/1.x CONNECT request head asks for (host in lower case).

    Raises:
        BadConnect: not a CONNECT, not HTTP/1.x, or no valid ``host:port`` target.
    """
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError as err:
        raise BadConnect("the request head is not ASCII") from err
    parts = text.split("\r\n", 1)[0].split(" ")
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        raise BadConnect(f"not an HTTP/1.x CONNECT request line: {parts!r}")
    return normalize_target(parts[1])


def normalize_target(target: str) -> str:
    """``target`` as ``host:port`` with the host in lower case (DNS names ignore case).

    Raises:
        BadConnect: no host, or a port that is not a number from 1 to 65535.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadConnect(f"not a host:port target: {target!r}")
    return f"{host.lower()}:{int(port)}"


def service_targets(namespace: str, name: str, cluster_ip: str, port: int) -> tuple[str, ...]:
    """The targets by which a client dials Service ``namespace/name`` at ``port``: its cluster IP
    (what kube-apiserver dials for a webhook) and its DNS names."""
    return tuple(
        normalize_target(f"{host}:{port}")
        for host in (cluster_ip, f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local")
        if host
    )


def reply(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 response head with no body; a 2xx answer to CONNECT carries no
    Content-Length (RFC 9110, 9.3.6), as the tunnel's bytes follow it."""
    length = "" if 200 <= status < 300 else "Content-Length: 0\r\n"
    return f"HTTP/1.1 {status} {reason}\r\n{length}\r\n".encode("ascii")


class ServiceRoutes:
    """``host:port`` targets mapped to loopback ports; safe to use from several threads."""

    def __init__(self) -> None:
        self._ports: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, targets: tuple[str, ...], port: int) -> None:
        """Send tunnels to any of ``targets`` to ``127.0.0.1:port`` (replacing earlier routes)."""
        with self._lock:
            for target in targets:
                self._ports[normalize_target(target)] = port

    def remove(self, targets: tuple[str, ...]) -> None:
        """Forget ``targets``; unknown ones are ignored."""
        with self._lock:
            for target in targets:
                self._ports.pop(normalize_target(target), None)

    def resolve(self, target: str) -> int | None:
        """The loopback port for ``target``, or None when it is not routed."""
        with self._lock:
            return self._ports.get(target)
