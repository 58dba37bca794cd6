"""``FakeKube``: an in-memory ``KubeClient`` for unit tests, faithful to the API semantics hami relies on.

It keeps one global, strictly increasing resourceVersion; refuses stale writes with ``ConflictError``;
raises ``NotFoundError`` for missing objects; applies JSON merge patches (RFC 7386) with the status
subresource split of a real API server (a main-resource write ignores ``.status`` of pods and nodes, a
status write keeps the spec); binds pods through ``pods/binding`` rules; and serves watches fed
on commit, with replay from a bounded history, 410 for versions older than it, and the label and field
selectors of ``specs/kube-wire.md`` section 1.2; merge patches and selectors go through the same code as the
local cluster's API server emulator (:mod:`hami_core.kube.merge_patch`, :mod:`hami_core.kube.selectors`),
which integration tests use instead.
"""

from __future__ import annotations

import copy
import queue
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import cast

from hami_core.errors import ConflictError
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube import selectors
from hami_core.kube.client import WatchExpiredError
from hami_core.kube.client import with_resource_version
from hami_core.kube.merge_patch import merge_patch
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
from hami_core.kube.objects import ResourceQuota
from hami_core.kube.objects import ResourceQuotaList
from hami_core.kube.objects import Secret
from hami_core.kube.objects import WatchEventType

_Obj = dict[str, Any]
_Key = tuple[str, str]

_LIST_KINDS = {
    "namespaces": ("v1", "Namespace"),
    "pods": ("v1", "Pod"),
    "nodes": ("v1", "Node"),
    "events": ("v1", "Event"),
    "leases": ("coordination.k8s.io/v1", "Lease"),
    "resourcequotas": ("v1", "ResourceQuota"),
    "configmaps": ("v1", "ConfigMap"),
    "secrets": ("v1", "Secret"),
    "mutatingwebhookconfigurations": ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
}
_CLUSTER_SCOPED = frozenset({"namespaces", "nodes", "mutatingwebhookconfigurations"})
_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_WITH_STATUS = frozenset({"pods", "nodes"})
_STOP = object()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Selector:
    """Label and field selectors of one list or watch call, parsed once."""

    def __init__(self, kind: str, label_selector: str, field_selector: str) -> None:
        self.labels = selectors.parse_label_selector(label_selector)
        self.fields = selectors.parse_field_selector(field_selector, selectors.field_labels(kind))

    def matches(self, obj: _Obj) -> bool:
        return self.labels.matches(obj.get("metadata", {}).get("labels")) and self.fields.matches(obj)


class _FakeWatch:
    """A watch fed by ``FakeKube`` on every commit; ``stop()`` ends iteration from any thread."""

    def __init__(
        self,
        kind: str,
        namespace: str | None,
        selector: _Selector,
        timeout_seconds: int | None,
        on_stop: Callable[[_FakeWatch], None],
    ) -> None:
        self.kind = kind
        self._namespace = namespace
        self._selector = selector
        self._timeout = timeout_seconds
        self._on_stop = on_stop
        self._events: queue.Queue[object] = queue.Queue()
        self._expired = ""

    def expire(self, message: str) -> None:
        self._expired = message

    def offer(self, event_type: WatchEventType, obj: _Obj, old: _Obj | None) -> None:
        """Queue what this watcher sees: an object entering or leaving its selectors is ADDED or DELETED."""
        if self._namespace and obj.get("metadata", {}).get("namespace") != self._namespace:
            return
        now = self._selector.matches(obj)
        before = old is not None and self._selector.matches(old)
        seen: WatchEventType | None = None
        if event_type == "MODIFIED":
            seen = ("MODIFIED" if before else "ADDED") if now else ("DELETED" if before else None)
        elif (event_type == "ADDED" and now) or (event_type == "DELETED" and (now or before)):
            seen = event_type
        if seen is not None:
            self._events.put((seen, copy.deepcopy(obj)))

    def __iter__(self) -> Iterator[tuple[WatchEventType, Any]]:
        if self._expired:
            raise WatchExpiredError(self._expired, status=410, reason="Expired")
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        try:
            while True:
                try:
                    item = self._events.get(
                        timeout=None if deadline is None else max(0.0, deadline - time.monotonic())
                    )
                except queue.Empty:
                    return
                if item is _STOP:
                    return
                yield cast(tuple[WatchEventType, Any], item)
        finally:
            self._on_stop(self)

    def stop(self) -> None:
        self._events.put(_STOP)
        self._on_stop(self)


