"""Mutating admission as kube-apiserver runs it: match webhooks, call them, apply their patches.

For each MutatingWebhookConfiguration (sorted by name) and each webhook in it whose ``rules``,
``namespaceSelector`` and ``objectSelector`` match, POST an AdmissionReview over HTTPS to
``clientConfig.url``, or to the ``service`` looked up in ``service_urls`` (TLS is then verified
against ``<name>.<namespace>.svc``, as kube-apiserver does), trusting only ``caBundle`` when set.
The returned base64 JSONPatch is applied before the next webhook runs.

Failures follow kube-apiserver: a call that fails (unreachable, timeout, non-200, malformed or
mismatched review) refuses the request with 500 under ``failurePolicy: Fail`` and is skipped
under ``Ignore``; a denial (``allowed: false``) always refuses, with the webhook's status code
and message; a patch that cannot be applied is a 500 whatever the policy. ``reinvocationPolicy``
is not honoured: each webhook runs once.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import socket
import ssl
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import jsonpatch
import jsonpointer

from hami_core.kube import selectors
from hami_core.localcluster import statuses
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType

ServiceUrls = Mapping[tuple[str, str, int], str]
"""(namespace, service name, port) -> base URL such as "https://127.0.0.1:8443"."""

_REVIEW_VERSIONS = ("v1", "v1beta1")
_DEFAULT_TIMEOUT_S = 10


@attrs.frozen
class Admitted:
    """The object after every matching webhook ran, and the warnings they returned."""

    obj: JsonObj
    warnings: tuple[str, ...] = ()


class _CallFailed(Exception):
    """The webhook could not be called or answered nonsense; failurePolicy decides."""


class MutatingAdmission:
    """Calls mutating webhooks for a write.

    Args:
        service_urls: where ``clientConfig.service`` references point, since the emulator
            has no Service network.
    """

    def __init__(self, service_urls: ServiceUrls | None = None) -> None:
        self._service_urls = dict(service_urls or {})

    def map_service(self, namespace: str, name: str, port: int, url: str) -> None:
        """Point calls for Service ``namespace/name:port`` at ``url``."""
        self._service_urls[(namespace, name, port)] = url

    def unmap_service(self, namespace: str, name: str, port: int) -> None:
        """Forget the URL of Service ``namespace/name:port``; unknown ones are ignored."""
        self._service_urls.pop((namespace, name, port), None)

    def admit(
        self,
        configurations: Sequence[JsonObj],
        *,
        rt: ResourceType,
        operation: str,
        obj: JsonObj,
        namespace_labels: Mapping[str, str] | None,
    ) -> Admitted:
        """Run every matching webhook over ``obj`` and return the mutated object.

        Raises:
            ApiError: the request is refused (denial, failed call under ``Fail``, bad patch).
        """
        warnings: list[str] = []
        for config in sorted(configurations, key=lambda c: c["metadata"]["name"]):
            for webhook in config.get("webhooks") or []:
                if webhook_matches(
                    webhook, rt=rt, operation=operation, obj=obj, namespace_labels=namespace_labels
                ):
                    obj = self._run(webhook, rt=rt, operation=operation, obj=obj, warnings=warnings)
        return Admitted(obj, tuple(warnings))

    def _run(
        self, webhook: JsonObj, *, rt: ResourceType, operation: str, obj: JsonObj, warnings: list[str]
    ) -> JsonObj:
        name = webhook.get("name", "")
        try:
            review = build_review(webhook, rt=rt, operation=operation, obj=obj)
            response = self._call(webhook, review)
        except _CallFailed as err:
            if webhook.get("failurePolicy", "Fail") == "Ignore":
                return obj
            raise statuses.internal(f'failed calling webhook "{name}": {err}') from err
        warnings.extend(str(w) for w in response.get("warnings") or [])
        if response.get("allowed") is not True:
            raise _denial(name, response.get("status") or {})
        if not response.get("patch"):
            return obj
        return _apply_patch(name, response, obj)

    def _call(self, webhook: JsonObj, review: JsonObj) -> JsonObj:
        client_config = webhook.get("clientConfig") or {}
        url, server_name = self._target(client_config)
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise _CallFailed(f"webhook URL {url!r} is not an https URL")
        timeout = float(webhook.get("timeoutSeconds") or _DEFAULT_TIMEOUT_S)
        context = ssl.create_default_context()
        if client_config.get("caBundle"):
            context = ssl.create_default_context(cadata=base64.b64decode(client_config["caBundle"]).decode())
        body = json.dumps(review).encode()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 443, timeout=timeout)
        try:
            raw = socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout)
            conn.sock = context.wrap_socket(raw, server_hostname=server_name or parts.hostname)
            conn.request(
                "POST", path, body, {"Content-Type": "application/json", "Accept": "application/json"}
            )
            reply = conn.getresponse()
            data = reply.read()
        except (OSError, http.client.HTTPException) as err:
            raise _CallFailed(f'failed to call webhook: Post "{url}": {err}') from err
        finally:
            conn.close()
        if reply.status != 200:
            raise _CallFailed(
                f"failed to call webhook: the server responded with the status code {reply.status}"
            )
        return _parse_reply(data, review)

    def _target(self, client_config: JsonObj) -> tuple[str, str]:
        if client_config.get("url"):
            return str(client_config["url"]), ""
        service = client_config.get("service") or {}
        namespace, name = service.get("namespace", ""), service.get("name", "")
        port = int(service.get("port") or 443)
        base = self._service_urls.get((namespace, name, port))
        if base is None:
            raise _CallFailed(f'failed to call webhook: service "{namespace}/{name}:{port}" has no address')
        return base.rstrip("/") + (service.get("path") or ""), f"{name}.{namespace}.svc"


def webhook_matches(
    webhook: JsonObj,
    *,
    rt: ResourceType,
    operation: str,
    obj: JsonObj,
    namespace_labels: Mapping[str, str] | None,
) -> bool:
    """Whether a webhook's rules and selectors select this write."""
    if not any(_rule_matches(rule, rt, operation) for rule in webhook.get("rules") or []):
        return False
    if rt.namespaced and not _selector(webhook, "namespaceSelector").matches(namespace_labels):
        return False
    return _selector(webhook, "objectSelector").matches((obj.get("metadata") or {}).get("labels"))


