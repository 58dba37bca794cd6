"""kube-scheduler's ``HTTPExtender`` (pkg/scheduler/extender.go): the JSON it sends, the rules it applies
to replies, and the HTTP(S) POST itself.

Bodies are the PascalCase ``k8s.io/kube-scheduler/extender/v1`` types (no json tags, no omitempty: nil
becomes ``null``), encoded compactly and HTML-safe the way Go's ``encoding/json`` does; replies are
decoded with Go's case-insensitive key matching. The pure functions build and check bodies;
``HttpExtender`` adds the transport (``urlPrefix`` + ``/`` + verb, ``httpTimeout``, TLS as
``enableHTTPS``/``tlsConfig`` say). Decisions about what a failure means for the pod stay in the
scheduler.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import cast

import attrs

from hami_core.errors import HamiError
from hami_core.kube.objects import ExtenderArgs
from hami_core.kube.objects import ExtenderBindingArgs
from hami_core.kube.objects import HostPriority
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.localcluster.scheduler_config import ExtenderConfig
from hami_core.localcluster.scheduler_config import TLSConfig
from hami_core.pods import PodView

MAX_EXTENDER_PRIORITY = 10
MAX_NODE_SCORE = 100
_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class ExtenderError(HamiError):
    """An extender call failed: unreachable, non-200, undecodable, or a non-empty ``Error`` in the reply."""


@attrs.frozen
class FilterOutcome:
    """What one extender's filter left: the feasible node names and the reasons for the others."""

    node_names: tuple[str, ...]
    failed: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    failed_and_unresolvable: Mapping[str, str] = attrs.field(factory=dict, hash=False)


def go_json(value: object) -> bytes:
    """Encode like Go's ``json.Marshal``: compact, UTF-8, with ``<``, ``>``, ``&``, U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # These characters only ever occur inside JSON strings, so replacing them textually is safe.
    for char, escaped in _GO_HTML_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode()


def go_field(reply: Mapping[str, Any], name: str) -> Any:
    """Read a key the way Go's decoder matches struct fields: exact name first, then case-insensitively."""
    if name in reply:
        return reply[name]
    folded = name.casefold()
    for key, value in reply.items():
        if isinstance(key, str) and key.casefold() == folded:
            return value
    return None


def is_interested(config: ExtenderConfig, pod: PodView) -> bool:
    """Whether kube-scheduler would call this extender for ``pod``: it requests (or limits) a managed
    resource in any container or init container, or the extender manages nothing in particular."""
    if not config.managed_resources:
        return True
    managed = {resource.name for resource in config.managed_resources}
    return any(managed & (set(c.requests) | set(c.limits)) for c in pod.containers)


def extender_args(pod: PodView, nodes: Sequence[Node], *, node_cache_capable: bool) -> ExtenderArgs:
    """The filter/prioritize body: ``NodeNames`` for a cache-capable extender, else the full ``Nodes``."""
    raw = cast(Pod, pod.raw)
    if node_cache_capable:
        return {"Pod": raw, "Nodes": None, "NodeNames": [_name(node) for node in nodes]}
    # v1.NodeList marshals its empty TypeMeta away but keeps ListMeta: {"metadata":{},"items":[...]}.
    return {"Pod": raw, "Nodes": {"metadata": {}, "items": list(nodes)}, "NodeNames": None}


def binding_args(pod: PodView, node_name: str) -> ExtenderBindingArgs:
    """The bind body."""
    return {"PodName": pod.name, "PodNamespace": pod.namespace, "PodUID": pod.uid, "Node": node_name}


def parse_filter_result(
    reply: object, input_names: Sequence[str], *, node_cache_capable: bool, url: str
) -> FilterOutcome:
    """Apply kube-scheduler's rules to a filter reply.

    A non-empty ``Error`` fails the call; with ``nodeCacheCapable`` every returned name must have been
    sent; null ``NodeNames`` and null ``Nodes`` mean no node is feasible.

    Raises:
        ExtenderError: the reply is an error or breaks the rules.
    """
    if not isinstance(reply, Mapping):
        raise ExtenderError(f"extender {url} filter: reply is not a JSON object")
    error = go_field(reply, "Error")
    if error:
        raise ExtenderError(str(error))
    names: list[str] = []
    returned_names = go_field(reply, "NodeNames")
    returned_nodes = go_field(reply, "Nodes")
    if node_cache_capable and returned_names is not None:
        sent = set(input_names)
        for name in returned_names:
            if name not in sent:
                raise ExtenderError(
                    f"extender {url} claims a filtered node {name!r} which is not found in the input node list"
                )
            names.append(name)
    elif isinstance(returned_nodes, Mapping):
        names = [_name(node) for node in go_field(returned_nodes, "items") or []]
    return FilterOutcome(
        node_names=tuple(names),
        failed=_reasons(go_field(reply, "FailedNodes")),
        failed_and_unresolvable=_reasons(go_field(reply, "FailedAndUnresolvableNodes")),
    )


def parse_host_priorities(reply: object) -> list[HostPriority]:
    """A prioritize reply (a JSON array of ``{"Host", "Score"}``).

    Raises:
        ExtenderError: not a list of host scores.
    """
    if reply is None:
        return []
    if not isinstance(reply, list):
        raise ExtenderError("prioritize reply is not a JSON array")
    priorities: list[HostPriority] = []
    for item in reply:
        if not isinstance(item, Mapping):
            raise ExtenderError("prioritize reply holds a non-object entry")
        score = go_field(item, "Score")
        if not isinstance(score, int):
            raise ExtenderError(f"prioritize reply holds a non-integer score {score!r}")
        priorities.append({"Host": str(go_field(item, "Host") or ""), "Score": score})
    return priorities


