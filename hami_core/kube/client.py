"""The Kubernetes API as hami uses it: the ``KubeClient`` Protocol and its one real implementation.

Every component receives a ``KubeClient``; unit tests pass ``hami_core.testing.fake_kube.FakeKube``,
integration tests and production pass ``RealKubeClient``. This is the only module that imports the
``kubernetes`` package (import-linter enforces it), and nothing it returns or raises is a client-library
type: objects are plain dicts in Kubernetes JSON (camelCase, typed by ``hami_core.kube.objects``) and
failures are ``hami_core.errors`` exceptions.

``RealKubeClient`` sends raw JSON through the official client's ``ApiClient`` (auth, TLS, kubeconfig)
instead of the generated per-kind methods: those validate bodies into pydantic models, which rejects
unknown fields, rewrites ``MicroTime`` values and fails to decode the ``Status`` that ``pods/binding``
returns (kubernetes-client/python #547, #825).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import Protocol
from typing import TypeVar
from typing import cast

import attrs
import kubernetes.client
import kubernetes.config
import urllib3

from hami_core.errors import ConfigError
from hami_core.errors import ConflictError
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube.objects import ConfigMap
from hami_core.kube.objects import Event
from hami_core.kube.objects import EventList
from hami_core.kube.objects import Lease
from hami_core.kube.objects import MutatingWebhookConfiguration
from hami_core.kube.objects import Namespace
from hami_core.kube.objects import Node
from hami_core.kube.objects import NodeList
from hami_core.kube.objects import Pod
from hami_core.kube.objects import PodList
from hami_core.kube.objects import ResourceQuotaList
from hami_core.kube.objects import Secret
from hami_core.kube.objects import WatchEventType

_T_co = TypeVar("_T_co", covariant=True)

MERGE_PATCH = "application/merge-patch+json"


class WatchExpiredError(KubeError):
    """A watch asked for a resourceVersion older than the server's history (HTTP 410 Gone): relist."""


class WatchStream(Protocol[_T_co]):
    """An open watch: iterate for ``(type, object)`` events; ``stop()`` ends the iteration from any thread.

    Iteration raises ``WatchExpiredError`` when the server answers 410, and ``KubeError`` for other
    failures; after ``stop()`` it ends quietly.
    """

    def __iter__(self) -> Iterator[tuple[WatchEventType, _T_co]]: ...

    def stop(self) -> None: ...


