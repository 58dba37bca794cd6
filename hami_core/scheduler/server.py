"""The scheduler's one HTTP(S) edge: extender verbs, admission webhook, health, readiness, metrics.

Routes: ``POST /filter``, ``/prioritize``, ``/bind`` (kube-scheduler's extender JSON, PascalCase keys
matched case-insensitively like Go's decoder, ``specs/kube-wire.md`` 3b), ``POST /webhook`` (handed to
the admission handler as bytes), ``GET /healthz`` (200 while the process serves), ``GET /readyz`` (200
only on the synced leader) and ``GET /metrics`` (Prometheus text from the scheduler's own registry).

A body that is not the extender's JSON (not JSON, nested deeper than
:data:`~hami_core.serving.MAX_JSON_DEPTH`, wrong types) is answered with HTTP 400 and a message; a
request refused before its body is read (unknown route, not ``application/json``, no
``Content-Length``, a body over the cap: 404, 415, 411, 413) also closes the connection; logical
failures are HTTP 200 with the ``Error`` field, as kube-scheduler expects; an exception inside a
handler is HTTP 500 with the ``Error`` field and an ERROR log with its traceback, so every request
gets a reply. With a TLS context provider every accepted connection is wrapped with the provider's
current context, so a rotated certificate is served without a restart; the handshake runs in the
connection's own thread and every connection has a read timeout, so no client can stall the server.
When the provider verifies client certificates, the extender verbs are answered only on a
connection that presented a verified one (403 otherwise); ``/webhook`` and the health routes stay
open to kube-apiserver and kubelet, which present none. Extender bodies are
decoded and encoded with orjson (a 5,000-node ``NodeNames`` list or ``FailedNodes`` map costs a
fraction of what the standard library takes); the time each ``/filter`` spends decoding and encoding
goes to ``observe_phase``. The webhook handler and
the TLS provider are typed by small Protocols here, so this module imports neither implementation.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from typing import Protocol
from typing import cast

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest

from hami_core.errors import PodFormatError
from hami_core.errors import echo
from hami_core.kube.objects import ExtenderBindingResult
from hami_core.kube.objects import ExtenderFilterResult
from hami_core.kube.objects import HostPriority
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.serving import MAX_JSON_DEPTH
from hami_core.serving import TrackingHTTPServer
from hami_core.serving import is_json
from hami_core.serving import nested_deeper_than

_log = logging.getLogger(__name__)

#: Extender bodies above this are refused (a 5,000-node ``NodeNames`` list is ~150 KiB; HAMi reads 1 MiB).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Seconds a connection may sit idle or stall in the middle of a request.
REQUEST_TIMEOUT = 30.0


class AdmissionHandler(Protocol):
    """The mutating webhook: AdmissionReview bytes in, HTTP status and JSON bytes out; never raises."""

    def handle(self, body: bytes) -> tuple[int, bytes]: ...


class TlsContextProvider(Protocol):
    """Hands out the server ``SSLContext`` to wrap each new connection with (reloading certificates)."""

    @property
    def verifies_clients(self) -> bool:
        """Whether the context verifies client certificates, so the extender verbs require one."""
        ...

    def context(self) -> ssl.SSLContext: ...


class ExtenderService(Protocol):
    """The verbs the server routes to (:class:`hami_core.scheduler.extender.Extender`)."""

    def readiness(self) -> tuple[bool, str]: ...

    def filter(
        self, pod: PodView, node_names: Sequence[str] | None, nodes: list[Node] | None
    ) -> ExtenderFilterResult: ...

    def prioritize(self, pod: PodView, node_names: Sequence[str]) -> list[HostPriority]: ...

    def bind(self, namespace: str, name: str, uid: str, node: str) -> ExtenderBindingResult: ...


class BadRequest(ValueError):
    """The body is not the extender JSON the route expects."""


def _field(body: Mapping[str, Any], name: str) -> Any:
    """A key matched the way Go's decoder matches struct fields: exact first, then case-insensitively."""
    if name in body:
        return body[name]
    folded = name.lower()
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == folded:
            return value
    return None


def _object(body: bytes) -> Mapping[str, Any]:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the body is not JSON: {err}") from err
    if not isinstance(decoded, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(decoded).__name__}")
    if nested_deeper_than(decoded):
        raise BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    return decoded


