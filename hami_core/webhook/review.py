"""AdmissionReview on the wire (``admission.k8s.io/v1`` and ``v1beta1``): parsing requests, building replies.

The edge between kube-apiserver's JSON and the webhook's domain values (kube-wire.md 3c). A body
that is not an AdmissionReview at all (not JSON, another kind or apiVersion, no ``request``, no
``request.uid`` to answer) raises :class:`~hami_core.errors.CodecError`, which the server turns
into HTTP 400; a review whose request is readable enough to answer but malformed inside carries
the problem in :attr:`AdmissionRequest.problem` and is denied in an AdmissionReview. Replies echo
the request's ``apiVersion`` and ``uid``; patches are base64 JSONPatch; warnings are made safe
for the HTTP ``Warning`` header kube-apiserver turns them into.

Pure: no I/O, no mutation logic (``mutating.py`` decides).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Literal
from typing import TypedDict

import attrs

from hami_core.errors import CodecError
from hami_core.serving import MAX_JSON_DEPTH
from hami_core.serving import nested_deeper_than

ADMISSION_V1 = "admission.k8s.io/v1"
ADMISSION_V1BETA1 = "admission.k8s.io/v1beta1"
#: The AdmissionReview versions the webhook answers (HAMi's chart registers only v1beta1).
API_VERSIONS = (ADMISSION_V1, ADMISSION_V1BETA1)
KIND = "AdmissionReview"
#: Deeper ``request.object`` values are refused: a pod is about 15 levels deep, and deeper
#: structures would exhaust Python's recursion limit while copying and diffing.
MAX_OBJECT_DEPTH = MAX_JSON_DEPTH
#: Longer warnings are cut: kube-apiserver may truncate them anyway and kubectl prints each on one line.
MAX_WARNING_LENGTH = 256

# metav1.StatusReason values; 411 has none of its own.
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    411: "BadRequest",
    413: "RequestEntityTooLarge",
    500: "InternalError",
}


class ResponseStatus(TypedDict, total=False):
    """The ``metav1.Status`` of a denial; kube-apiserver reads ``code`` and ``message``."""

    metadata: dict[str, str]
    status: Literal["Success", "Failure"]
    message: str
    reason: str
    code: int


class AdmissionResponse(TypedDict, total=False):
    uid: str
    allowed: bool
    patchType: Literal["JSONPatch"]
    patch: str
    status: ResponseStatus
    warnings: list[str]


class AdmissionReview(TypedDict, total=False):
    """The reply envelope; the request side is read into :class:`AdmissionRequest` instead."""

    apiVersion: str
    kind: str
    response: AdmissionResponse


@attrs.frozen
class AdmissionRequest:
    """The parts of an AdmissionReview request the webhook uses.

    Args:
        api_version: the review's ``apiVersion``, echoed in the reply.
        uid: ``request.uid``, echoed in the reply.
        group: API group of the object's kind (``""`` for core).
        kind: the object's kind, e.g. ``Pod``.
        operation: ``CREATE``, ``UPDATE``, ``DELETE`` or ``CONNECT``.
        namespace: the request's namespace (also set when the pod has none yet).
        name: the object's name; empty on CREATE with ``generateName``.
        object: ``request.object`` as sent, not yet validated.
        dry_run: the API server will not persist the result.
        problem: why the request cannot be processed although it can be answered; empty if fine.
    """

    api_version: str
    uid: str
    group: str = ""
    kind: str = ""
    operation: str = ""
    namespace: str = ""
    name: str = ""
    object: object = attrs.field(default=None, eq=False)
    dry_run: bool = False
    problem: str = ""

    @property
    def is_pod_create(self) -> bool:
        """Whether this is the creation of a core/v1 Pod, the only write the webhook mutates."""
        return self.group == "" and self.kind == "Pod" and self.operation == "CREATE"


def _text(request: Mapping[str, object], key: str, problems: list[str]) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(f"request.{key} must be a string, got {type(value).__name__}")
        return ""
    return value


def _reject_constant(name: str) -> object:
    # Python's json reads NaN and Infinity, which are not JSON and cannot be patched or echoed.
    raise ValueError(f"{name} is not a JSON value")


def parse_review(body: bytes) -> AdmissionRequest:
    """Read an AdmissionReview request.

    Raises:
        CodecError: ``body`` is not an AdmissionReview that can be answered; the message says why.
    """
    try:
        review = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise CodecError(f"the request body is not JSON: {err}") from err
    if not isinstance(review, dict):
        raise CodecError(f"an AdmissionReview is a JSON object, got {type(review).__name__}")
    if review.get("kind") != KIND:
        raise CodecError(f"expected kind {KIND}, got {review.get('kind')!r}")
    api_version = review.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise CodecError(f"unsupported apiVersion {api_version!r}; expected one of {', '.join(API_VERSIONS)}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise CodecError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise CodecError("request.uid is missing, so there is nothing to answer")
    problems: list[str] = []
    kind = request.get("kind")
    group = resource_kind = ""
    if not isinstance(kind, dict):
        problems.append("request.kind must be an object naming the group, version and kind")
    else:
        group, resource_kind = _text(kind, "group", problems), _text(kind, "kind", problems)
    if request.get("operation") in (None, ""):
        problems.append("request.operation is missing")
    operation = _text(request, "operation", problems)
    if nested_deeper_than(request.get("object"), MAX_OBJECT_DEPTH):
        problems.append(f"request.object is nested deeper than {MAX_OBJECT_DEPTH} levels")
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        problems.append(f"request.dryRun must be true or false, got {dry_run!r}")
    return AdmissionRequest(
        api_version=str(api_version),
        uid=uid,
        group=group,
        kind=resource_kind,
        operation=operation,
        namespace=_text(request, "namespace", problems),
        name=_text(request, "name", problems),
        object=request.get("object"),
        dry_run=dry_run is True,
        problem="; ".join(problems),
    )


def safe_warning(text: str) -> str:
    """``text`` as printable ASCII of bounded length, fit for an HTTP ``Warning`` header."""
    escaped = "".join(
        char if " " <= char <= "~" else char.encode("unicode_escape").decode("ascii") for char in text
    )
    if len(escaped) > MAX_WARNING_LENGTH:
        escaped = escaped[: MAX_WARNING_LENGTH - 3] + "..."
    return escaped


def _review(request: AdmissionRequest, response: AdmissionResponse) -> AdmissionReview:
    return {"apiVersion": request.api_version, "kind": KIND, "response": response}


def allow(
    request: AdmissionRequest, patch: Sequence[Mapping[str, object]] = (), warnings: Sequence[str] = ()
) -> AdmissionReview:
    """Admit the object, with ``patch`` (JSONPatch operations) applied when non-empty."""
    response: AdmissionResponse = {"uid": request.uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(patch), separators=(",", ":")).encode()).decode()
    if warnings:
        response["warnings"] = [safe_warning(text) for text in warnings]
    return _review(request, response)


def deny(request: AdmissionRequest, code: int, message: str, warnings: Sequence[str] = ()) -> AdmissionReview:
    """Refuse the object: kube-apiserver answers the client with ``code`` and ``message``.

    This refuses the write whatever the webhook's ``failurePolicy`` (which only covers failed calls).
    """
    status: ResponseStatus = {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, ""),
        "code": code,
    }
    response: AdmissionResponse = {"uid": request.uid, "allowed": False, "status": status}
    if warnings:
        response["warnings"] = [safe_warning(text) for text in warnings]
    return _review(request, response)


def encode(review: AdmissionReview) -> bytes:
    """The reply body."""
    return json.dumps(review, separators=(",", ":")).encode()


def bad_request(message: str, code: int = 400) -> bytes:
    """The body of an HTTP error reply: a ``metav1.Status``, as Kubernetes servers send."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, ""),
        "code": code,
    }
    return json.dumps(status, separators=(",", ":")).encode()
