"""Admission's decision for one pod: which backends it uses, how they change it, and whether it may in.

HAMi's sequence (hami-wire.md section 4), then hami's own checks:

1. a pod labelled ``hami.io/webhook: ignore`` is left alone (namespaces with that label are kept
   away by the webhook configuration's ``namespaceSelector``, see ``registration.py``);
2. a pod that is not a readable pod is refused (400); one without containers is denied (403);
3. a pod that already names another scheduler is left alone (with a warning when it asks for a
   backend's resources, since hami will not schedule it);
4. every backend's ``mutate_container`` runs over every init and then every regular container,
   each backend seeing the previous one's result; a ``BackendError`` refuses the pod (400);
5. beyond HAMi, each container that names a backend's resources is validated: values must be
   whole, non-negative numbers, a percentage at most 100, and memory, percentage or cores need a
   device count; the backend's ``parse_request`` must accept it (400 otherwise). A well-formed
   request that no device registered now can satisfy (memory above the largest device, more
   devices than the largest node has) and cores above 100 (counted as 100, as HAMi's scheduler
   does) are admitted with AdmissionReview warnings, because devices may still register;
6. a privileged container in a pod that uses devices is denied (HAMi's rule, 403);
7. a pod that uses devices gets ``schedulerName`` (a pod already bound to a node is denied, 403)
   and the backend's ``runtimeClassName`` when it has none; beyond HAMi, one whose
   ``hami.io/node-scheduler-policy`` names no registered node policy is denied (403) with the known
   names (an empty value means the configured default);
8. the namespace quota pre-check of hami-wire.md 3.10, when a :class:`QuotaCheck` is given (403);
9. the reply is the JSONPatch from the pod as received to the pod as mutated.

Pure: the capacity and quota views are read-only Protocols the scheduler's cache implements. It
never raises for a pod, however malformed; unexpected backend failures become 500 refusals.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Protocol

import attrs
import jsonpatch

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.backend import whole_quantity
from hami_core.config import SchedulerConfig
from hami_core.devices import DeviceRequest
from hami_core.errors import BackendError
from hami_core.errors import PodFormatError
from hami_core.errors import echo
from hami_core.pods import ContainerView
from hami_core.pods import PodView

log = logging.getLogger(__name__)

#: The scheduler the API server defaults ``schedulerName`` to.
DEFAULT_SCHEDULER = "default-scheduler"
_CONTAINER_FIELDS = ("initContainers", "containers")
_WHOLE_DEVICE_CORES = 100


class Capacity(Protocol):
    """What devices are registered right now, for warnings about requests nothing can satisfy.

    ``None`` means unknown (no warning); ``0`` means no device of that backend is registered.
    """

    def largest_device_memory(self, backend: str) -> int | None:
        """MiB of the largest registered device of ``backend``."""
        ...

    def largest_node_device_count(self, backend: str) -> int | None:
        """The most devices of ``backend`` any one node has registered."""
        ...


class QuotaCheck(Protocol):
    """The namespace quota pre-check of hami-wire.md 3.10 (``limits.<memory or cores resource>``)."""

    def quota_exceeded(self, namespace: str, backend: str, memory: int, cores: int) -> str | None:
        """Why a pod asking ``memory`` MiB and ``cores`` percent of ``backend``'s devices would
        exceed ``namespace``'s quota, or ``None`` when it fits (or there is no quota)."""
        ...


@attrs.frozen
class WebhookSettings:
    """What admission needs from the ``scheduler:`` config section.

    Args:
        scheduler_name: written into ``spec.schedulerName`` of pods that use devices.
        force_overwrite_default_scheduler: also claim pods whose ``schedulerName`` is
            ``default-scheduler`` (what the API server defaults it to).
        node_policies: the registered node policy names; a device pod whose
            ``hami.io/node-scheduler-policy`` names another is denied. Empty checks nothing.
    """

    scheduler_name: str = "hami-scheduler"
    force_overwrite_default_scheduler: bool = True
    node_policies: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, scheduler: SchedulerConfig, node_policies: Iterable[str] = ()) -> WebhookSettings:
        """The settings of the ``scheduler:`` section, checking policy names against ``node_policies``."""
        return cls(
            scheduler_name=scheduler.scheduler_name,
            force_overwrite_default_scheduler=scheduler.force_overwrite_default_scheduler,
            node_policies=frozenset(node_policies),
        )