def parse_extender_args(body: bytes) -> tuple[PodView, list[str] | None, list[Node] | None]:
    """``ExtenderArgs``: the pod, ``NodeNames`` and ``Nodes`` (items), each checked for shape.

    Raises:
        BadRequest: with what is wrong.
    """
    args = _object(body)
    pod = _field(args, "Pod")
    if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
        raise BadRequest("extender args missing pod (Pod must be an object with metadata)")
    try:
        view = PodView.from_object(pod)
    except PodFormatError as err:
        raise BadRequest(f"Pod: {err}") from err
    for key, value in (("name", view.name), ("namespace", view.namespace)):
        if not value:
            raise BadRequest(f"Pod.metadata.{key} must be a non-empty string")
    names = _field(args, "NodeNames")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise BadRequest("NodeNames must be a list of strings or null")
    nodes = _field(args, "Nodes")
    items: list[Node] | None = None
    if nodes is not None:
        if not isinstance(nodes, dict) or not isinstance(nodes.get("items") or [], list):
            raise BadRequest("Nodes must be a NodeList object or null")
        items = []
        for item in nodes.get("items") or []:
            if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict):
                raise BadRequest("every item of Nodes must be a node object with metadata")
            items.append(cast(Node, item))
    return view, names, items


def parse_binding_args(body: bytes) -> tuple[str, str, str, str]:
    """``ExtenderBindingArgs``: pod namespace, name, uid and node.

    Raises:
        BadRequest: with what is wrong.
    """
    args = _object(body)
    values = []
    for key, required in (("PodNamespace", True), ("PodName", True), ("PodUID", False), ("Node", True)):
        value = _field(args, key)
        if value is None and not required:
            value = ""
        if not isinstance(value, str) or (required and not value):
            raise BadRequest(f"{key} must be a non-empty string" if required else f"{key} must be a string")
        values.append(value)
    return values[0], values[1], values[2], values[3]


#: The extender verbs (``/webhook`` is served when an admission handler is mounted).
_POST_ROUTES = frozenset({"/filter", "/prioritize", "/bind"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY a keep-alive client waits
    # for the delayed ACK (40 ms) on every reply.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(self.server.request_timeout)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, value: object) -> None:
        self._send(status, _encode(value))

    def _refuse(self, status: int, message: str) -> None:
        """Answer without reading the body; the connection then cannot carry another request."""
        self.send_response(status)
        self.send_header("Connection", "close")  # also makes the handler end the connection
        data = _encode({"Error": message})
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self, route: str) -> bytes | None:
        """The request body, or ``None`` after refusing the request before reading it."""
        if route not in _POST_ROUTES and not (route == "/webhook" and self.server.admission is not None):
            self._refuse(404, f"no route POST {route}")
            return None
        if route in _POST_ROUTES and self.server.verifies_clients and not self._client_verified():
            self._refuse(403, f"POST {route} requires a client certificate signed by the client CA")
            return None
        content_type = self.headers.get("Content-Type")
        if not is_json(content_type):
            sent = echo(content_type) if content_type else "none"
            self._refuse(415, f"the body must be sent as application/json (Content-Type: {sent})")
            return None
        length_text = self.headers.get("Content-Length", "")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not (
            length_text.isascii() and length_text.isdigit()
        ):
            self._refuse(411, "a Content-Length header with the body's size is required")
            return None
        length = int(length_text)
        if length > self.server.max_body:
            self._refuse(413, f"the body has {length} bytes; at most {self.server.max_body} are accepted")
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return None
        return body

    def _client_verified(self) -> bool:
        # With CERT_OPTIONAL a certificate that was sent has been verified in the handshake.
        return isinstance(self.request, ssl.SSLSocket) and bool(self.request.getpeercert())

    def do_POST(self) -> None:
        route = self.path.split("?", 1)[0].rstrip("/")
        body = self._body(route)
        if body is None:
            return
        try:
            self._answer(route, body)
        except (ConnectionError, TimeoutError):
            raise  # the client went away while the reply was written: its business (handle_error)
        except Exception as err:  # a fault of hami's must still answer, and be seen in the log
            _log.exception("POST %s from %s failed", route, self.address_string())
            self._json(500, {"Error": f"hami failed on POST {route}: {type(err).__name__}: {echo(str(err))}"})

    def _answer(self, route: str, body: bytes) -> None:
        service = self.server.service
        try:
            if route == "/filter":
                self._filter(service, body)
            elif route == "/prioritize":
                pod, names, nodes = parse_extender_args(body)
                if names is None and nodes is not None:
                    names = [str((node.get("metadata") or {}).get("name", "")) for node in nodes]
                self._json(200, service.prioritize(pod, names or []))
            elif route == "/bind":
                self._json(200, service.bind(*parse_binding_args(body)))
            elif route == "/webhook" and self.server.admission is not None:
                status, reply = self.server.admission.handle(body)
                self._send(status, reply)
            else:
                self._json(404, {"Error": f"no route POST {route}"})
        except BadRequest as err:
            self._json(400, {"Error": str(err)})

    def _filter(self, service: ExtenderService, body: bytes) -> None:
        started = time.perf_counter()
        pod, names, nodes = parse_extender_args(body)
        decoded = time.perf_counter()
        reply = service.filter(pod, names, nodes)
        answered = time.perf_counter()
        data = _encode(reply)
        observe = self.server.observe_phase
        if observe is not None:
            observe("decode", decoded - started)
            observe("encode", time.perf_counter() - answered)
        self._send(200, data)

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0].rstrip("/")
        try:
            self._get(route)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as err:  # as in do_POST: answered and logged
            _log.exception("GET %s from %s failed", route, self.address_string())
            self._json(500, {"Error": f"hami failed on GET {route}: {type(err).__name__}: {echo(str(err))}"})

    def _get(self, route: str) -> None:
        if route == "/healthz":
            self._send(200, b"ok", "text/plain")
        elif route == "/readyz":
            ready, why = self.server.service.readiness()
            self._send(200 if ready else 503, why.encode(), "text/plain")
        elif route == "/metrics" and self.server.registry is not None:
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        else:
            self._json(404, {"Error": f"no route GET {route}"})


