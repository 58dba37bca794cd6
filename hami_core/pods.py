"""One pod, read once where it enters hami: :class:`PodView` and :class:`ContainerView`.

A pod arrives as JSON from many edges (an informer event, an AdmissionReview, an extender body, the
device plugin's lookup of the pod holding a node lock). Each edge builds a :class:`PodView` with
:meth:`PodView.from_object`, which checks every field hami reads for its JSON type, so nothing
behind the edge digs in the raw dict or meets a wrong type: a malformed pod is a
:class:`~hami_core.errors.PodFormatError` at the edge, answered there. Containers are listed in the
kubelet's order, init containers first, the order of every per-container annotation
(``specs/hami-wire.md`` 1.4.3). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from hami_core.errors import PodFormatError

#: Phases after which a pod holds nothing (its devices are free again).
FINISHED_PHASES: Final = frozenset({"Succeeded", "Failed"})
#: A quantity as the API sends it: a string, or a number from a hand-written body.
Quantity = str | int | float

_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_QUANTITIES: Mapping[str, Quantity] = MappingProxyType({})


@attrs.frozen
class ContainerView:
    """One container of a pod, as the backends read it.

    Args:
        name: the container's name (``<unnamed>`` in messages when empty).
        init: whether it is an init container.
        limits: ``resources.limits`` as sent (raw quantities).
        requests: ``resources.requests`` as sent.
        env: plain ``env`` values by name (``valueFrom`` entries are left out).
        spec: the container object itself, for admission patches; never read for resources.
    """

    name: str
    init: bool = False
    limits: Mapping[str, Quantity] = attrs.field(default=_NO_QUANTITIES, hash=False)
    requests: Mapping[str, Quantity] = attrs.field(default=_NO_QUANTITIES, hash=False)
    env: Mapping[str, str] = attrs.field(default=_EMPTY, hash=False)
    spec: Mapping[str, object] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @property
    def label(self) -> str:
        """The name for messages: ``<unnamed>`` when the container has none."""
        return self.name or "<unnamed>"

    def limit(self, resource: str) -> Quantity | None:
        """The raw limit of ``resource``, ``None`` when absent."""
        return self.limits.get(resource)

    def value(self, resource: str) -> Quantity | None:
        """The raw amount of ``resource``: the limit, else the request (HAMi's rule)."""
        found = self.limits.get(resource)
        return found if found is not None else self.requests.get(resource)

    @classmethod
    def from_object(cls, raw: object, *, init: bool = False, where: str = "container") -> ContainerView:
        """Read one container object, checking the type of every field hami reads.

        Raises:
            PodFormatError: a field has the wrong JSON type; the message says which.
        """
        if not isinstance(raw, Mapping):
            raise PodFormatError(f"{where} must be an object, got {_kind(raw)}")
        name = raw.get("name", "")
        if not isinstance(name, str):
            raise PodFormatError(f"{where}.name must be a string, got {_kind(name)}")
        where = f"container {name}" if name else where
        resources = _mapping(raw.get("resources"), f"{where}: resources")
        return cls(
            name=name,
            init=init,
            limits=_quantities(resources.get("limits"), f"{where}: resources.limits"),
            requests=_quantities(resources.get("requests"), f"{where}: resources.requests"),
            env=_env(raw.get("env"), where),
            spec=raw,
        )


@attrs.frozen
class PodView:
    """A pod as hami reads it, built once per event or request.

    Args:
        namespace: ``metadata.namespace``.
        name: ``metadata.name``.
        uid: ``metadata.uid`` (empty before the API server assigns one).
        labels: ``metadata.labels``.
        annotations: ``metadata.annotations``.
        resource_version: ``metadata.resourceVersion``.
        deleting: ``metadata.deletionTimestamp`` is set.
        scheduler_name: ``spec.schedulerName``.
        node_name: ``spec.nodeName`` (empty until bound).
        node_selector: ``spec.nodeSelector``.
        priority: ``spec.priority`` (0 when unset).
        overhead: ``spec.overhead`` (the runtime class's per-pod resources).
        phase: ``status.phase``.
        containers: init containers first, then app containers.
        n_init: how many of ``containers`` are init containers.
        init_done: every init container terminated with exit code 0 (their share is free again).
        raw: the object as received, for the few places that write it back whole.
    """

    namespace: str
    name: str
    uid: str = ""
    labels: Mapping[str, str] = attrs.field(default=_EMPTY, hash=False)
    annotations: Mapping[str, str] = attrs.field(default=_EMPTY, hash=False)
    resource_version: str = ""
    deleting: bool = False
    scheduler_name: str = ""
    node_name: str = ""
    node_selector: Mapping[str, str] = attrs.field(default=_EMPTY, hash=False)
    priority: int = 0
    overhead: Mapping[str, Quantity] = attrs.field(default=_NO_QUANTITIES, hash=False)
    phase: str = ""
    containers: tuple[ContainerView, ...] = ()
    n_init: int = 0
    init_done: bool = False
    raw: Mapping[str, object] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @property
    def key(self) -> str:
        """``namespace/name``, the pod's key in caches and messages."""
        return f"{self.namespace}/{self.name}"

    @property
    def finished(self) -> bool:
        """The pod ran to completion or failed: it holds no device any more."""
        return self.phase in FINISHED_PHASES

    @property
    def init_containers(self) -> tuple[ContainerView, ...]:
        return self.containers[: self.n_init]

    @property
    def app_containers(self) -> tuple[ContainerView, ...]:
        return self.containers[self.n_init :]

    def annotation(self, key: str, default: str = "") -> str:
        return self.annotations.get(key, default)

    @classmethod
    def from_object(cls, raw: object) -> PodView:
        """Read a pod object (a ``core/v1`` Pod as JSON), checking each field hami reads.

        Raises:
            PodFormatError: the object or one of those fields has the wrong JSON type.
        """
        if not isinstance(raw, Mapping):
            raise PodFormatError(f"a pod must be an object, got {_kind(raw)}")
        metadata = _mapping(raw.get("metadata"), "metadata")
        spec = _mapping(raw.get("spec"), "spec")
        status = _mapping(raw.get("status"), "status")
        init = _list(spec.get("initContainers"), "spec.initContainers")
        app = _list(spec.get("containers"), "spec.containers")
        containers = tuple(
            [
                *(
                    ContainerView.from_object(c, init=True, where=f"spec.initContainers[{i}]")
                    for i, c in enumerate(init)
                ),
                *(ContainerView.from_object(c, where=f"spec.containers[{i}]") for i, c in enumerate(app)),
            ]
        )
        return cls(
            namespace=_string(metadata.get("namespace"), "metadata.namespace"),
            name=_string(metadata.get("name"), "metadata.name"),
            uid=_string(metadata.get("uid"), "metadata.uid"),
            labels=_strings(metadata.get("labels"), "metadata.labels"),
            annotations=_strings(metadata.get("annotations"), "metadata.annotations"),
            resource_version=_string(metadata.get("resourceVersion"), "metadata.resourceVersion"),
            deleting=metadata.get("deletionTimestamp") is not None,
            scheduler_name=_string(spec.get("schedulerName"), "spec.schedulerName"),
            node_name=_string(spec.get("nodeName"), "spec.nodeName"),
            node_selector=_strings(spec.get("nodeSelector"), "spec.nodeSelector"),
            priority=_integer(spec.get("priority"), "spec.priority"),
            overhead=_quantities(spec.get("overhead"), "spec.overhead"),
            phase=_string(status.get("phase"), "status.phase"),
            containers=containers,
            n_init=len(init),
            init_done=bool(init) and _init_done(status.get("initContainerStatuses"), len(init)),
            raw=raw,
        )


def _kind(value: object) -> str:
    """The JSON type name of ``value`` for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PodFormatError(f"{where} must be an object, got {_kind(value)}")
    return value


def _list(value: object, where: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise PodFormatError(f"{where} must be an array, got {_kind(value)}")
    return list(value)


def _string(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PodFormatError(f"{where} must be a string, got {_kind(value)}")
    return value


def _integer(value: object, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise PodFormatError(f"{where} must be an integer, got {_kind(value)}")
    return value


def _strings(value: object, where: str) -> Mapping[str, str]:
    found = _mapping(value, where)
    for key, item in found.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise PodFormatError(f"{where}[{str(key)[:64]!r}] must be a string, got {_kind(item)}")
    return MappingProxyType(dict(found)) if found else _EMPTY  # type: ignore[arg-type]


def _quantities(value: object, where: str) -> Mapping[str, Quantity]:
    found = _mapping(value, where)
    for key, item in found.items():
        if not isinstance(key, str) or isinstance(item, bool) or not isinstance(item, str | int | float):
            raise PodFormatError(f"{where}[{str(key)[:64]!r}] must be a quantity string, got {_kind(item)}")
    return MappingProxyType(dict(found)) if found else _NO_QUANTITIES  # type: ignore[arg-type]


def _env(value: object, where: str) -> Mapping[str, str]:
    entries = _list(value, f"{where}: env")
    env: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise PodFormatError(f"{where}: env entries must be objects, got {_kind(entry)}")
        name, text = entry.get("name"), entry.get("value")
        if isinstance(name, str) and isinstance(text, str):
            env[name] = text
    return MappingProxyType(env) if env else _EMPTY


def _init_done(statuses: object, count: int) -> bool:
    """Every one of ``count`` init containers terminated with exit code 0."""
    if not isinstance(statuses, list) or len(statuses) < count:
        return False
    for status in statuses:
        state = status.get("state") if isinstance(status, Mapping) else None
        terminated = state.get("terminated") if isinstance(state, Mapping) else None
        if not isinstance(terminated, Mapping) or terminated.get("exitCode") != 0:
            return False
    return True
