"""HTTP edge of the API server emulator: routing, bodies, responses and watch streams.

Turns requests into :class:`~hami_core.localcluster.registry.Registry` calls and ``ApiError``
into Kubernetes ``Status`` bodies; it holds no API logic. One daemon thread per connection
(HTTP/1.1 keep-alive), optional TLS, and a kubeconfig writer so the official ``kubernetes``
client and ``kubectl`` can be pointed at it.

What the emulator does not do, so nobody has to find out the hard way: request bodies must be
JSON or YAML, or protobuf for the few kinds :mod:`protobuf_bodies` reads (Secrets, ConfigMaps and
DeleteOptions, which Helm's release storage sends; kubectl's typed generators such as ``kubectl
create namespace`` still get 415; ``kubectl apply``/``create -f`` work), server-side apply is
refused with 415, requests are not authenticated (a ``serviceaccount:<ns>:<name>`` bearer token
is authorized with RBAC, see :mod:`rbac`; any other token is unrestricted), ``limit``/``continue``
return everything at once, ``fieldValidation`` is accepted but not enforced, pod spec immutability
is not enforced, deleting a namespace does not delete its contents, and webhooks are called once
(no ``reinvocationPolicy``).
"""

from __future__ import annotations

import base64
import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import attrs
import yaml

from hami_core import yaml_documents
from hami_core.localcluster import discovery
from hami_core.localcluster import protobuf_bodies
from hami_core.localcluster import rbac
from hami_core.localcluster import statuses
from hami_core.localcluster import tables
from hami_core.localcluster.admission import MutatingAdmission
from hami_core.localcluster.admission import ServiceUrls
from hami_core.localcluster.registry import Registry
from hami_core.localcluster.registry import WatchStream
from hami_core.localcluster.resources import RESOURCES
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType
from hami_core.localcluster.resources import lookup
from hami_core.localcluster.store import SnapshotWriter
from hami_core.localcluster.store import Store

log = logging.getLogger(__name__)

_NOT_FOUND = statuses.ApiError(404, "NotFound", "the server could not find the requested resource")
_NOT_ALLOWED = statuses.ApiError(
    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
)