class FakeKube:
    """In-memory ``KubeClient``. Thread-safe; every method copies objects in and out.

    Args:
        history: how many past changes a watch can replay; older resourceVersions get 410 Gone.
    """

    def __init__(self, *, history: int = 1000) -> None:
        self._lock = threading.RLock()
        self._store: dict[str, dict[_Key, _Obj]] = {kind: {} for kind in _LIST_KINDS}
        self._rv = 0
        self._history: deque[tuple[int, str, WatchEventType, _Obj, _Obj | None]] = deque(maxlen=history)
        self._watches: list[_FakeWatch] = []
        for name in _DEFAULT_NAMESPACES:
            self._create("namespaces", None, {"metadata": {"name": name}, "status": {"phase": "Active"}})

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        with self._lock:
            return str(self._rv)

    # ------------------------------------------------------------ generic machinery

    @staticmethod
    def _key(kind: str, namespace: str | None, name: str) -> _Key:
        return ("" if kind in _CLUSTER_SCOPED else namespace or "default", name)

    def _commit(self, kind: str, event_type: WatchEventType, obj: _Obj, old: _Obj | None) -> _Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = self._key(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if event_type == "DELETED":
            self._store[kind].pop(key, None)
        else:
            self._store[kind][key] = obj
        self._history.append((self._rv, kind, event_type, copy.deepcopy(obj), copy.deepcopy(old)))
        for watch in list(self._watches):
            if watch.kind == kind:
                watch.offer(event_type, obj, old)
        return copy.deepcopy(obj)

    def _get(self, kind: str, namespace: str | None, name: str) -> _Obj:
        obj = self._store[kind].get(self._key(kind, namespace, name))
        if obj is None:
            raise NotFoundError(f'{kind} "{name}" not found', status=404, reason="NotFound")
        return obj

    def _create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> _Obj:
        with self._lock:
            obj: _Obj = copy.deepcopy(dict(body))
            metadata = obj.setdefault("metadata", {})
            if kind not in _CLUSTER_SCOPED:
                namespace = namespace or "default"
                if metadata.get("namespace", namespace) != namespace:
                    raise KubeError(
                        "the namespace of the provided object does not match the namespace sent on the request",
                        status=400,
                        reason="BadRequest",
                    )
                metadata["namespace"] = namespace
                if ("", namespace) not in self._store["namespaces"]:
                    raise NotFoundError(f'namespaces "{namespace}" not found', status=404, reason="NotFound")
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
            name = metadata.get("name")
            if not name:
                raise KubeError(f"{kind}: metadata.name: Required value", status=422, reason="Invalid")
            if self._key(kind, namespace, name) in self._store[kind]:
                raise ConflictError(f'{kind} "{name}" already exists', status=409, reason="AlreadyExists")
            api_version, object_kind = _LIST_KINDS[kind]
            obj.setdefault("apiVersion", api_version)
            obj.setdefault("kind", object_kind)
            metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            if kind == "pods":
                _default_pod(obj)
            return self._commit(kind, "ADDED", obj, None)

    def _read(self, kind: str, namespace: str | None, name: str) -> _Obj:
        with self._lock:
            return copy.deepcopy(self._get(kind, namespace, name))

    def _list(
        self, kind: str, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> _Obj:
        selector = _Selector(kind, label_selector, field_selector)
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for key, obj in sorted(self._store[kind].items())
                if (not namespace or key[0] == namespace) and selector.matches(obj)
            ]
            api_version, object_kind = _LIST_KINDS[kind]
            return {
                "apiVersion": api_version,
                "kind": f"{object_kind}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _check_version(self, kind: str, current: _Obj, wanted: object) -> None:
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise ConflictError(
                f'Operation cannot be fulfilled on {kind} "{current["metadata"]["name"]}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                status=409,
                reason="Conflict",
            )

    def _write(self, kind: str, namespace: str | None, name: str, new: _Obj, *, status_only: bool) -> _Obj:
        """Store ``new`` over the current object, keeping identity fields and the status split."""
        current = self._get(kind, namespace, name)
        self._check_version(kind, current, new.get("metadata", {}).get("resourceVersion"))
        if status_only:
            # As kube-apiserver's status strategies: the spec is kept, user metadata is written.
            result = copy.deepcopy(current)
            result["status"] = new.get("status", {})
            for field in ("labels", "annotations", "finalizers"):
                if field in new.get("metadata", {}):
                    result["metadata"][field] = new["metadata"][field]
                else:
                    result["metadata"].pop(field, None)
        else:
            result = new
            if kind in _WITH_STATUS:
                result["status"] = copy.deepcopy(current.get("status", {}))
        metadata = result.setdefault("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp"):
            if field in current["metadata"]:
                metadata[field] = current["metadata"][field]
        metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        if result == current:
            return copy.deepcopy(current)
        return self._commit(kind, "MODIFIED", result, copy.deepcopy(current))

    def _patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, object],
        resource_version: str = "",
        *,
        status_only: bool = False,
    ) -> _Obj:
        with self._lock:
            current = self._get(kind, namespace, name)
            patch_meta = patch.get("metadata")
            wanted_uid = patch_meta.get("uid") if isinstance(patch_meta, Mapping) else None
            if wanted_uid and wanted_uid != current["metadata"]["uid"]:
                # A uid in a patch is a precondition: kube-apiserver refuses another one as immutable.
                raise KubeError(
                    f'{kind} "{name}" is invalid: metadata.uid: Invalid value: "{wanted_uid}": field is immutable',
                    status=422,
                    reason="Invalid",
                )
            patch = with_resource_version(patch, resource_version)
            patched = cast(_Obj, merge_patch(current, patch))
            return self._write(kind, namespace, name, patched, status_only=status_only)

    def _replace(self, kind: str, namespace: str | None, name: str, body: Mapping[str, Any]) -> _Obj:
        with self._lock:
            return self._write(kind, namespace, name, copy.deepcopy(dict(body)), status_only=False)

    def _delete(self, kind: str, namespace: str | None, name: str) -> None:
        with self._lock:
            current = self._get(kind, namespace, name)
            if current["metadata"].get("finalizers"):
                if "deletionTimestamp" not in current["metadata"]:
                    updated = copy.deepcopy(current)
                    updated["metadata"]["deletionTimestamp"] = _now()
                    self._commit(kind, "MODIFIED", updated, copy.deepcopy(current))
                return
            self._commit(kind, "DELETED", copy.deepcopy(current), copy.deepcopy(current))

    def _watch(
        self,
        kind: str,
        namespace: str | None,
        label_selector: str,
        field_selector: str,
        resource_version: str,
        timeout_seconds: int | None,
    ) -> _FakeWatch:
        selector = _Selector(kind, label_selector, field_selector)
        with self._lock:
            watch = _FakeWatch(kind, namespace, selector, timeout_seconds, self._forget)
            if resource_version in ("", "0"):
                for _, obj in sorted(self._store[kind].items()):
                    watch.offer("ADDED", obj, None)
            else:
                since = int(resource_version)
                oldest = self._history[0][0] if self._history else self._rv + 1
                if since < oldest - 1 and since < self._rv:
                    watch.expire(f"too old resource version: {since} ({oldest - 1})")
                    return watch
                for rv, entry_kind, event_type, obj, old in self._history:
                    if rv > since and entry_kind == kind:
                        watch.offer(event_type, obj, old)
            self._watches.append(watch)
            return watch

    def _forget(self, watch: _FakeWatch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    # ------------------------------------------------------------ pods

    def get_pod(self, namespace: str, name: str) -> Pod:
        return cast(Pod, self._read("pods", namespace, name))

    def list_pods(
        self, namespace: str | None = None, *, label_selector: str = "", field_selector: str = ""
    ) -> PodList:
        return cast(PodList, self._list("pods", namespace, label_selector, field_selector))

    def watch_pods(
        self,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int | None = None,
    ) -> _FakeWatch:
        return self._watch(
            "pods", namespace, label_selector, field_selector, resource_version, timeout_seconds
        )

    def create_pod(self, namespace: str, pod: Pod) -> Pod:
        return cast(Pod, self._create("pods", namespace, cast(Mapping[str, Any], pod)))

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> Pod:
        return cast(Pod, self._patch("pods", namespace, name, patch, resource_version))

    def patch_pod_status(self, namespace: str, name: str, patch: Mapping[str, object]) -> Pod:
        return cast(Pod, self._patch("pods", namespace, name, patch, status_only=True))

    def delete_pod(self, namespace: str, name: str) -> None:
        self._delete("pods", namespace, name)

    def bind_pod(
        self,
        namespace: str,
        name: str,
        node_name: str,
        *,
        uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            current = self._get("pods", namespace, name)
            metadata = current["metadata"]
            if uid and uid != metadata["uid"]:
                raise ConflictError(
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: {metadata['uid']}",
                    status=409,
                    reason="Conflict",
                )
            if "deletionTimestamp" in metadata:
                raise ConflictError(f"pod {name} is being deleted, cannot be assigned to a host", status=409)
            assigned = current.get("spec", {}).get("nodeName")
            if assigned:
                raise ConflictError(
                    f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already assigned '
                    f'to node "{assigned}"',
                    status=409,
                    reason="Conflict",
                )
            updated = copy.deepcopy(current)
            updated.setdefault("spec", {})["nodeName"] = node_name
            if annotations:
                updated["metadata"].setdefault("annotations", {}).update(annotations)
            conditions = [
                c
                for c in updated.setdefault("status", {}).get("conditions", [])
                if c.get("type") != "PodScheduled"
            ]
            conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()})
            updated["status"]["conditions"] = conditions
            self._commit("pods", "MODIFIED", updated, copy.deepcopy(current))

    # ------------------------------------------------------------ nodes

    def get_node(self, name: str) -> Node:
        return cast(Node, self._read("nodes", None, name))

    def list_nodes(self, *, label_selector: str = "", field_selector: str = "") -> NodeList:
        return cast(NodeList, self._list("nodes", None, label_selector, field_selector))

    def watch_nodes(
        self,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int | None = None,
    ) -> _FakeWatch:
        return self._watch("nodes", None, label_selector, field_selector, resource_version, timeout_seconds)

    def create_node(self, node: Node) -> Node:
        return cast(Node, self._create("nodes", None, cast(Mapping[str, Any], node)))

    def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node:
        return cast(Node, self._patch("nodes", None, name, patch, resource_version))

    def patch_node_status(self, name: str, patch: Mapping[str, object]) -> Node:
        return cast(Node, self._patch("nodes", None, name, patch, status_only=True))

    def delete_node(self, name: str) -> None:
        self._delete("nodes", None, name)

    # ------------------------------------------------------------ namespaces

    def create_namespace(self, namespace: Namespace) -> Namespace:
        return cast(Namespace, self._create("namespaces", None, cast(Mapping[str, Any], namespace)))

    # ------------------------------------------------------------ events

    def create_event(self, namespace: str, event: Event) -> Event:
        return cast(Event, self._create("events", namespace, cast(Mapping[str, Any], event)))

    def list_events(self, namespace: str) -> EventList:
        return cast(EventList, self._list("events", namespace))

    # ------------------------------------------------------------ leases

    def get_lease(self, namespace: str, name: str) -> Lease:
        return cast(Lease, self._read("leases", namespace, name))

    def create_lease(self, namespace: str, lease: Lease) -> Lease:
        return cast(Lease, self._create("leases", namespace, cast(Mapping[str, Any], lease)))

    def replace_lease(self, namespace: str, name: str, lease: Lease) -> Lease:
        return cast(Lease, self._replace("leases", namespace, name, cast(Mapping[str, Any], lease)))

    # ------------------------------------------------------------ quotas

    def list_resource_quotas(self, namespace: str | None = None) -> ResourceQuotaList:
        return cast(ResourceQuotaList, self._list("resourcequotas", namespace))

    def create_resource_quota(self, namespace: str, quota: ResourceQuota) -> ResourceQuota:
        """Seed a quota (hami only reads them, so this is not part of ``KubeClient``)."""
        return cast(ResourceQuota, self._create("resourcequotas", namespace, cast(Mapping[str, Any], quota)))

    # ------------------------------------------------------------ config maps, secrets, webhooks

    def get_config_map(self, namespace: str, name: str) -> ConfigMap:
        return cast(ConfigMap, self._read("configmaps", namespace, name))

    def create_config_map(self, namespace: str, config_map: ConfigMap) -> ConfigMap:
        return cast(ConfigMap, self._create("configmaps", namespace, cast(Mapping[str, Any], config_map)))

    def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> ConfigMap:
        return cast(ConfigMap, self._patch("configmaps", namespace, name, patch, resource_version))

    def get_secret(self, namespace: str, name: str) -> Secret:
        return cast(Secret, self._read("secrets", namespace, name))

    def create_secret(self, namespace: str, secret: Secret) -> Secret:
        return cast(Secret, self._create("secrets", namespace, cast(Mapping[str, Any], secret)))

    def patch_secret(
        self, namespace: str, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> Secret:
        return cast(Secret, self._patch("secrets", namespace, name, patch, resource_version))

    def get_mutating_webhook_configuration(self, name: str) -> MutatingWebhookConfiguration:
        return cast(MutatingWebhookConfiguration, self._read("mutatingwebhookconfigurations", None, name))

    def create_mutating_webhook_configuration(
        self, configuration: MutatingWebhookConfiguration
    ) -> MutatingWebhookConfiguration:
        return cast(
            MutatingWebhookConfiguration,
            self._create("mutatingwebhookconfigurations", None, cast(Mapping[str, Any], configuration)),
        )

    def patch_mutating_webhook_configuration(
        self, name: str, patch: Mapping[str, object], *, resource_version: str = ""
    ) -> MutatingWebhookConfiguration:
        return cast(
            MutatingWebhookConfiguration,
            self._patch("mutatingwebhookconfigurations", None, name, patch, resource_version),
        )


def _default_pod(pod: _Obj) -> None:
    """Apply the API server's pod defaulting and reset the status, as pod creation does."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("restartPolicy", "Always")
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        if limits:
            # Requests default to limits, per resource (SetDefaults_Pod).
            resources["requests"] = {**limits, **(resources.get("requests") or {})}
            container["resources"] = resources
    pod["status"] = {"phase": "Pending"}