def parse_binding_result(reply: object) -> None:
    """Check a bind reply.

    Raises:
        ExtenderError: the extender reports an error.
    """
    if isinstance(reply, Mapping) and go_field(reply, "Error"):
        raise ExtenderError(str(go_field(reply, "Error")))


def _name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def _reasons(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def tls_context(tls: TLSConfig | None, *, enable_https: bool) -> ssl.SSLContext:
    """The client TLS context kube-scheduler would build: no verification when ``insecure``, or when
    ``enableHTTPS`` is set without a CA; otherwise verify against the CA (or the system roots)."""
    tls = tls or TLSConfig()
    context = ssl.create_default_context(cadata=tls.ca_data.decode() if tls.ca_data else None)
    if tls.ca_file:
        context.load_verify_locations(cafile=tls.ca_file)
    if tls.insecure or (enable_https and not tls.has_ca):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file or None)
    elif tls.cert_data:
        _load_cert_data(context, tls.cert_data, tls.key_data)
    return context


def _load_cert_data(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl only loads client certificates from files: write them to a private, short-lived directory.
    with tempfile.TemporaryDirectory(prefix="hami-tls-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key or cert)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                handle.write(data)
        context.load_cert_chain(cert_path, key_path)


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS with an SNI/verification name that may differ from the host dialled (``tlsConfig.serverName``)."""

    def __init__(
        self, host: str, port: int | None, *, timeout: float, context: ssl.SSLContext, server_name: str
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._tls_context = context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


class HttpExtender:
    """One configured extender, called over HTTP(S) exactly as kube-scheduler calls it."""

    def __init__(self, config: ExtenderConfig) -> None:
        self.config = config
        self._url = urllib.parse.urlsplit(config.url_prefix.rstrip("/"))
        if self._url.scheme not in ("http", "https") or not self._url.hostname:
            raise ExtenderError(f"extender urlPrefix {config.url_prefix!r} is not an http(s) URL")
        self._context = (
            tls_context(config.tls, enable_https=config.enable_https) if self._url.scheme == "https" else None
        )

    @property
    def url(self) -> str:
        return self.config.url_prefix

    def is_interested(self, pod: PodView) -> bool:
        return is_interested(self.config, pod)

    def filter(self, pod: PodView, nodes: Sequence[Node]) -> FilterOutcome:
        """POST the filter verb; without one, every node passes."""
        names = [_name(node) for node in nodes]
        if not self.config.filter_verb:
            return FilterOutcome(node_names=tuple(names))
        body = extender_args(pod, nodes, node_cache_capable=self.config.node_cache_capable)
        reply = self._send(self.config.filter_verb, body)
        return parse_filter_result(
            reply, names, node_cache_capable=self.config.node_cache_capable, url=self.config.url_prefix
        )

    def prioritize(self, pod: PodView, nodes: Sequence[Node]) -> dict[str, int]:
        """POST the prioritize verb; returns ``score * weight`` per host (before the x10 node-score scaling)."""
        body = extender_args(pod, nodes, node_cache_capable=self.config.node_cache_capable)
        priorities = parse_host_priorities(self._send(self.config.prioritize_verb, body))
        return {entry["Host"]: entry["Score"] * self.config.weight for entry in priorities}

    def bind(self, pod: PodView, node_name: str) -> None:
        """POST the bind verb; the extender creates the binding."""
        parse_binding_result(self._send(self.config.bind_verb, binding_args(pod, node_name)))

    def _send(self, verb: str, body: object) -> Any:
        path = f"{self._url.path}/{verb}"
        url = f"{self.config.url_prefix.rstrip('/')}/{verb}"
        connection: http.client.HTTPConnection
        if self._context is not None:
            server_name = (self.config.tls.server_name if self.config.tls else "") or self._url.hostname or ""
            connection = _HTTPSConnection(
                self._url.hostname or "",
                self._url.port,
                timeout=self.config.http_timeout,
                context=self._context,
                server_name=server_name,
            )
        else:
            connection = http.client.HTTPConnection(
                self._url.hostname or "", self._url.port, timeout=self.config.http_timeout
            )
        try:
            connection.request("POST", path, body=go_json(body), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise ExtenderError(f"failed {verb} with extender at URL {url}: {err}") from err
        finally:
            with contextlib.suppress(OSError):
                connection.close()
        if response.status != 200:
            raise ExtenderError(f"failed {verb} with extender at URL {url}, code {response.status}")
        try:
            return json.loads(data) if data.strip() else None
        except ValueError as err:
            raise ExtenderError(
                f"failed {verb} with extender at URL {url}: reply is not JSON: {err}"
            ) from err


def merge_failures(reasons: dict[str, list[str]], outcome: FilterOutcome) -> None:
    """Fold one extender's failed nodes into the per-node reasons, as findNodesThatPassExtenders does:
    unresolvable reasons are appended first, and a node listed in both maps keeps only that one."""
    for node, reason in outcome.failed_and_unresolvable.items():
        reasons.setdefault(node, []).append(reason)
    for node, reason in outcome.failed.items():
        if node not in outcome.failed_and_unresolvable:
            reasons.setdefault(node, []).append(reason)
