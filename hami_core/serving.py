"""HTTP server plumbing of hami's HTTP edge, the scheduler's server (extender verbs and ``/webhook``).

:class:`TrackingHTTPServer` is a thread-per-connection server that tracks open connections, so
``stop()`` can end keep-alive clients instead of hanging, runs TLS handshakes in the connection's
own thread (a silent client never blocks ``accept``), and treats resets, timeouts and failed
handshakes as the client's business. It makes no decision about requests: handlers do.
:func:`nested_deeper_than` and :func:`is_json` are the shape checks every JSON route shares.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

_log = logging.getLogger(__name__)

#: Decoded request bodies nested deeper than this are refused: a pod is about 15 levels deep, and
#: code that walks a value recursively (copies, encoders) must never meet a RecursionError.
MAX_JSON_DEPTH = 64


def nested_deeper_than(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels deep (walked without recursion)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header names JSON (``application/json``, parameters and case aside)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


class TrackingHTTPServer(ThreadingHTTPServer):
    """One thread per connection; open connections are tracked so they can be ended on stop.

    Args:
        address: ``(host, port)`` to listen on.
        handler: the request handler class.
        request_timeout: seconds a connection may stay silent (TLS handshake, headers, body).
    """

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], request_timeout: float
    ) -> None:
        super().__init__(address, handler)
        self.request_timeout = request_timeout
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(self.request_timeout)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError) as err:
                _log.debug("TLS handshake with %s failed: %s", client_address, err)
                return
        super().finish_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (after ``shutdown()``, so no new one is accepted)."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets, timeouts and failed handshakes are the client's business; log and keep serving.
        _log.debug("connection from %s failed", client_address, exc_info=True)
