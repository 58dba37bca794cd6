"""Kubernetes ``Status`` failures raised by the emulator's logic and rendered by its HTTP edge.

Each constructor spells the message exactly as kube-apiserver does (apimachinery's
``errors.New*``), because clients and tests match on them.
"""

from __future__ import annotations

from hami_core.errors import KubeError
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType

_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


class ApiError(KubeError):
    """A request the emulator refuses; carries everything a Status body needs.

    Args:
        code: HTTP status code.
        reason: ``Status.reason`` (``NotFound``, ``Conflict``, ...).
        message: ``Status.message``.
        details: ``Status.details`` (``name``, ``group``, ``kind``), omitted when empty.
    """

    def __init__(self, code: int, reason: str, message: str, details: JsonObj | None = None) -> None:
        super().__init__(message, status=code, reason=reason)
        self.code = code
        self.message = message
        self.details = details or {}

    def body(self) -> JsonObj:
        """The ``Status`` object sent to the client."""
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code: int, reason: str, message: str, details: JsonObj | None = None) -> JsonObj:
    """A ``Status`` object; ``status`` is Success for 2xx codes, Failure otherwise."""
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if 200 <= code < 300 else "Failure",
    }
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _details(rt: ResourceType, name: str) -> JsonObj:
    details: JsonObj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    """404: ``pods "p1" not found``."""
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    """409: ``pods "p1" already exists``."""
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(qualified: str, name: str, why: str = _MODIFIED, *, rt: ResourceType | None = None) -> ApiError:
    """409: ``Operation cannot be fulfilled on <qualified> "<name>": <why>``."""
    details = _details(rt, name) if rt is not None else {"name": name, "kind": qualified}
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified} "{name}": {why}', details)


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def invalid(rt: ResourceType, name: str, why: str) -> ApiError:
    """422: ``Pod "p1" is invalid: <why>``."""
    return ApiError(
        422, "Invalid", f'{rt.kind} "{name}" is invalid: {why}', _details(rt, name) | {"kind": rt.kind}
    )


def unprocessable(message: str) -> ApiError:
    """422 without an object (a JSON patch that cannot be applied)."""
    return ApiError(422, "Invalid", message)


def gone(message: str) -> ApiError:
    """410 Expired: the requested resourceVersion left the history window."""
    return ApiError(410, "Expired", message)


def internal(message: str) -> ApiError:
    """500: ``Internal error occurred: <message>``."""
    return ApiError(
        500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}
    )
