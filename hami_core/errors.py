"""The one exception tree of hami.

::

    HamiError
    ├── CodecError(ValueError)      an annotation value is not in HAMi's format
    ├── ConfigError(ValueError)     the config file is malformed (names the key and file)
    ├── BackendLoadError            an enabled backend cannot be loaded or is invalid
    ├── BackendError                a backend refuses a well-formed request (e.g. "no gpu found on node")
    ├── KubeError                   an API call failed (status code and reason kept)
    │   ├── NotFoundError
    │   └── ConflictError           stale resourceVersion or AlreadyExists
    └── LockError                   a node lock is held by another pod or cannot be taken

Errors carry the object and the remedy in their message and are chained with ``from err``.
They become protocol replies (AdmissionReview denials, extender ``Error`` fields, gRPC statuses)
only in ``server.py`` modules.
"""

from __future__ import annotations


class HamiError(Exception):
    """Base of every error hami raises on purpose."""


class CodecError(HamiError, ValueError):
    """An annotation value does not follow HAMi's wire format."""


class PodFormatError(CodecError):
    """A pod object has a field of the wrong JSON type (checked where the pod enters hami)."""


class ConfigError(HamiError, ValueError):
    """The configuration file is malformed; the message names the key and the file."""


class BackendLoadError(HamiError):
    """An enabled backend is missing, fails to import, or breaks the contract."""


class BackendError(HamiError):
    """A backend refuses a well-formed request (no device on the node, bad request for its devices)."""


class QuantityError(BackendError, ConfigError):
    """A value is not a Kubernetes quantity (a bad request to a backend, a bad value in a config file)."""


class KubeError(HamiError):
    """A Kubernetes API call failed.

    Args:
        message: what was attempted and what the API server said.
        status: the HTTP status code, 0 when the server could not be reached.
        reason: the ``Status.reason`` of the reply (``NotFound``, ``Conflict``, ...).
    """

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFoundError(KubeError):
    """The object does not exist (HTTP 404)."""


class ConflictError(KubeError):
    """The write lost an optimistic-concurrency race or the object already exists (HTTP 409)."""


class LockError(HamiError):
    """A node lock is held by another pod, or could not be set after retries."""


#: How much of a caller's value a message or log line quotes.
ECHO_LIMIT = 64


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``value`` for a message or log line: as is when short and printable, else its ``repr``, and
    cut to ``limit`` characters, so no caller's input is echoed whole (or with raw newlines)."""
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
