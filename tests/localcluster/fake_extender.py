"""A scheduler extender for tests: a real HTTP(S) server on 127.0.0.1 that records what it receives.

Replies come from ``handler(verb, body) -> (status, reply)``; the default keeps every node, gives no
scores and answers bind with an empty error.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import attrs

Reply = tuple[int, Any]


@attrs.frozen
class Received:
    path: str
    content_type: str
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


def keep_every_node(verb: str, body: Any) -> Reply:
    if verb == "filter":
        return 200, {"Nodes": body["Nodes"], "NodeNames": body["NodeNames"], "FailedNodes": {}, "Error": ""}
    if verb == "prioritize":
        return 200, []
    return 200, {"Error": ""}


class FakeExtender:
    """Serves POST /<prefix>/<verb>; ``received`` lists every request in order."""

    def __init__(
        self, handler: Callable[[str, Any], Reply] = keep_every_node, *, tls: ssl.SSLContext | None = None
    ):
        self.handler = handler
        self.received: list[Received] = []
        extender = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                extender.received.append(Received(self.path, self.headers.get("Content-Type", ""), raw))
                status, reply = extender.handler(self.path.rsplit("/", 1)[-1], json.loads(raw))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_port}/ext"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> FakeExtender:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def verbs(self) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in self.received]