@attrs.frozen
class ServingTLS:
    """PEM files for serving HTTPS.

    Attributes:
        cert_file: the server certificate chain (valid for the host clients dial).
        key_file: its private key.
        ca_file: the CA that signed it; written into the kubeconfig.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path


@attrs.frozen
class _Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


class ApiServer:
    """An in-memory Kubernetes API server on a local port.

    Args:
        host: address to listen on.
        port: port to listen on; 0 lets the OS choose (kept across restarts of this object).
        state_file: JSON snapshot kept current while running and loaded on start, so a
            restart loses nothing.
        tls: serve HTTPS with these files instead of HTTP.
        service_urls: where webhook ``clientConfig.service`` references point.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        history_size: events kept for watches resuming from a resourceVersion.
        clock: wall-clock seconds, for timestamps.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | str | None = None,
        tls: ServingTLS | None = None,
        *,
        service_urls: ServiceUrls | None = None,
        bookmark_interval: float = 5.0,
        history_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._port = port
        self._state_file = Path(state_file) if state_file is not None else None
        self._tls = tls
        self._admission = MutatingAdmission(service_urls)
        self._bookmark_interval = bookmark_interval
        self._history_size = history_size
        self._clock = clock
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._writer: SnapshotWriter | None = None
        self._authorizer: rbac.Authorizer | None = None

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:43817``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def rbac_denials(self) -> list[str]:
        """Every request made as a service account that RBAC refused, oldest first."""
        return list(self._authorizer.denials) if self._authorizer is not None else []

    def map_service(self, namespace: str, name: str, port: int, url: str) -> None:
        """Point webhook calls for Service ``namespace/name:port`` at ``url``."""
        self._admission.map_service(namespace, name, port, url)

    def unmap_service(self, namespace: str, name: str, port: int) -> None:
        """Forget ``map_service``'s URL: calls for that Service fail as unreachable again."""
        self._admission.unmap_service(namespace, name, port)

    def start(self) -> ApiServer:
        """Load the snapshot (if any), create the default namespaces and start serving."""
        if self._httpd is not None:
            raise RuntimeError("the API server is already running")
        store = Store(RESOURCES, history_size=self._history_size)
        if self._state_file is not None and (snapshot := SnapshotWriter.load(self._state_file)) is not None:
            store.restore(snapshot)
        registry = Registry(store, self._admission, clock=self._clock)
        registry.ensure_default_namespaces()
        self._authorizer = rbac.Authorizer(registry)
        httpd = _Server(
            (self._host, self._port), registry, self._bookmark_interval, self._clock, self._authorizer
        )
        if self._tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._port = httpd.server_address[1]
        httpd.address = f"{self._host}:{self._port}"
        if self._state_file is not None:
            self._writer = SnapshotWriter(store, self._state_file)
            self._writer.start()
        self._store, self._httpd = store, httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="apiserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end every watch and connection, and write the final snapshot."""
        if self._httpd is None or self._store is None or self._thread is None:
            return
        self._store.close()
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._writer is not None:
            self._writer.stop()
        self._httpd = self._store = self._writer = self._thread = None

    def write_kubeconfig(self, path: Path | str) -> Path:
        """Write a kubeconfig for this server (context ``hami-local``, namespace ``default``).

        Returns:
            The path written.
        """
        cluster: JsonObj = {"server": self.url}
        if self._tls is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._tls.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "hami-local", "cluster": cluster}],
            # The server does not authenticate; a token keeps kubectl from prompting for a
            # username on HTTPS servers.
            "users": [{"name": "hami-local", "user": {"token": "hami-local"}}],
            "contexts": [
                {
                    "name": "hami-local",
                    "context": {"cluster": "hami-local", "user": "hami-local", "namespace": "default"},
                }
            ],
            "current-context": "hami-local",
        }
        out = Path(path)
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        return out

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    """Threading HTTP server that remembers its connections so stop can end them."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: Registry,
        bookmark_interval: float,
        clock: Callable[[], float],
        authorizer: rbac.Authorizer,
    ) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.authorizer = authorizer
        self.bookmark_interval = bookmark_interval
        self.clock = clock
        self.address = ""
        self._lock = threading.Lock()
        self._connections: dict[Any, threading.Thread] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address), daemon=True)
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.pop(request, None)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("connection already closed")
        for _, thread in connections:
            thread.join(timeout=5)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each response would wait
    # for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            self._dispatch(method, url.path, query, body)
        except statuses.ApiError as err:
            self._send(err.code, err.body())
        except Exception as err:  # a bug must answer 500, never drop the connection silently
            log.exception("%s %s failed", method, self.path)
            self._send(500, statuses.internal(repr(err)).body())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise statuses.ApiError(
                411, "BadRequest", "chunked request bodies are not supported; send Content-Length"
            )
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if method == "GET" and (doc := _static_document(path, self.server.address)) is not None:
            self._send(200, doc)
            return
        route = _route(path)
        if route is None:
            raise _NOT_FOUND
        dry_run = _dry_run(query)
        registry = self.server.registry
        rt, namespace, name, sub = route.rt, route.namespace, route.name, route.subresource
        ns = namespace or ""
        account = rbac.service_account(self.headers.get("Authorization"))
        if account is not None:
            verb = rbac.verb_of(method, named=name is not None, watch=query.get("watch") in ("true", "1"))
            self.server.authorizer.check(rbac.Request(*account, verb, rt, sub, ns, name or ""))
        if name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                self._watch(route, query)
            elif method == "GET":
                listed = registry.list(rt, namespace, **_selectors(query))
                self._send(
                    200, self._tabulate(rt, listed["items"], listed["metadata"]["resourceVersion"]) or listed
                )
            elif method == "POST" and (namespace is not None or not rt.namespaced):
                written = registry.create(rt, ns, self._decode(body), dry_run=dry_run)
                self._send(201, written.obj, warnings=written.warnings)
            elif method == "DELETE":
                self._send(200, registry.delete_collection(rt, namespace, **_selectors(query)))
            else:
                raise _NOT_ALLOWED
        elif sub == "binding":
            if method != "POST":
                raise _NOT_ALLOWED
            registry.bind(ns, name, self._decode(body))
            self._send(201, statuses.status_body(201, "", ""))
        elif method == "GET":
            obj = registry.get(rt, ns, name)
            self._send(
                200, obj if sub else self._tabulate(rt, [obj], obj["metadata"]["resourceVersion"]) or obj
            )
        elif method == "PUT":
            self._send(
                200, registry.update(rt, ns, name, self._decode(body), subresource=sub, dry_run=dry_run)
            )
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type", "")
            self._send(
                200, registry.patch(rt, ns, name, body, content_type, subresource=sub, dry_run=dry_run)
            )
        elif method == "DELETE" and not sub:
            self._delete(rt, ns, name, self._decode(body) if body else None, dry_run)
        else:
            raise _NOT_ALLOWED

    def _decode(self, body: bytes) -> Any:
        """The request body as JSON (YAML is accepted too, as kube-apiserver does)."""
        media = self.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        if media == protobuf_bodies.MEDIA_TYPE:
            return protobuf_bodies.decode(body)
        if media not in ("application/json", "application/yaml", "*/*", ""):
            # kubectl's typed clients (``kubectl create namespace``) send protobuf, which the
            # emulator cannot decode; ``kubectl create -f`` and ``apply`` send JSON.
            message = (
                f"the body of the request was in an unknown format ({media}) - "
                "accepted media types include: application/json, application/yaml"
            )
            raise statuses.ApiError(415, "UnsupportedMediaType", message)
        try:
            return (
                yaml_documents.parse_yaml(body, "body") if media == "application/yaml" else json.loads(body)
            )
        except ValueError as err:
            raise statuses.bad_request(f"couldn't get version/kind; json parse error: {err}") from err

    def _delete(self, rt: ResourceType, namespace: str, name: str, options: Any, dry_run: bool) -> None:
        deleted = self.server.registry.delete(rt, namespace, name, options, dry_run=dry_run)
        if not deleted.finished:
            self._send(202, deleted.obj)
        elif rt.returns_deleted:
            self._send(200, deleted.obj)
        else:
            uid = deleted.obj["metadata"].get("uid", "")
            details = {"name": name, "group": rt.group, "kind": rt.plural, "uid": uid}
            self._send(200, statuses.status_body(200, "", "", {k: v for k, v in details.items() if v}))

    def _watch(self, route: _Route, query: dict[str, str]) -> None:
        timeout = query.get("timeoutSeconds", "")
        if timeout and not timeout.isdigit():
            raise statuses.bad_request(f'timeoutSeconds: Invalid value: "{timeout}"')
        # An expired resourceVersion is reported inside the stream, as kube-apiserver does.
        opening: list[JsonObj] = []
        stream: WatchStream | None = None
        try:
            stream = self.server.registry.watch(
                route.rt,
                route.namespace,
                resource_version=query.get("resourceVersion", ""),
                **_selectors(query),
            )
        except statuses.ApiError as err:
            if err.code != 410:
                raise
            opening.append({"type": "ERROR", "object": err.body()})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        # timeoutSeconds=0 means "no timeout", as for kube-apiserver's (randomised) default.
        deadline = time.monotonic() + int(timeout) if timeout and int(timeout) > 0 else None
        wants_bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        bookmarks = self.server.bookmark_interval if wants_bookmarks else None
        try:
            for event in opening:
                self._chunk(event)
            if stream is not None:
                for event in stream.events(
                    deadline=deadline, bookmark_interval=bookmarks, alive=self._client_alive
                ):
                    rows = (
                        None
                        if event["type"] == "BOOKMARK"
                        else self._tabulate(route.rt, [event["object"]], "")
                    )
                    self._chunk(event if rows is None else {"type": event["type"], "object": rows})
            # The stream is terminated properly, so the connection can carry the client's next request
            # (a pooling client reuses it at once, as with kube-apiserver).
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            log.debug("watch client went away")
            self.close_connection = True
        finally:
            if stream is not None:
                stream.close()

    def _tabulate(self, rt: ResourceType, objects: list[JsonObj], resource_version: str) -> JsonObj | None:
        """A Table of ``objects`` when the client asked for one and ``rt`` has columns."""
        if not tables.wants_table(self.headers.get("Accept", "")):
            return None
        return tables.table(rt, objects, resource_version, self.server.clock())

    def _chunk(self, event: JsonObj) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _client_alive(self) -> bool:
        conn = self.connection
        try:
            if not select.select([conn], [], [], 0)[0]:
                return True
            conn.settimeout(0)
            try:
                data = conn.recv(1) if isinstance(conn, ssl.SSLSocket) else conn.recv(1, socket.MSG_PEEK)
            finally:
                conn.settimeout(None)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except (OSError, ValueError):
            return False
        return bool(data)

    def _send(self, code: int, doc: JsonObj | str, *, warnings: tuple[str, ...] = ()) -> None:
        if isinstance(doc, str):
            data, content_type = doc.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(doc, separators=(",", ":")).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for text in warnings:
            escaped = text.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _static_document(path: str, address: str) -> JsonObj | str | None:
    parts = [p for p in path.split("/") if p]
    if parts in (["healthz"], ["livez"], ["readyz"]):
        return "ok"
    if parts == ["version"]:
        return discovery.KUBE_VERSION
    if parts == ["api"]:
        return discovery.api_versions(address)
    if parts == ["apis"]:
        return discovery.api_group_list()
    if len(parts) == 2 and parts[0] == "api":
        return discovery.resource_list("", parts[1])
    if len(parts) == 2 and parts[0] == "apis":
        return discovery.api_group(parts[1])
    if len(parts) == 3 and parts[0] == "apis":
        return discovery.resource_list(parts[1], parts[2])
    if parts == ["openapi", "v3"]:
        return discovery.openapi_v3_index()
    if parts[:2] == ["openapi", "v3"]:
        return discovery.openapi_v3_document("/".join(parts[2:]))
    return None


def _route(path: str) -> _Route | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        scoped = lookup(group, version, rest[2])
        if scoped is not None and scoped.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if (sub and sub not in rt.subresources) or (name is not None and rt.namespaced and namespace is None):
        return None
    return _Route(rt, namespace, name, sub)


def _selectors(query: dict[str, str]) -> dict[str, str]:
    return {
        "label_selector": query.get("labelSelector", ""),
        "field_selector": query.get("fieldSelector", ""),
    }


def _dry_run(query: dict[str, str]) -> bool:
    value = query.get("dryRun")
    if value not in (None, "All"):
        raise statuses.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"