@attrs.frozen
class MutationOutcome:
    """The webhook's answer for one pod.

    Args:
        allowed: whether the pod is admitted.
        patch: RFC 6902 operations turning the pod as received into the pod as admitted.
        warnings: shown by kubectl at apply time (kube-apiserver's ``Warning`` headers).
        code: HTTP-style status of a refusal: 400 malformed, 403 denied by rule, 500 webhook fault.
        message: why the pod is refused, naming the container and resource where there is one.
    """

    allowed: bool
    patch: tuple[Mapping[str, object], ...] = attrs.field(default=(), hash=False)
    warnings: tuple[str, ...] = ()
    code: int = 200
    message: str = ""

    @classmethod
    def admit(
        cls, patch: Iterable[Mapping[str, object]] = (), warnings: Iterable[str] = ()
    ) -> MutationOutcome:
        """Admit, with ``patch`` applied."""
        return cls(allowed=True, patch=tuple(patch), warnings=_unique(warnings))

    @classmethod
    def refuse(cls, code: int, message: str, warnings: Iterable[str] = ()) -> MutationOutcome:
        """Refuse with ``code`` and ``message``."""
        return cls(allowed=False, code=code, message=message, warnings=_unique(warnings))


def _unique(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(texts))


class _Refused(Exception):
    """Internal: stops the decision with a refusal."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.define
class _Container:
    """One container while the decision runs: where it sits, its current view and what uses it."""

    field: str
    index: int
    view: ContainerView
    uses: list[DeviceBackend] = attrs.Factory(list)
    requests: dict[str, DeviceRequest] = attrs.Factory(dict)

    @property
    def name(self) -> str:
        return self.view.label

    @property
    def is_init(self) -> bool:
        return self.view.init

    @property
    def body(self) -> Mapping[str, object]:
        return self.view.spec


def _plain(value: object, what: str) -> dict[str, object]:
    """A JSON-only deep copy of ``value`` (so the patch and the reply serialise)."""
    try:
        plain = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as err:
        raise _Refused(500, f"{what} cannot be written as JSON: {err}") from err
    if not isinstance(plain, dict):
        raise _Refused(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return plain


def _ignored(pod: Mapping[str, object]) -> bool:
    """Whether a pod the view cannot read still carries the ignore label (it is left alone then)."""
    metadata = pod.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return isinstance(labels, Mapping) and labels.get(codec.WEBHOOK_LABEL) == codec.WEBHOOK_IGNORE


def _containers(pod: PodView) -> list[_Container]:
    """The pod's containers in the kubelet's order, each with its place in the spec."""
    return [
        _Container(_CONTAINER_FIELDS[0], index, view)
        if view.init
        else _Container(_CONTAINER_FIELDS[1], index - pod.n_init, view)
        for index, view in enumerate(pod.containers)
    ]


def _names_asked(container: ContainerView, backends: Sequence[DeviceBackend]) -> list[str]:
    return [
        name
        for backend in backends
        for name in backend.resource_names.all()
        if container.value(name) is not None
    ]


def _claims(scheduler_name: str, settings: WebhookSettings) -> bool:
    """HAMi's step 3: whether the pod's current ``schedulerName`` leaves it to hami."""
    if not scheduler_name:
        return True
    if scheduler_name == DEFAULT_SCHEDULER and settings.force_overwrite_default_scheduler:
        return True
    return bool(settings.scheduler_name) and scheduler_name == settings.scheduler_name


def _run_backends(
    container: _Container, backends: Sequence[DeviceBackend], pod: PodView
) -> tuple[str, list[str]]:
    """Let every backend mutate ``container``; returns the runtime class asked for and warnings."""
    runtime_class = ""
    warnings: list[str] = []
    for backend in backends:
        try:
            result = backend.mutate_container(container.view, pod)
        except BackendError as err:
            raise _Refused(400, str(err)) from err
        except Exception as err:
            log.exception("backend %s failed to mutate container %s", backend.name, container.name)
            raise _Refused(
                500,
                f"backend {backend.name} failed on container {container.name}: {type(err).__name__}: {err}",
            ) from err
        if result.container is not None:
            what = f"backend {backend.name}'s container {container.name}"
            body = _plain(result.container, what)
            try:
                container.view = ContainerView.from_object(body, init=container.is_init)
            except PodFormatError as err:
                raise _Refused(500, f"{what} is malformed: {err}") from err
        warnings.extend(result.warnings)
        if result.has_resource:
            container.uses.append(backend)
            runtime_class = runtime_class or result.runtime_class_name
    return runtime_class, warnings


def _validate(container: _Container, backend: DeviceBackend, capacity: Capacity | None) -> list[str]:
    """hami's checks of one container against one backend; returns warnings.

    Raises:
        _Refused: the request is malformed in itself (400).
    """
    names = backend.resource_names
    view = container.view
    try:
        raw = {name: view.value(name) for name in names.all()}
        present = {name: value for name, value in raw.items() if value is not None}
        amounts = {name: whole_quantity(view, name, value) for name, value in present.items()}
    except BackendError as err:
        raise _Refused(400, str(err)) from err
    if not present:
        return []
    for name, amount in amounts.items():
        if amount < 0:
            raise _Refused(
                400, f"container {container.name}: {name} must not be negative, got {echo(present[name])}"
            )
    if names.memory_percentage in amounts and amounts[names.memory_percentage] > 100:
        raise _Refused(
            400,
            f"container {container.name}: {names.memory_percentage} must be between 0 and 100, "
            f"got {echo(present[names.memory_percentage])}",
        )
    shares = [
        name for name in (names.memory, names.memory_percentage, names.cores) if name and name in present
    ]
    count = amounts.get(names.count, 0)
    if shares and count == 0:
        missing = f"{names.count} is 0" if names.count in present else f"no {names.count}"
        raise _Refused(
            400,
            f"container {container.name} asks for {', '.join(shares)} but {missing}: "
            f"set {names.count} to the number of {backend.name} devices it needs",
        )
    if count == 0:
        return []
    try:
        request = backend.parse_request(view)
    except BackendError as err:
        raise _Refused(400, str(err)) from err
    if request is None:
        return []
    container.requests[backend.name] = request
    return _warnings(container, backend, request, present, capacity)


def _warnings(
    container: _Container,
    backend: DeviceBackend,
    request: DeviceRequest,
    present: Mapping[str, object],
    capacity: Capacity | None,
) -> list[str]:
    names = backend.resource_names
    warnings: list[str] = []
    if request.coresreq > _WHOLE_DEVICE_CORES:
        warnings.append(
            f"container {container.name}: {names.cores} {echo(present.get(names.cores, request.coresreq))} is more "
            f"than a whole device and counts as {_WHOLE_DEVICE_CORES}"
        )
    if capacity is None:
        return warnings
    largest_count = capacity.largest_node_device_count(backend.name)
    if largest_count is not None and request.nums > largest_count:
        have = (
            f"no node has registered a {backend.name} device yet"
            if largest_count == 0
            else f"no node has more than {largest_count}"
        )
        warnings.append(
            f"container {container.name} asks for {request.nums} {backend.name} devices but {have}; "
            "the pod stays Pending until such a node registers"
        )
    largest_memory = capacity.largest_device_memory(backend.name)
    if largest_memory is not None and largest_count != 0 and request.memreq > largest_memory:
        warnings.append(
            f"container {container.name} asks for {request.memreq} MiB per {backend.name} device but the "
            f"largest registered device has {largest_memory} MiB; the pod stays Pending until a larger one registers"
        )
    return warnings


def _privileged(container: _Container) -> bool:
    context = container.body.get("securityContext")
    return isinstance(context, Mapping) and context.get("privileged") is True


def _quota_totals(containers: Sequence[_Container], backend: str) -> tuple[int, int]:
    """Pod memory and cores of ``backend`` as HAMi's quota pre-check counts them.

    Regular containers add up, init containers run one at a time (the largest counts), and the
    pod needs the larger of the two; percentage-only memory counts 0 here (checked at fit time).
    """
    app = [0, 0]
    init = [0, 0]
    for container in containers:
        request = container.requests.get(backend)
        if request is None:
            continue
        memory, cores = request.nums * request.memreq, request.nums * request.coresreq
        if container.is_init:
            init = [max(init[0], memory), max(init[1], cores)]
        else:
            app = [app[0] + memory, app[1] + cores]
    return max(app[0], init[0]), max(app[1], init[1])


def mutate_pod(
    pod: object,
    backends: Iterable[DeviceBackend],
    settings: WebhookSettings,
    *,
    namespace: str = "",
    capacity: Capacity | None = None,
    quota: QuotaCheck | None = None,
) -> MutationOutcome:
    """Decide admission of ``pod`` (``request.object`` of a pod CREATE review).

    Args:
        pod: the pod as received; anything, since the request may be malformed.
        backends: the enabled backends, in load order.
        settings: the scheduler name and overwrite rule.
        namespace: the request's namespace (for the quota check).
        capacity: registered devices now, for warnings; ``None`` gives no capacity warnings.
        quota: the namespace quota pre-check; ``None`` skips it.

    Returns:
        The outcome; it never raises for any input.
    """
    try:
        return _decide(pod, tuple(backends), settings, namespace, capacity, quota)
    except _Refused as refused:
        return MutationOutcome.refuse(refused.code, refused.message)


def _decide(
    pod: object,
    backends: Sequence[DeviceBackend],
    settings: WebhookSettings,
    namespace: str,
    capacity: Capacity | None,
    quota: QuotaCheck | None,
) -> MutationOutcome:
    if not isinstance(pod, Mapping):
        raise _Refused(
            400, f"the request's object is not a pod: expected an object, got {type(pod).__name__}"
        )
    original = _plain(pod, "the pod")
    try:
        view = PodView.from_object(original)
    except PodFormatError as err:
        if _ignored(original):
            return MutationOutcome.admit()
        raise _Refused(400, str(err)) from err
    if view.labels.get(codec.WEBHOOK_LABEL) == codec.WEBHOOK_IGNORE:
        return MutationOutcome.admit()
    mutated = copy.deepcopy(original)
    spec = mutated.get("spec")
    if not isinstance(spec, dict):
        raise _Refused(400, "the pod has no spec object")
    containers = _containers(view)
    if not any(not container.is_init for container in containers):
        raise _Refused(403, "pod has no containers")
    scheduler_name = view.scheduler_name
    if not _claims(scheduler_name, settings):
        asked = [name for container in containers for name in _names_asked(container.view, backends)]
        if not asked:
            return MutationOutcome.admit()
        return MutationOutcome.admit(
            warnings=[
                f"pod asks for {', '.join(dict.fromkeys(asked))} but names scheduler {scheduler_name}, "
                "so hami leaves it alone"
            ]
        )

    warnings: list[str] = []
    runtime_class = ""
    for container in containers:
        asked_class, more = _run_backends(container, backends, view)
        runtime_class = runtime_class or asked_class
        warnings += more
        spec[container.field][container.index] = container.body
    for container in containers:
        for backend in backends:
            warnings += _validate(container, backend, capacity)

    if any(container.uses for container in containers):
        privileged = next((container for container in containers if _privileged(container)), None)
        if privileged is not None:
            raise _Refused(403, f"container {privileged.name} is privileged")
        if settings.scheduler_name:
            spec["schedulerName"] = settings.scheduler_name
        if spec.get("nodeName"):
            raise _Refused(403, "pod has node assigned")
        if runtime_class and not spec.get("runtimeClassName"):
            spec["runtimeClassName"] = runtime_class
        policy = view.annotation(codec.NODE_SCHEDULER_POLICY)
        if policy and settings.node_policies and policy not in settings.node_policies:
            known = ", ".join(sorted(settings.node_policies))
            raise _Refused(403, f"unknown node scheduler policy {policy!r} (known: {known})")
        if quota is not None:
            where = namespace or view.namespace
            for backend in backends:
                memory, cores = _quota_totals(containers, backend.name)
                if memory or cores:
                    reason = quota.quota_exceeded(where, backend.name, memory, cores)
                    if reason:
                        raise _Refused(403, f"exceeding resource quota: {reason}")
    patch = jsonpatch.make_patch(original, mutated).patch
    return MutationOutcome.admit(patch, warnings)