class _Server(TrackingHTTPServer):
    """The extender's connections, tracked so :meth:`ExtenderServer.stop` ends them."""

    def __init__(
        self,
        address: tuple[str, int],
        service: ExtenderService,
        *,
        registry: CollectorRegistry | None,
        admission: AdmissionHandler | None,
        tls: TlsContextProvider | None,
        max_body: int,
        request_timeout: float,
        observe_phase: Callable[[str, float], None] | None = None,
    ) -> None:
        super().__init__(address, _Handler, request_timeout)
        self.service = service
        self.registry = registry
        self.admission = admission
        self.tls = tls
        self.verifies_clients = tls is not None and tls.verifies_clients
        self.max_body = max_body
        self.observe_phase = observe_phase

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake runs in the connection's thread (TrackingHTTPServer.finish_request).
            sock = self.tls.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class ExtenderServer:
    """The scheduler's HTTP(S) server.

    Args:
        service: the extender verbs and readiness.
        host: address to listen on.
        port: port to listen on; 0 picks a free one (see :attr:`port`).
        registry: served at ``/metrics``; ``None`` disables the route.
        admission: served at ``/webhook``; ``None`` disables the route.
        tls: serve HTTPS with the provider's context; ``None`` serves plain HTTP. When the provider
            verifies client certificates, the extender verbs require one.
        max_body: request bodies above this many bytes are refused with 413.
        request_timeout: seconds a connection may stall.
        observe_phase: told the seconds each ``/filter`` spent decoding (``decode``) and encoding
            (``encode``).
    """

    def __init__(
        self,
        service: ExtenderService,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: CollectorRegistry | None = None,
        admission: AdmissionHandler | None = None,
        tls: TlsContextProvider | None = None,
        max_body: int = MAX_BODY_BYTES,
        request_timeout: float = REQUEST_TIMEOUT,
        observe_phase: Callable[[str, float], None] | None = None,
    ) -> None:
        self._server = _Server(
            (host, port),
            service,
            registry=registry,
            admission=admission,
            tls=tls,
            max_body=max_body,
            request_timeout=request_timeout,
            observe_phase=observe_phase,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http(s)://host:port`` of the server."""
        host = str(self._server.server_address[0])
        scheme = "https" if self._server.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> ExtenderServer:
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="hami-extender",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end open connections and wait for their threads."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()


def split_bind(address: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (``:port`` means every interface) as a (host, port) pair.

    Raises:
        ValueError: the port is not a number.
    """
    host, _, port = address.rpartition(":")
    if not _:
        return address or "0.0.0.0", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


def _plain(value: object) -> object:
    """What orjson cannot encode as is: read-only mappings and other sequences."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode(value: object) -> bytes:
    return orjson.dumps(value, default=_plain)
