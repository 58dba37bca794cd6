"""The API verbs of the emulator over its store, with kube-apiserver's per-resource rules.

Here live the strategies kube-apiserver applies around storage: decode-time defaults, system
metadata on create (uid, creationTimestamp, generation, generateName), the status subresource
split (main writes keep the stored ``.status``, status writes change only ``.status``),
resourceVersion and DELETE preconditions, deletion through finalizers, ``pods/binding`` and
mutating admission on CREATE. Every refusal is an ``ApiError``; the HTTP edge renders it.
Limitations: pod spec immutability and server-side apply are not enforced or offered, and
deleting a namespace does not delete its contents.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import queue
import random
import re
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import attrs

from hami_core.errors import QuantityError
from hami_core.kube import selectors
from hami_core.kube.merge_patch import merge_patch
from hami_core.localcluster import patching
from hami_core.localcluster import resource_fit
from hami_core.localcluster import statuses
from hami_core.localcluster.admission import MutatingAdmission
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType
from hami_core.localcluster.resources import require
from hami_core.localcluster.store import Event
from hami_core.localcluster.store import Store
from hami_core.localcluster.store import Watcher

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_NAMESPACES = require("", "v1", "namespaces")
_PODS = require("", "v1", "pods")
_WEBHOOKS = require("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
# Kubernetes' name generator alphabet: no vowels (no words) and no look-alike characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


@attrs.frozen
class Written:
    """A stored object and the admission warnings produced on the way."""

    obj: JsonObj
    warnings: tuple[str, ...] = ()


@attrs.frozen
class Deleted:
    """The object a DELETE acted on; ``finished`` is False while finalizers hold it."""

    obj: JsonObj
    finished: bool


class WatchStream:
    """One client's watch: store events filtered by namespace and selectors, as wire dicts.

    An update that makes an object start (stop) matching reaches this watcher as ADDED
    (DELETED), as kube-apiserver's watch cache does.
    """

    def __init__(self, watcher: Watcher, matches: Callable[[JsonObj], bool]) -> None:
        self._watcher = watcher
        self._matches = matches
        self._last_rv = watcher.start_rv

    def events(
        self, *, deadline: float | None, bookmark_interval: float | None, alive: Callable[[], bool]
    ) -> Iterator[JsonObj]:
        """Yield events until ``deadline`` (monotonic), the store closes or ``alive()`` turns False.

        With ``bookmark_interval``, a BOOKMARK carrying a safe resourceVersion is sent at that
        period. ``alive`` is consulted whenever the stream is idle for a second.
        """
        for event in self._watcher.replay:
            yield from self._view(event)
        next_bookmark = time.monotonic() + bookmark_interval if bookmark_interval else None
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if next_bookmark is not None and now >= next_bookmark:
                yield self._bookmark()
                next_bookmark = now + (bookmark_interval or 0)
            wait = min(t - now for t in (deadline, next_bookmark, now + 1.0) if t is not None)
            try:
                live = self._watcher.queue.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if not alive():
                    return
                continue
            if live is None:
                return
            yield from self._view(live)

    def close(self) -> None:
        """Stop receiving events."""
        self._watcher.close()

    def _view(self, event: Event) -> Iterator[JsonObj]:
        self._last_rv = max(self._last_rv, event.rv)
        now = self._matches(event.obj)
        before = event.old is not None and self._matches(event.old)
        kind = event.type
        if event.type == "MODIFIED" and now != before:
            kind = "ADDED" if now else "DELETED"
        if now or before:
            yield {"type": kind, "object": event.obj}

    def _bookmark(self) -> JsonObj:
        rv = self._watcher.bookmark_rv() or self._last_rv
        rt = self._watcher.rt
        meta = {"resourceVersion": str(rv)}
        return {
            "type": "BOOKMARK",
            "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
        }


class Registry:
    """The API verbs over a store.

    Args:
        store: where objects live.
        admission: the mutating webhook caller used on CREATE.
        clock: wall-clock seconds, for timestamps.
    """

    def __init__(
        self, store: Store, admission: MutatingAdmission, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._admission = admission
        self._clock = clock

    def ensure_default_namespaces(self) -> None:
        """Create the namespaces every cluster starts with, where missing."""
        for name in DEFAULT_NAMESPACES:
            if self._store.get(_NAMESPACES, ("", name)) is None:
                self.create(_NAMESPACES, "", {"metadata": {"name": name}})

    def get(self, rt: ResourceType, namespace: str, name: str) -> JsonObj:
        """The stored object.

        Raises:
            ApiError: 404.
        """
        obj = self._store.get(rt, (namespace, name))
        if obj is None:
            raise statuses.not_found(rt, name)
        return obj

    def list(
        self, rt: ResourceType, namespace: str | None, *, label_selector: str = "", field_selector: str = ""
    ) -> JsonObj:
        """A ``<Kind>List`` of the matching objects at the current resourceVersion.

        Raises:
            ApiError: 400 for a bad selector.
        """
        matches = _matcher(rt, namespace, label_selector, field_selector)
        items, rv = self._store.list_objects(rt)
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv)},
            "items": [obj for obj in items if matches(obj)],
        }

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> WatchStream:
        """Open a watch from ``resource_version`` ("" or "0": current objects first, as ADDED).

        Raises:
            ApiError: 400 for a bad selector or resourceVersion, 410 when it is too old.
        """
        matches = _matcher(rt, namespace, label_selector, field_selector)
        since = None if resource_version in ("", "0") else _parse_rv(resource_version)
        return WatchStream(self._store.watch(rt, since), matches)

    def create(self, rt: ResourceType, namespace: str, body: Any, *, dry_run: bool = False) -> Written:
        """Create an object: defaults, admission, system metadata, validation, store.

        Raises:
            ApiError: 400 bad body, 404 missing namespace, 409 AlreadyExists, 422 invalid,
                or an admission refusal.
        """
        obj = _incoming(rt, namespace, body)
        namespace_labels = None
        if rt.namespaced:
            namespace_labels = self.get(_NAMESPACES, "", namespace)["metadata"].get("labels")
        _apply_defaults(rt, obj)
        warnings: tuple[str, ...] = ()
        if rt != _WEBHOOKS:
            configs, _ = self._store.list_objects(_WEBHOOKS)
            admitted = self._admission.admit(
                configs, rt=rt, operation="CREATE", obj=obj, namespace_labels=namespace_labels
            )
            obj, warnings = _incoming(rt, namespace, admitted.obj), admitted.warnings
            # kube-apiserver decodes a webhook's patched object again, defaults included: a limit a
            # webhook adds gets its request too.
            _apply_defaults(rt, obj)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_ALPHABET, k=5))
        for field in (*_SYSTEM_META, "resourceVersion"):
            meta.pop(field, None)
        meta |= {"uid": str(uuid.uuid4()), "creationTimestamp": self._now(), "generation": 1}
        if rt == _PODS:
            obj["status"] = {"phase": "Pending"}
        _validate(rt, obj)
        return Written(self._store.create(rt, obj, dry_run=dry_run), warnings)

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> JsonObj:
        """Replace an object (PUT); a set ``metadata.resourceVersion`` must be the stored one.

        Raises:
            ApiError: 400 bad body, 404, 409 Conflict, 422 invalid.
        """
        incoming = _incoming(rt, namespace, body)
        if incoming["metadata"].get("name") != name:
            given = incoming["metadata"].get("name")
            raise statuses.bad_request(
                f"the name of the object ({given}) does not match the name on the URL ({name})"
            )
        _apply_defaults(rt, incoming)

        def mutate(current: JsonObj) -> JsonObj:
            _check_rv(rt, current, incoming)
            return _updated(rt, current, copy.deepcopy(incoming), subresource)

        return self._store.update(rt, (namespace, name), mutate, dry_run=dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        raw: bytes,
        content_type: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> JsonObj:
        """Apply a PATCH of the type named by ``content_type`` to the stored object.

        A ``metadata.resourceVersion`` left in the patched object is a precondition.

        Raises:
            ApiError: 415 unknown patch type, 400 malformed patch, 404, 409 Conflict,
                422 patch that cannot be applied or invalid result.
        """
        patch_type = PATCH_TYPES.get(content_type.split(";")[0].strip().lower())
        if patch_type is None:
            accepted = ", ".join(PATCH_TYPES)
            message = (
                f"the body of the request was in an unknown format - accepted media types include: {accepted}"
            )
            raise statuses.ApiError(415, "UnsupportedMediaType", message)
        try:
            document = json.loads(raw)
        except ValueError as err:
            raise statuses.bad_request(f"error decoding patch: {err}") from err
        if patch_type != "json" and not isinstance(document, dict):
            raise statuses.bad_request("a merge or strategic merge patch must be a JSON object")

        def mutate(current: JsonObj) -> JsonObj:
            if patch_type == "json":
                patched = patching.json_patch(current, document)
            elif patch_type == "merge":
                patched = merge_patch(current, document)
            else:
                patched = patching.strategic_merge_patch(current, document, rt.kind)
            meta = patched.get("metadata")
            if not isinstance(meta, dict) or (meta.get("name"), meta.get("namespace")) != (
                current["metadata"].get("name"),
                current["metadata"].get("namespace"),
            ):
                raise statuses.invalid(rt, name, "metadata.name: Invalid value: field is immutable")
            # A patch may name the uid (a precondition the garbage collector uses); another uid is
            # refused as kube-apiserver's update validation does: the field is immutable.
            if meta.get("uid") and meta.get("uid") != current["metadata"].get("uid"):
                raise statuses.invalid(
                    rt, name, f'metadata.uid: Invalid value: "{meta.get("uid")}": field is immutable'
                )
            _check_rv(rt, current, patched)
            obj = _incoming(rt, namespace, patched)
            _apply_defaults(rt, obj)
            return _updated(rt, current, obj, subresource)

        return self._store.update(rt, (namespace, name), mutate, dry_run=dry_run)

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: Any, *, dry_run: bool = False
    ) -> Deleted:
        """Delete an object; with finalizers it only gets a ``deletionTimestamp``.

        ``gracePeriodSeconds`` is treated as 0. ``preconditions`` (uid, resourceVersion) are checked.

        Raises:
            ApiError: 404, 409 failed precondition.
        """
        preconditions = options.get("preconditions") or {} if isinstance(options, dict) else {}

        def mutate(current: JsonObj) -> JsonObj:
            meta = current["metadata"]
            _check_preconditions(rt, name, preconditions, meta)
            if not meta.get("deletionTimestamp"):
                meta |= {"deletionTimestamp": self._now(), "deletionGracePeriodSeconds": 0}
            return current

        obj = self._store.update(rt, (namespace, name), mutate, dry_run=dry_run)
        return Deleted(obj, not obj["metadata"].get("finalizers"))

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, *, label_selector: str = "", field_selector: str = ""
    ) -> JsonObj:
        """Delete every matching object; answers the list of what was acted on."""
        listed = self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
        deleted = []
        for obj in listed["items"]:
            meta = obj["metadata"]
            try:
                deleted.append(self.delete(rt, meta.get("namespace", ""), meta["name"], None).obj)
            except statuses.ApiError as err:
                if err.code != 404:
                    raise
        return listed | {"items": deleted}

    def bind(self, namespace: str, name: str, body: Any) -> None:
        """``pods/binding``: set ``spec.nodeName`` once, merge annotations, mark PodScheduled.

        Raises:
            ApiError: 400 bad body, 404 pod, 409 already bound / failed precondition /
                scheduling gates, 422 bad target, 500 pod being deleted.
        """
        if not isinstance(body, dict):
            raise statuses.bad_request("the body of a Binding must be a JSON object")
        meta = body.get("metadata") or {}
        target = body.get("target") or {}
        if meta.get("name") not in (None, name):
            raise statuses.bad_request("name in URL does not match name in Binding object")
        if target.get("kind") not in (None, "", "Node"):
            why = f'target.kind: Unsupported value: "{target["kind"]}": supported values: "Node", ""'
            raise statuses.ApiError(422, "Invalid", f'Binding "{name}" is invalid: {why}')
        if not target.get("name"):
            why = "target.name: Required value: name must not be empty"
            raise statuses.ApiError(422, "Invalid", f'Binding "{name}" is invalid: {why}')

        def mutate(pod: JsonObj) -> JsonObj:
            pod_meta = pod["metadata"]
            _check_preconditions(_PODS, name, meta, pod_meta)
            spec = pod.setdefault("spec", {})
            if pod_meta.get("deletionTimestamp"):
                raise statuses.internal(f"pod {name} is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                why = f'pod {name} is already assigned to node "{spec["nodeName"]}"'
                raise statuses.conflict("pods/binding", name, why)
            if spec.get("schedulingGates"):
                raise statuses.conflict(
                    "pods/binding", name, f"pod {name} has non-empty .spec.schedulingGates"
                )
            spec["nodeName"] = target["name"]
            pod_meta["annotations"] = (pod_meta.get("annotations") or {}) | (meta.get("annotations") or {})
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            scheduled = {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": self._now(),
            }
            status["conditions"] = [*conditions, scheduled]
            return pod

        self._store.update(_PODS, (namespace, name), mutate)

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock()))


#: Metadata a status-subresource write may change (labels and annotations, as on a real API server).
_STATUS_WRITABLE_META = ("labels", "annotations", "finalizers")


def _updated(rt: ResourceType, current: JsonObj, new: JsonObj, subresource: str) -> JsonObj:
    """The object to store for a write of ``new`` over ``current`` (both private copies)."""
    if subresource == "status":
        if "status" in new:
            current["status"] = new["status"]
        else:
            current.pop("status", None)
        # kube-apiserver's status strategies reset the spec, not the object's user metadata.
        for field in _STATUS_WRITABLE_META:
            if field in new["metadata"]:
                current["metadata"][field] = new["metadata"][field]
            else:
                current["metadata"].pop(field, None)
        return current
    meta, old_meta = new["metadata"], current["metadata"]
    for field in _SYSTEM_META:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta["resourceVersion"] = old_meta["resourceVersion"]
    if rt.has_status:
        if "status" in current:
            new["status"] = current["status"]
        else:
            new.pop("status", None)
    if _spec_of(new) != _spec_of(current):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    if rt.kind == "Pod":
        _check_pod_spec_update(rt, current, new)
    _validate(rt, new)
    return new


#: What kube-apiserver lets an update change in a pod's spec (ValidatePodUpdate), in its words.
_POD_SPEC_MUTABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_frozen(spec: JsonObj) -> JsonObj:
    """The part of a pod spec an update must leave alone (images, deadline, grace and gates may change)."""
    frozen = {
        key: value
        for key, value in spec.items()
        if key
        not in ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations", "schedulingGates")
    }
    for key in ("containers", "initContainers", "ephemeralContainers"):
        if isinstance(spec.get(key), list):
            frozen[key] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c for c in spec[key]
            ]
    return frozen


def _check_pod_spec_update(rt: ResourceType, current: JsonObj, new: JsonObj) -> None:
    """A pod's spec is immutable but for a few fields; tolerations may only be added, gates only removed."""
    old_spec, new_spec = current.get("spec") or {}, new.get("spec") or {}
    name = str(current["metadata"].get("name", ""))
    old_tolerations = old_spec.get("tolerations") or []
    new_tolerations = new_spec.get("tolerations") or []
    old_gates = old_spec.get("schedulingGates") or []
    gates_ok = all(gate in old_gates for gate in new_spec.get("schedulingGates") or [])
    if (
        _pod_spec_frozen(old_spec) != _pod_spec_frozen(new_spec)
        or not all(t in new_tolerations for t in old_tolerations)
        or not gates_ok
    ):
        why = f"Forbidden: pod updates may not change fields other than {_POD_SPEC_MUTABLE}"
        error = statuses.invalid(rt, name, f"spec: {why}")
        # kubectl prints an Invalid error from its causes, as kube-apiserver sends them.
        error.details["causes"] = [{"reason": "FieldValueForbidden", "message": why, "field": "spec"}]
        raise error