def _selector(webhook: JsonObj, key: str) -> selectors.LabelSelector:
    try:
        return selectors.label_selector_from_object(webhook.get(key))
    except selectors.SelectorError as err:
        raise statuses.bad_request(str(err)) from err


def _rule_matches(rule: JsonObj, rt: ResourceType, operation: str) -> bool:
    def allows(field: str, value: str, *wildcards: str) -> bool:
        allowed = rule.get(field) or []
        return value in allowed or any(w in allowed for w in ("*", *wildcards))

    scope = rule.get("scope", "*")
    in_scope = scope == "*" or (scope == "Namespaced") == rt.namespaced
    return (
        in_scope
        and allows("operations", operation)
        and allows("apiGroups", rt.group)
        and allows("apiVersions", rt.version)
        and allows("resources", rt.plural, "*/*")
    )


def build_review(webhook: JsonObj, *, rt: ResourceType, operation: str, obj: JsonObj) -> JsonObj:
    """The AdmissionReview request kube-apiserver sends for ``obj``, in the newest version the webhook accepts."""
    accepted = webhook.get("admissionReviewVersions") or ["v1"]
    version = next((v for v in _REVIEW_VERSIONS if v in accepted), None)
    if version is None:
        raise _CallFailed(
            f"webhook does not accept any of the AdmissionReview versions {list(_REVIEW_VERSIONS)}"
        )
    meta = obj.get("metadata") or {}
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    resource = {"group": rt.group, "version": rt.version, "resource": rt.plural}
    request = {
        "uid": str(uuid.uuid4()),
        "kind": kind,
        "resource": resource,
        "subResource": "",
        "requestKind": kind,
        "requestResource": resource,
        "requestSubResource": "",
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "operation": operation,
        "userInfo": {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.capitalize()}Options"},
    }
    return {"apiVersion": f"admission.k8s.io/{version}", "kind": "AdmissionReview", "request": request}


def _parse_reply(data: bytes, review: JsonObj) -> JsonObj:
    try:
        reply: Any = json.loads(data)
    except ValueError as err:
        raise _CallFailed(f"received invalid webhook response: {err}") from err
    if not isinstance(reply, dict) or not isinstance(reply.get("response"), dict):
        raise _CallFailed("webhook response was absent")
    if reply.get("apiVersion") != review["apiVersion"] or reply.get("kind") != "AdmissionReview":
        raise _CallFailed(
            f"expected webhook response of {review['apiVersion']}, Kind=AdmissionReview, "
            f"got {reply.get('apiVersion')}, Kind={reply.get('kind')}"
        )
    response: JsonObj = reply["response"]
    expected = review["request"]["uid"]
    if response.get("uid") != expected:
        raise _CallFailed(f"expected response.uid={expected!r}, got {response.get('uid')!r}")
    return response


def _denial(name: str, status: JsonObj) -> statuses.ApiError:
    code = status.get("code")
    code = code if isinstance(code, int) else 0
    denied = f'admission webhook "{name}" denied the request'
    why = status.get("message") or status.get("reason")
    message = f"{denied}: {why}" if why else f"{denied} without explanation"
    return statuses.ApiError(max(code, 400), str(status.get("reason") or ""), message)


def _apply_patch(name: str, response: JsonObj, obj: JsonObj) -> JsonObj:
    if response.get("patchType") != "JSONPatch":
        raise statuses.internal(
            f'webhook "{name}" returned a patch with patchType {response.get("patchType")!r}'
        )
    try:
        operations = json.loads(base64.b64decode(response["patch"], validate=True))
        patched = jsonpatch.JsonPatch(operations).apply(obj, in_place=False)
    except (
        ValueError,
        binascii.Error,
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
    ) as err:
        raise statuses.internal(f'webhook "{name}" returned a patch that cannot be applied: {err}') from err
    if not isinstance(patched, dict):
        raise statuses.internal(f'webhook "{name}" returned a patch that replaces the object')
    return patched