class KubeClient(Protocol):
    """The calls hami makes to the API server; each returns Kubernetes JSON as plain dicts.

    Patches are JSON merge patches (RFC 7386). A non-empty ``resource_version`` is a precondition: the
    write fails with ``ConflictError`` when the object changed since that version. Missing objects raise
    ``NotFoundError``; any other failure raises ``KubeError``.
    """

    # -- pods
    def get_pod(self, namespace: str, name: str) -> Pod: ...

    def list_pods(
        self, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> PodList: ...

    def watch_pods(
        self,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int | None = None,
    ) -> WatchStream[Pod]: ...

    def create_pod(self, namespace: str, pod: Pod) -> Pod: ...

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> Pod: ...

    def patch_pod_status(self, namespace: str, name: str, patch: Mapping[str, object]) -> Pod: ...

    def delete_pod(self, namespace: str, name: str) -> None: ...

    def bind_pod(
        self,
        namespace: str,
        name: str,
        node_name: str,
        *,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Create the ``pods/binding`` subresource: the pod is assigned to ``node_name``.

        Raises:
            ConflictError: the pod is already bound, or ``uid`` does not match.
        """
        ...

    # -- nodes
    def get_node(self, name: str) -> Node: ...

    def list_nodes(self, *, label_selector: str = "", field_selector: str = "") -> NodeList: ...

    def watch_nodes(
        self,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int | None = None,
    ) -> WatchStream[Node]: ...

    def create_node(self, node: Node) -> Node: ...

    def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node: ...

    def patch_node_status(self, name: str, patch: Mapping[str, object]) -> Node: ...

    def delete_node(self, name: str) -> None: ...

    # -- namespaces
    def create_namespace(self, namespace: Namespace) -> Namespace: ...

    # -- events
    def create_event(self, namespace: str, event: Event) -> Event: ...

    def list_events(self, namespace: str) -> EventList: ...

    # -- leases (leader election)
    def get_lease(self, namespace: str, name: str) -> Lease: ...

    def create_lease(self, namespace: str, lease: Lease) -> Lease: ...

    def replace_lease(self, namespace: str, name: str, lease: Lease) -> Lease:
        """PUT the whole lease; its ``metadata.resourceVersion`` is the precondition."""
        ...

    # -- quotas
    def list_resource_quotas(self, namespace: str | None = None) -> ResourceQuotaList: ...

    # -- config maps, secrets, webhook configurations
    def get_config_map(self, namespace: str, name: str) -> ConfigMap: ...

    def create_config_map(self, namespace: str, config_map: ConfigMap) -> ConfigMap: ...

    def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> ConfigMap: ...

    def get_secret(self, namespace: str, name: str) -> Secret: ...

    def create_secret(self, namespace: str, secret: Secret) -> Secret: ...

    def patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> Secret: ...

    def get_mutating_webhook_configuration(self, name: str) -> MutatingWebhookConfiguration: ...

    def create_mutating_webhook_configuration(
        self, configuration: MutatingWebhookConfiguration
    ) -> MutatingWebhookConfiguration: ...

    def patch_mutating_webhook_configuration(
        self, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> MutatingWebhookConfiguration: ...


def with_resource_version(patch: Mapping[str, object], resource_version: str) -> dict[str, object]:
    """Return ``patch`` with ``metadata.resourceVersion`` set, which makes the API server check it.

    Args:
        patch: a merge patch.
        resource_version: the version the caller read; empty means no precondition.
    """
    merged = dict(patch)
    if resource_version:
        metadata = merged.get("metadata")
        merged["metadata"] = {
            **(metadata if isinstance(metadata, Mapping) else {}),
            "resourceVersion": resource_version,
        }
    return merged


def binding_body(
    namespace: str, name: str, node_name: str, *, uid: str = "", annotations: Mapping[str, str] | None = None
) -> dict[str, object]:
    """The v1 Binding that assigns a pod to a node (``POST .../pods/{name}/binding``)."""
    metadata: dict[str, object] = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


def warning_text(header: str) -> str:
    """The text of a ``Warning: 299 - "<text>"`` header (RFC 7234), or the header as given."""
    code, _, rest = header.partition(" ")
    agent, _, quoted = rest.partition(" ")
    if code.isdigit() and agent and len(quoted) >= 2 and quoted[0] == quoted[-1] == '"':
        return quoted[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return header


def status_error(status: Mapping[str, Any], what: str) -> KubeError:
    """Turn a Kubernetes ``Status`` body into the matching hami exception.

    Args:
        status: the decoded ``Status`` (``code``, ``reason``, ``message``).
        what: the request, for the message (``"PATCH /api/v1/nodes/n"``).
    """
    code = int(status.get("code") or 0)
    reason = str(status.get("reason") or "")
    message = f"{what}: {status.get('message') or reason or f'HTTP {code}'}"
    if code == 404:
        return NotFoundError(message, status=code, reason=reason)
    if code == 409:
        return ConflictError(message, status=code, reason=reason)
    if code == 410:
        return WatchExpiredError(message, status=code, reason=reason or "Expired")
    return KubeError(message, status=code, reason=reason)


@attrs.frozen
class _Kind:
    """Where a resource lives in the REST tree."""

    prefix: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts += ["namespaces", urllib.parse.quote(namespace, safe="")]
        parts.append(self.plural)
        if name:
            parts.append(urllib.parse.quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


_PODS = _Kind("/api/v1", "pods", namespaced=True)
_NODES = _Kind("/api/v1", "nodes", namespaced=False)
_NAMESPACES = _Kind("/api/v1", "namespaces", namespaced=False)
_EVENTS = _Kind("/api/v1", "events", namespaced=True)
_CONFIG_MAPS = _Kind("/api/v1", "configmaps", namespaced=True)
_SECRETS = _Kind("/api/v1", "secrets", namespaced=True)
_QUOTAS = _Kind("/api/v1", "resourcequotas", namespaced=True)
_LEASES = _Kind("/apis/coordination.k8s.io/v1", "leases", namespaced=True)
_MUTATING = _Kind("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", namespaced=False)


class _HttpWatch:
    """A watch response read line by line; ``stop()`` shuts the socket so a blocked read returns."""

    def __init__(self, response: urllib3.BaseHTTPResponse, what: str) -> None:
        self._response = response
        self._what = what
        self._lock = threading.Lock()
        self._stopped = False
        self._started = False
        self._finished = False

    def __iter__(self) -> Iterator[tuple[WatchEventType, Any]]:
        with self._lock:
            if self._stopped:
                return
            self._started = True
        try:
            for line in _lines(self._response):
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    raise status_error(event.get("object") or {}, self._what)
                yield cast(WatchEventType, event["type"]), event["object"]
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            if not self._stopped:
                raise KubeError(f"{self._what}: watch failed: {err}") from err
        finally:
            with self._lock:
                self._finished = True
            self._release()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._finished:
                return
            if not self._started:
                self._finished = True
                self._release()
                return
            # A read blocked in another thread only returns once the socket is shut down.
            connection = getattr(self._response, "connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        self._response.close()
        self._response.release_conn()


class RealKubeClient:
    """``KubeClient`` over HTTP(S) with the official client's configuration, auth and TLS handling.

    Args:
        kubeconfig: kubeconfig file; ``None`` uses in-cluster credentials inside a pod, else
            ``$KUBECONFIG`` or ``~/.kube/config``.
        context: kubeconfig context; ``None`` uses the current one.
        host: API server URL for an unauthenticated plain connection (local cluster); overrides the rest.
        timeout: seconds allowed for each non-watch request.
        warning_handler: called with the text of each ``Warning`` header the API server sends
            (admission webhook warnings, deprecations), like client-go's ``WarningHandler``.

    Raises:
        ConfigError: the kubeconfig cannot be loaded.
    """

    def __init__(
        self,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        host: str | None = None,
        timeout: float = 30.0,
        warning_handler: Callable[[str], None] | None = None,
    ) -> None:
        configuration = kubernetes.client.Configuration()
        try:
            if host is not None:
                configuration.host = host
            elif kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=os.fspath(kubeconfig) if kubeconfig is not None else None,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (kubernetes.config.ConfigException, OSError, ValueError) as err:
            raise ConfigError(
                f"cannot load Kubernetes credentials from {kubeconfig or 'default'}: {err}"
            ) from err
        self._api = kubernetes.client.ApiClient(configuration)
        self._timeout = timeout
        self._warning_handler = warning_handler

    @property
    def host(self) -> str:
        """The API server URL requests go to."""
        return str(self._api.configuration.host)

    def close(self) -> None:
        """Close pooled connections; open watches should be stopped first."""
        self._api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> RealKubeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self._api.call_api(*serialized, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise KubeError(f"{method} {path}: cannot reach the API server at {self.host}: {err}") from err

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: object = None,
        content_type: str = "application/json",
        expect: tuple[int, ...] = (200, 201),
    ) -> Any:
        what = f"{method} {path}"
        response = self._send(
            method, path, query=query, body=body, content_type=content_type, timeout=self._timeout
        )
        data = response.read()
        if self._warning_handler is not None:
            for header in response.headers.getlist("Warning"):
                self._warning_handler(warning_text(header))
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {"message": data.decode(errors="replace")[:200]}
        if response.status not in expect:
            if not isinstance(decoded, dict) or decoded.get("kind") != "Status":
                decoded = {"message": str(decoded), "reason": response.reason or ""}
            raise status_error({**decoded, "code": response.status}, what)
        return decoded

    def _watch(
        self,
        path: str,
        *,
        label_selector: str,
        field_selector: str,
        resource_version: str,
        timeout_seconds: int | None,
    ) -> _HttpWatch:
        query = [("watch", "true"), ("allowWatchBookmarks", "true")]
        query += _selectors(label_selector, field_selector)
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", str(timeout_seconds)))
        what = f"WATCH {path}"
        response = self._send("GET", path, query=query)
        if response.status != 200:
            data = response.read()
            try:
                status = json.loads(data)
            except ValueError:
                status = {"message": data.decode(errors="replace")[:200]}
            raise status_error({**status, "code": response.status}, what)
        return _HttpWatch(response.response, what)

    def _list(
        self, kind: _Kind, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> Any:
        return self._call("GET", kind.path(namespace), query=_selectors(label_selector, field_selector))

    def _patch(self, path: str, patch: Mapping[str, object], resource_version: str = "") -> Any:
        return self._call(
            "PATCH", path, body=with_resource_version(patch, resource_version), content_type=MERGE_PATCH
        )

    # ------------------------------------------------------------ pods

    def get_pod(self, namespace: str, name: str) -> Pod:
        return cast(Pod, self._call("GET", _PODS.path(namespace, name)))

    def list_pods(
        self, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> PodList:
        return cast(PodList, self._list(_PODS, namespace, label_selector, field_selector))

    def watch_pods(
        self,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int | None = None,
    ) -> WatchStream[Pod]:
        return self._watch(
            _PODS.path(namespace),
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
        )

    def create_pod(self, namespace: str, pod: Pod) -> Pod:
        return cast(Pod, self._call("POST", _PODS.path(namespace), body=pod))

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> Pod:
        return cast(Pod, self._patch(_PODS.path(namespace, name), patch, resource_version))

    def patch_pod_status(self, namespace: str, name: str, patch: Mapping[str, object]) -> Pod:
        return cast(Pod, self._patch(_PODS.path(namespace, name, "status"), patch))

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call("DELETE", _PODS.path(namespace, name))

    def bind_pod(
        self,
        namespace: str,
        name: str,
        node_name: str,
        *,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        body = binding_body(namespace, name, node_name, uid=uid, annotations=annotations)
        # The API server answers 201 with a Status, never the Binding (see the module docstring).
        self._call("POST", _PODS.path(namespace, name, "binding"), body=body, expect=(201,))

    # ------------------------------------------------------------ nodes

    def get_node(self, name: str) -> Node:
        return cast(Node, self._call("GET", _NODES.path(name=name)))

    def list_nodes(self, *, label_selector: str = "", field_selector: str = "") -> NodeList:
        return cast(NodeList, self._list(_NODES, None, label_selector, field_selector))

    def watch_nodes(
        self,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int | None = None,
    ) -> WatchStream[Node]:
        return self._watch(
            _NODES.path(),
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
        )

    def create_node(self, node: Node) -> Node:
        return cast(Node, self._call("POST", _NODES.path(), body=node))

    def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node:
        return cast(Node, self._patch(_NODES.path(name=name), patch, resource_version))

    def patch_node_status(self, name: str, patch: Mapping[str, object]) -> Node:
        return cast(Node, self._patch(_NODES.path(name=name, subresource="status"), patch))

    def delete_node(self, name: str) -> None:
        self._call("DELETE", _NODES.path(name=name))

    # ------------------------------------------------------------ namespaces

    def create_namespace(self, namespace: Namespace) -> Namespace:
        return cast(Namespace, self._call("POST", _NAMESPACES.path(), body=namespace))

    # ------------------------------------------------------------ events

    def create_event(self, namespace: str, event: Event) -> Event:
        return cast(Event, self._call("POST", _EVENTS.path(namespace), body=event))

    def list_events(self, namespace: str) -> EventList:
        return cast(EventList, self._list(_EVENTS, namespace))

    # ------------------------------------------------------------ leases

    def get_lease(self, namespace: str, name: str) -> Lease:
        return cast(Lease, self._call("GET", _LEASES.path(namespace, name)))

    def create_lease(self, namespace: str, lease: Lease) -> Lease:
        return cast(Lease, self._call("POST", _LEASES.path(namespace), body=lease))

    def replace_lease(self, namespace: str, name: str, lease: Lease) -> Lease:
        return cast(Lease, self._call("PUT", _LEASES.path(namespace, name), body=lease))

    # ------------------------------------------------------------ quotas

    def list_resource_quotas(self, namespace: str | None = None) -> ResourceQuotaList:
        return cast(ResourceQuotaList, self._list(_QUOTAS, namespace))

    # ------------------------------------------------------------ config maps, secrets, webhooks

    def get_config_map(self, namespace: str, name: str) -> ConfigMap:
        return cast(ConfigMap, self._call("GET", _CONFIG_MAPS.path(namespace, name)))

    def create_config_map(self, namespace: str, config_map: ConfigMap) -> ConfigMap:
        return cast(ConfigMap, self._call("POST", _CONFIG_MAPS.path(namespace), body=config_map))

    def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> ConfigMap:
        return cast(ConfigMap, self._patch(_CONFIG_MAPS.path(namespace, name), patch, resource_version))

    def get_secret(self, namespace: str, name: str) -> Secret:
        return cast(Secret, self._call("GET", _SECRETS.path(namespace, name)))

    def create_secret(self, namespace: str, secret: Secret) -> Secret:
        return cast(Secret, self._call("POST", _SECRETS.path(namespace), body=secret))

    def patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> Secret:
        return cast(Secret, self._patch(_SECRETS.path(namespace, name), patch, resource_version))

    def get_mutating_webhook_configuration(self, name: str) -> MutatingWebhookConfiguration:
        return cast(MutatingWebhookConfiguration, self._call("GET", _MUTATING.path(name=name)))

    def create_mutating_webhook_configuration(
        self, configuration: MutatingWebhookConfiguration
    ) -> MutatingWebhookConfiguration:
        return cast(MutatingWebhookConfiguration, self._call("POST", _MUTATING.path(), body=configuration))

    def patch_mutating_webhook_configuration(
        self, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> MutatingWebhookConfiguration:
        return cast(
            MutatingWebhookConfiguration, self._patch(_MUTATING.path(name=name), patch, resource_version)
        )


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Split a streamed body into lines as chunks arrive (one watch event per line)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def _selectors(label_selector: str, field_selector: str) -> list[tuple[str, str]]:
    query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query