def _matcher(
    rt: ResourceType, namespace: str | None, label_selector: str, field_selector: str
) -> Callable[[JsonObj], bool]:
    try:
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector, rt.field_labels)
    except selectors.SelectorError as err:
        raise statuses.bad_request(str(err)) from err

    def matches(obj: JsonObj) -> bool:
        meta = obj.get("metadata") or {}
        in_namespace = namespace is None or meta.get("namespace", "") == namespace
        return in_namespace and labels.matches(meta.get("labels")) and fields.matches(obj)

    return matches


def _parse_rv(text: str) -> int:
    if not text.isdigit():
        raise statuses.bad_request(
            f'resourceVersion: Invalid value: "{text}": must be a decimal resourceVersion'
        )
    return int(text)


def _check_preconditions(rt: ResourceType, name: str, wanted: JsonObj, meta: JsonObj) -> None:
    """DELETE and binding preconditions: a given uid / resourceVersion must be the stored one."""
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        value = wanted.get(field)
        if value and value != meta.get(field):
            why = f"Precondition failed: {label} in precondition: {value}, {label} in object meta: {meta.get(field)}"
            raise statuses.conflict(rt.qualified, name, why, rt=rt)


def _check_rv(rt: ResourceType, current: JsonObj, new: JsonObj) -> None:
    wanted = (new.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != current["metadata"]["resourceVersion"]:
        raise statuses.conflict(rt.qualified, current["metadata"]["name"], _MODIFIED, rt=rt)


def _spec_of(obj: JsonObj) -> JsonObj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _incoming(rt: ResourceType, namespace: str, body: Any) -> JsonObj:
    """A private, normalised copy of a request body for ``rt`` in ``namespace``."""
    if not isinstance(body, dict):
        raise statuses.bad_request(f"the body of a {rt.kind} must be a JSON object")
    obj = copy.deepcopy(body)
    if obj.get("kind", rt.kind) != rt.kind or obj.get("apiVersion", rt.api_version) != rt.api_version:
        given = f"{obj.get('apiVersion')}, Kind={obj.get('kind')}"
        raise statuses.bad_request(f"the object provided is {given}, not {rt.api_version}, Kind={rt.kind}")
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise statuses.bad_request("metadata must be a JSON object")
    if rt.namespaced:
        if meta.get("namespace", namespace) != namespace:
            raise statuses.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is not None and not (
            isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
        ):
            raise statuses.bad_request(f"metadata.{field} must be a map of strings")
    obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
    return obj


def _apply_defaults(rt: ResourceType, obj: JsonObj) -> None:
    """The defaults kube-apiserver fills in when it decodes a request (the ones clients see)."""
    if rt.group:
        return
    if rt.kind == "Namespace":
        meta = obj["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("status", {"phase": "Active"})
    elif rt.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()}
        if encoded:
            obj["data"] = (obj.get("data") or {}) | encoded
    elif rt.kind == "Pod":
        _default_pod(obj)
    elif rt.kind in ("Node", "ResourceQuota"):
        for part, field in (
            ("status", "capacity"),
            ("status", "allocatable"),
            ("spec", "hard"),
            ("status", "hard"),
            ("status", "used"),
        ):
            section = obj.get(part)
            if isinstance(section, dict) and field in section:
                section[field] = _quantities(section[field])


def _default_pod(pod: JsonObj) -> None:
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise statuses.bad_request("spec must be a JSON object")
    for field, value in (
        ("restartPolicy", "Always"),
        ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"),
        ("terminationGracePeriodSeconds", 30),
    ):
        spec.setdefault(field, value)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        resources = container.get("resources")
        if isinstance(resources, dict):
            for field in ("limits", "requests"):
                if field in resources:
                    resources[field] = _quantities(resources[field])
            if resources.get("limits"):
                # SetDefaults_Pod: requests default to limits, key by key.
                resources["requests"] = resources["limits"] | (resources.get("requests") or {})
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")


def _quantities(values: Any) -> Any:
    """A resource list as kube-apiserver returns it: every quantity in canonical form (``1000`` -> ``1k``)."""
    if not isinstance(values, dict):
        return values
    out = {}
    for name, value in values.items():
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            # One that does not parse is left, as sent, for validation to refuse.
            with contextlib.suppress(QuantityError):
                value = resource_fit.canonical_quantity(value)
        out[name] = value
    return out


def _validate(rt: ResourceType, obj: JsonObj) -> None:
    name = obj["metadata"].get("name") or ""
    if not name:
        raise statuses.invalid(rt, name, "metadata.name: Required value: name or generateName is required")
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        why = (
            f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )
        raise statuses.invalid(rt, name, why)
    if rt == _PODS:
        containers = obj["spec"].get("containers")
        if not isinstance(containers, list) or not containers:
            raise statuses.invalid(rt, name, "spec.containers: Required value")
        if not all(isinstance(c, dict) and c.get("name") for c in containers):
            raise statuses.invalid(rt, name, "spec.containers[*].name: Required value")
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if rt == _PODS:
        _check_container_names(rt, name, "spec", obj["spec"])
    elif isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _check_container_names(rt, name, "spec.template.spec", template["spec"])


def _check_container_names(rt: ResourceType, name: str, at: str, pod_spec: JsonObj) -> None:
    """A pod's container names are unique across its containers and init containers (422 as the server)."""
    seen: set[object] = set()
    for field in ("containers", "initContainers"):
        for index, container in enumerate(pod_spec.get(field) or []):
            if not isinstance(container, dict):
                continue
            if container.get("name") in seen:
                why = f'{at}.{field}[{index}].name: Duplicate value: "{container["name"]}"'
                raise statuses.invalid(rt, name, why)
            seen.add(container.get("name"))
