"""The webhook's protocol edge: AdmissionReview bytes in, HTTP status and AdmissionReview bytes out.

:class:`AdmissionHandler` is what the scheduler's HTTPS server mounts at ``/webhook``. It turns
every outcome into a reply and never raises: a body that is not an AdmissionReview is HTTP 400
with a ``Status`` body; a pod the webhook refuses (malformed, denied by rule, or a fault inside
hami) is an AdmissionReview with ``allowed: false``, a code and a message, so kube-apiserver
refuses it whatever the ``failurePolicy``; anything that is not a pod CREATE is allowed untouched.

:class:`WebhookServer` is a small standalone HTTPS server around the handler (tests, demos, a
webhook-only process); it reloads a rotated certificate through
:class:`~hami_core.webhook.tls.ReloadingCertificate` and bounds every connection with a timeout
and every body with a size limit, so a client can neither crash nor hang it.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from hami_core.backend import DeviceBackend
from hami_core.errors import CodecError
from hami_core.serving import TrackingHTTPServer
from hami_core.webhook import review
from hami_core.webhook.mutating import Capacity
from hami_core.webhook.mutating import QuotaCheck
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.mutating import mutate_pod
from hami_core.webhook.tls import ReloadingCertificate

log = logging.getLogger(__name__)

#: Where kube-apiserver posts reviews (HAMi's chart: ``clientConfig.service.path``).
WEBHOOK_PATH = "/webhook"
#: Larger bodies are refused; kube-apiserver's own request limit is 3 MiB, a review wraps one object.
MAX_BODY_BYTES = 8 * 1024 * 1024


class AdmissionHandler:
    """Answers AdmissionReview requests for pods with the enabled backends.

    Args:
        backends: the enabled backends (a :class:`~hami_core.plugins.Backends` will do).
        settings: scheduler name and overwrite rule.
        capacity: registered devices now, for warnings about requests nothing can satisfy.
        quota: the namespace quota pre-check; ``None`` skips it.
        max_body: bodies longer than this are refused with 413.
    """

    def __init__(
        self,
        backends: Iterable[DeviceBackend],
        settings: WebhookSettings,
        capacity: Capacity | None = None,
        *,
        quota: QuotaCheck | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._backends = tuple(backends)
        self._settings = settings
        self._capacity = capacity
        self._quota = quota
        self._max_body = max_body

    def handle(self, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering ``body``; never raises."""
        if len(body) > self._max_body:
            return 413, review.bad_request(f"the body has {len(body)} bytes, more than {self._max_body}", 413)
        try:
            request = review.parse_review(body)
        except CodecError as err:
            log.info("refused a webhook call that is not an AdmissionReview: %s", err)
            return 400, review.bad_request(str(err))
        try:
            reply = self._answer(request)
        except Exception as err:  # a fault of hami's must refuse this pod, not take the server down
            log.exception("admission of request %s failed", request.uid)
            reply = review.deny(request, 500, f"the hami webhook failed: {type(err).__name__}: {err}")
        return 200, review.encode(reply)

    def _answer(self, request: review.AdmissionRequest) -> review.AdmissionReview:
        if request.problem:
            return review.deny(request, 400, request.problem)
        if not request.is_pod_create:
            return review.allow(request)
        outcome = mutate_pod(
            request.object,
            self._backends,
            self._settings,
            namespace=request.namespace,
            capacity=self._capacity,
            quota=self._quota,
        )
        if not outcome.allowed:
            log.info(
                "denied pod %s/%s: %s", request.namespace, request.name or "<generated>", outcome.message
            )
            return review.deny(request, outcome.code, outcome.message, outcome.warnings)
        return review.allow(request, outcome.patch, outcome.warnings)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        # Every read on the connection, the TLS handshake included, gives up after this long.
        self.request.settimeout(self.server.request_timeout)
        # Headers and body go out in separate writes; with Nagle's algorithm the body would wait
        # for the client's delayed ACK (about 40 ms per reply).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def do_POST(self) -> None:
        refusal = self._refusal()
        if refusal is not None:
            # The body was not read, so the connection cannot carry another request.
            self._reply(refusal[0], review.bad_request(refusal[1], refusal[0]), close=True)
            return
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        status, data = self.server.admission.handle(body)
        self._reply(status, data)

    def _refusal(self) -> tuple[int, str] | None:
        """Why a POST is refused before its body is read, if it is."""
        if urlsplit(self.path).path != self.server.path:
            return 404, f"no webhook at {self.path}"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return 411, "send the body with a Content-Length"
        text = self.headers.get("Content-Length", "")
        if not text.isdigit():
            return 411, "a Content-Length header is required"
        if int(text) > self.server.max_body:
            return 413, f"the body has {text} bytes, more than {self.server.max_body}"
        return None

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/healthz":
            self._reply(200, b"ok", "text/plain; charset=utf-8")
            return
        self._reply(404, review.bad_request(f"nothing at {self.path}", 404))

    def _reply(
        self, status: int, data: bytes, content_type: str = "application/json", *, close: bool = False
    ) -> None:
        self.send_response(status)
        if close:
            self.send_header("Connection", "close")  # also makes the handler end the connection
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(TrackingHTTPServer):
    """The standalone webhook server's connections, tracked so :meth:`WebhookServer.stop` ends them."""

    def __init__(
        self,
        address: tuple[str, int],
        admission: AdmissionHandler,
        path: str,
        request_timeout: float,
        max_body: int,
    ) -> None:
        super().__init__(address, _Handler, request_timeout)
        self.admission = admission
        self.path = path
        self.max_body = max_body


class WebhookServer:
    """A standalone HTTPS server for an :class:`AdmissionHandler` at ``path``, plus ``/healthz``.

    Args:
        admission: the handler answering reviews.
        certificate: the serving certificate; a rotated one is picked up at the next handshake.
        host: address to listen on.
        port: port to listen on; 0 lets the OS choose.
        path: the webhook path.
        request_timeout: seconds a connection may stay silent (handshake, headers, body).
        max_body: larger bodies are refused with 413 without being read.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        admission: AdmissionHandler,
        certificate: ReloadingCertificate,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = WEBHOOK_PATH,
        request_timeout: float = 10.0,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._admission = admission
        self._certificate = certificate
        self._host = host
        self._port = port
        self._path = path
        self._request_timeout = request_timeout
        self._max_body = max_body
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``https://127.0.0.1:43817`` (append :data:`WEBHOOK_PATH`)."""
        return f"https://{self._host}:{self._port}"

    def start(self) -> WebhookServer:
        """Listen and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("the webhook server is already running")
        httpd = _Server(
            (self._host, self._port), self._admission, self._path, self._request_timeout, self._max_body
        )
        # The handshake runs in the connection's thread on first read, under its timeout,
        # so a silent client cannot stall the accept loop.
        httpd.socket = self._certificate.context().wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="webhook", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and end every open connection."""
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
