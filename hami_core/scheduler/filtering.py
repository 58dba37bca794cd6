"""The extender's filter: choose a node and the devices within it, book them, annotate the pod.

Per pod (``specs/hami-wire.md`` 3.3-3.7): each container's requests are parsed by the backends; the
node policy (pod annotation, else config) ranks nodes by their usage *before* the pod, which does not
depend on the fit, so the cache keeps that ranking sorted as usage changes and this module walks it in
preference order, skips nodes whose per-device capacity already rules the pod out, fits the rest with
the backends (HAMi's per-device ``Fit`` through :func:`hami_core.allocation.fit_pod`) and stops at the
first node that fits: HAMi's "sort the fitting nodes, take the last" without fitting every node. When
a pod needs a sizeable share of a device (or several whole devices) the walk uses the matching room
ranking, which leaves out the nodes that cannot give it. The chosen devices are reserved in the cache
against the node's generation (a concurrent filter that booked the same node first makes this one fit
again), then written to the pod in one merge patch (``hami.io/vgpu-node``, ``hami.io/vgpu-time``,
``<vendor>-devices-to-allocate`` and ``-allocated``).

``FailedNodes`` lists the nodes actually fitted; when no node fits, every candidate is fitted so each
gets HAMi's reason string (``GenReason``): the slow path, kept cheap for pods that come back by a memo
of reasons per node generation and pod signature. Two cases always fit every candidate: a backend that
adds its own node score (``score_node``), since the score then depends on the fit, and the dry-run path
(``Nodes`` instead of ``NodeNames``), which like HAMi scores transient node infos with zero usage and
writes nothing.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from datetime import UTC
from datetime import datetime
from typing import Generic
from typing import TypeVar

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import DeviceBooking
from hami_core.allocation import PodFit
from hami_core.backend import DeviceBackend
from hami_core.config import SchedulerConfig
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerDevice
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import PodDevices
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.hookspecs import ScoringPolicy
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Node
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import first_request
from hami_core.placement import placement_score
from hami_core.placement import single_fit
from hami_core.pods import PodView
from hami_core.scheduler import quota
from hami_core.scheduler import scoring
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.cache import NodeView
from hami_core.scheduler.cache import PodAllocation
from hami_core.scheduler.capacity import ROOM_TIERS
from hami_core.scheduler.capacity import BackendSummary
from hami_core.scheduler.capacity import RoomTier
from hami_core.scheduler.pod_requests import PodRequest
from hami_core.scheduler.pod_requests import parse_pod_request
from hami_core.scheduler.recording import EventKind
from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.recording import ObjectRef
from hami_core.scheduler.retrying import Retrier
from hami_core.scheduler.scoring import PodPolicies

_log = logging.getLogger(__name__)
_K = TypeVar("_K")
_V = TypeVar("_V")

#: How often a fit is redone when concurrent filters keep booking the same node first.
_RESERVE_ATTEMPTS = 8
#: A candidate list this much shorter than the ranking is sorted directly instead of walked.
_SMALL_CANDIDATES = 4
#: One request as the cheap capacity check sees it: backend, request, whether the shared fit applies.
_Check = tuple[str, DeviceRequest, bool]
#: The reason of a node that concurrent filters kept booking first (the pod is retried).
NODE_BUSY = "node busy"
#: Node names listed per reason in a ``FilteringFailed`` event.
_EVENT_NODES = 5


@attrs.frozen
class FilterOutcome:
    """What the filter decided for one pod.

    Args:
        result: ``scheduled``, ``unschedulable`` or ``passthrough`` (the pod asks no device).
        node: the chosen node when scheduled.
        failed: per node fitted without success, HAMi's reason string.
        passed: for ``passthrough``, the candidate names unchanged.
        evaluated: how many nodes were fitted.
        node_object: for the dry-run path, the chosen node object.
    """

    result: str
    node: str = ""
    failed: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    passed: tuple[str, ...] = ()
    evaluated: int = 0
    node_object: Node | None = attrs.field(default=None, eq=False, hash=False)

    def reason_keys(self) -> Counter[str]:
        """How many failed nodes gave each reason key (``node unregistered`` as ``NodeUnregistered``)."""
        counts: Counter[str] = Counter()
        for reason, nodes in Counter(self.failed.values()).items():
            keys = codec.parse_reasons(reason) if "/" in reason else {}
            labels = list(keys) if keys else [_label(part) for part in reason.split(",")]
            for label in labels:
                counts[label] += nodes
        return counts


def _label(reason: str) -> str:
    """A reason as a metric label: keys stay, phrases become CamelCase (``node unregistered``)."""
    words = reason.strip().split()
    return "".join(word[:1].upper() + word[1:] for word in words) if len(words) > 1 else reason.strip()


@attrs.frozen
class _Plan:
    """One pod's filter inputs, resolved once."""

    pod: PodView
    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str] = attrs.field(hash=False)
    request: PodRequest
    policies: PodPolicies
    numa_bind: bool
    used: Mapping[str, quota.Usage] = attrs.field(hash=False)
    signature: int = -1


def uses_shared_fit(backend: DeviceBackend) -> bool:
    """Whether the backend keeps the contract's default ``fit`` (so its rules can be extended)."""
    return type(backend).fit is DeviceBackend.fit


def scores_nodes(backend: DeviceBackend) -> bool:
    """Whether the backend adds its own node score (which depends on the devices chosen)."""
    return type(backend).score_node is not DeviceBackend.score_node


class Filtering:
    """Chooses a node and devices per pod.

    Args:
        cache: the cluster cache.
        backends: the loaded backends by name.
        policies: every registered scoring policy by name.
        kube: the API client (the pod patch).
        config: the scheduler section (default policies).
        clock: the current time (``hami.io/vgpu-time``).
        recorder: where events go; ``None`` records none.
        retrier: told of rejections and successes; ``None`` disables prompt retries.
    """

    def __init__(
        self,
        cache: ClusterCache,
        backends: Mapping[str, DeviceBackend],
        policies: Mapping[str, ScoringPolicy],
        kube: KubeClient,
        *,
        config: SchedulerConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recorder: EventRecorder | None = None,
        retrier: Retrier | None = None,
    ) -> None:
        self._cache = cache
        self._backends = dict(backends)
        self._policies = dict(policies)
        self._kube = kube
        self._config = config
        self._clock = clock
        self._recorder = recorder
        self._retrier = retrier
        self._shared_fit = {name: uses_shared_fit(backend) for name, backend in self._backends.items()}
        self._node_scoring = {name: scores_nodes(backend) for name, backend in self._backends.items()}
        self._volatile = frozenset(
            {codec.VGPU_NODE, codec.VGPU_TIME, codec.BIND_PHASE, codec.BIND_TIME, codec.SCHEDULING_RETRY}
            | {
                key
                for backend in self._backends.values()
                for key in (backend.keys.to_allocate, backend.keys.allocated)
            }
        )
        self._reasons = _ReasonMemo()
        # Placement scores and fits by (node, generation, pod signature, policy revision): a node
        # that has not changed is not refitted for the next pod of the same kind.
        self._placed: _Memo[tuple[str, int, int, int], tuple[float, PodFit]] = _Memo()

    # --- planning ---------------------------------------------------------------------------------

    def plan(self, pod: PodView) -> _Plan | None:
        """Resolve a pod's requests and policies; ``None`` when it asks no device.

        Raises:
            BackendError: a container's resources are malformed.
            CodecError: a policy or weights annotation is malformed or names no known policy.
        """
        request = parse_pod_request(pod, list(self._backends.values()))
        if request.empty:
            return None
        annotations = pod.annotations
        policies = scoring.pod_policies(
            annotations,
            self._policies,
            default_node=self._config.node_scheduler_policy,
            default_device=self._config.gpu_scheduler_policy,
        )
        context = FitContext(
            pod_annotations=annotations, device_policy=policies.device.text, weights=policies.weights
        )
        numa_bind = any(self._backends[name].fit_rules(context).numa_bind for name in request.backends)
        namespace = pod.namespace
        plan = _Plan(
            pod=pod,
            namespace=namespace,
            name=pod.name,
            uid=pod.uid,
            annotations=annotations,
            request=request,
            policies=policies,
            numa_bind=numa_bind,
            used={name: self._cache.namespace_usage(namespace, name) for name in request.backends},
        )
        return self._signed(plan)

    def _signed(self, plan: _Plan) -> _Plan:
        """``plan`` with the signature of everything a fit depends on besides the node.

        Two pods with the same signature get the same fit on the same node generation, so a
        failure's reason can be reused (the backends' fits are pure functions of request, devices
        and context, as the contract requires). Annotations the scheduler itself writes are left
        out; the namespace's quota and use are in only when a quota applies.
        """
        volatile = self._volatile
        annotations = frozenset(item for item in plan.annotations.items() if item[0] not in volatile)
        quotas: object = None
        if self._cache.quotas.any_in(plan.namespace):
            quotas = (
                tuple(
                    sorted(
                        (name, self._cache.quotas.limit(plan.namespace, name))
                        for name in plan.request.backends
                    )
                ),
                tuple(sorted(plan.used.items())),
            )
        signature = (
            tuple(tuple(sorted(wanted.items())) for wanted in plan.request.containers),
            plan.request.n_init,
            plan.policies.device.text,
            plan.policies.weights,
            plan.numa_bind,
            annotations,
            quotas,
        )
        return attrs.evolve(plan, signature=self._reasons.intern(signature))

    # --- fitting ----------------------------------------------------------------------------------

    def _checks(self, plan: _Plan) -> tuple[_Check, ...]:
        """(backend, request, strict) of every request: what the cheap capacity check runs."""
        return tuple(
            (backend, wanted, self._shared_fit[backend]) for backend, wanted in plan.request.requests()
        )

    def fit(self, plan: _Plan, view: NodeView) -> PodFit:
        """Fit every container of the pod on one node view."""
        devices = {name: view.devices.get(name, ()) for name in plan.request.backends}
        fitter = _NodeFitter(self, plan, view)
        if plan.policies.node.placement is not None:
            single = single_fit(plan.request.containers, plan.request.n_init, devices, fitter)
            if single is not None:
                return single
        return allocation.fit_pod(
            plan.request.containers,
            plan.request.n_init,
            devices,
            fitter,
            policy=plan.policies.device.policy,
            weights=plan.policies.weights,
            numa_bind=plan.numa_bind,
        )

    def _booked(self, plan: _Plan, node: str, fit: PodFit) -> PodAllocation:
        bookings: dict[str, tuple[DeviceBooking, ...]] = {}
        for name in plan.request.backends:
            collapsed = allocation.collapse_usage(fit.devices.for_backend(name), plan.request.n_init)
            if collapsed:
                bookings[name] = collapsed
        return PodAllocation(plan.namespace, plan.name, node, bookings)

    def _claim(self, plan: _Plan, view: NodeView, failed: dict[str, str]) -> PodFit | None:
        """Fit on ``view`` and reserve the result; refit while concurrent filters win the node."""
        current: NodeView | None = view
        for _ in range(_RESERVE_ATTEMPTS):
            if current is None:
                failed[view.name] = codec.NODE_UNREGISTERED
                return None
            memo_key = (current.name, current.generation, plan.signature)
            known = self._reasons.get(memo_key)
            if known is not None:
                failed[view.name] = known
                return None
            fit = self.fit(plan, current)
            if not fit.ok:
                failed[view.name] = fit.reason
                self._reasons.put(memo_key, fit.reason)
                return None
            if (
                self._cache.reserve(plan.uid, self._booked(plan, view.name, fit), current.generation)
                == "reserved"
            ):
                return fit
            current = self._cache.view(view.name)
        failed[view.name] = NODE_BUSY
        return None

    # --- the verb ---------------------------------------------------------------------------------

    def filter(self, pod: PodView, node_names: Sequence[str]) -> FilterOutcome:
        """Choose a node among ``node_names`` and devices on it for ``pod``; annotate the pod.

        Raises:
            BackendError: a container's resources are malformed.
            CodecError: a scheduling annotation of the pod is malformed.
            KubeError: the pod could not be annotated (its reservation is dropped).
        """
        try:
            plan = self.plan(pod)
        except (BackendError, CodecError) as err:
            if self._recorder is not None:
                ref = ObjectRef("Pod", pod.name, pod.namespace, pod.uid)
                self._recorder.record(ref, "Warning", "FilteringFailed", str(err))
            raise
        if plan is None:
            return FilterOutcome(result="passthrough", passed=tuple(node_names))
        # Re-filtering must never count the pod's previous choice against it (HAMi does the same).
        previous = self._cache.forget(plan.uid)
        try:
            return self._choose(plan, node_names)
        finally:
            # What the pod held before is free for others now (if it took it again, the retrier's
            # capacity check sees that): pods rejected for capacity may try again.
            if previous and self._retrier is not None:
                self._retrier.notify(previous)

    def _choose(self, plan: _Plan, node_names: Sequence[str]) -> FilterOutcome:
        plan = self._signed(
            attrs.evolve(
                plan,
                used={
                    name: self._cache.namespace_usage(plan.namespace, name) for name in plan.request.backends
                },
            )
        )
        wanted = set(node_names)
        failed: dict[str, str] = {}
        if plan.policies.node.placement is not None or any(
            self._node_scoring[name] for name in plan.request.backends
        ):
            chosen, fit, evaluated = self._best_of_all(plan, wanted, failed)
        else:
            chosen, fit, evaluated = self._first_fit(plan, wanted, failed)
        if fit is None:
            # The ranking holds known nodes only; the others are reported as HAMi does.
            failed.update(dict.fromkeys(self._cache.unknown(wanted), codec.NODE_UNREGISTERED))
            return self._unschedulable(plan, failed, evaluated)
        try:
            self._annotate(plan, chosen, fit)
        except KubeError:
            dropped = self._cache.forget(plan.uid)
            if self._retrier is not None:
                self._retrier.notify(dropped)
            raise
        if self._retrier is not None:
            self._retrier.scheduled(plan.namespace, plan.name)
        self._event(
            plan,
            "Normal",
            "FilteringSucceed",
            f"find fit node({chosen}), {len(failed)} nodes not fit, {evaluated} of {len(wanted)} nodes evaluated",
        )
        return FilterOutcome(result="scheduled", node=chosen, failed=failed, evaluated=evaluated)

    def _ordered(self, plan: _Plan, known: Set[str], checks: Sequence[_Check]) -> Iterator[str]:
        """``known`` in the pod's node policy order, most preferred first.

        When the pod needs a sizeable share of one device, only the nodes of the matching room
        ranking are listed: the others cannot give it (they still get a reason if nothing fits).
        """
        policy = plan.policies.node.name
        ranking = self._cache.ranking(policy)
        if len(known) * _SMALL_CANDIDATES < len(ranking):
            yield from self._cache.rank(policy, list(known))
            return
        room = self._room(checks)
        if room is not None:
            ranking = self._cache.ranking(policy, room)
        for _, name in ranking:
            if name in known:
                yield name

    def _room(self, checks: Sequence[_Check]) -> tuple[str, RoomTier] | None:
        """The most selective room ranking every node that can fit the pod belongs to."""
        best: tuple[str, RoomTier] | None = None
        for backend, wanted, strict in checks:
            if not strict:
                continue
            needs = {"memory": self._memory_need(backend, wanted), "cores": min(wanted.coresreq, 100)}
            for tier in ROOM_TIERS:
                fits = tier.level <= needs[tier.dimension] and tier.count <= wanted.nums
                if fits and (best is None or (tier.count, tier.level) > (best[1].count, best[1].level)):
                    best = (backend, tier)
        return best

    def _memory_need(self, backend: str, wanted: DeviceRequest) -> int:
        """The request's memory as a percent every device that can hold it can still give.

        MiB are turned into a percent of the fleet's largest device, which no device that can hold
        them falls below.
        """
        if wanted.memreq > 0:
            largest = self._cache.largest_device_memory(backend)
            return wanted.memreq * 100 // largest if largest else 0
        if wanted.mem_percentage_req != MEM_PERCENTAGE_UNSET:
            return wanted.mem_percentage_req
        return 0

    def _first_fit(
        self, plan: _Plan, known: Set[str], failed: dict[str, str]
    ) -> tuple[str, PodFit | None, int]:
        evaluated = 0
        checks = self._checks(plan)
        view_of = self._cache.view
        for name in self._ordered(plan, known, checks):
            view = view_of(name)
            if view is None or not _passes(view, checks):
                continue  # cannot fit (or deleted since the ranking was copied)
            evaluated += 1
            fit = self._claim(plan, view, failed)
            if fit is not None:
                return name, fit, evaluated
        # Nothing fits: fit every other node too, for its reason string (and in case capacity was
        # freed meanwhile); the reason memo keeps this cheap for pods that come back.
        memo = self._reasons
        for name in known:
            view = view_of(name)
            if name in failed or view is None:
                continue
            evaluated += 1
            reason = memo.get((name, view.generation, plan.signature))
            if reason is not None:
                failed[name] = reason
                continue
            fit = self._claim(plan, view, failed)
            if fit is not None:
                return name, fit, evaluated
        return "", None, evaluated

    def _best_of_all(
        self, plan: _Plan, known: Set[str], failed: dict[str, str]
    ) -> tuple[str, PodFit | None, int]:
        """Fit every node and add the backends' node scores (they depend on the chosen devices).

        A placement policy (FGD and the like) scores the fit too. Its walk skips nodes the cheap
        capacity check rules out, fitting them only for their reasons when no node fits.
        """
        policy = plan.policies.node.name
        placement = plan.policies.node.placement
        checks = self._checks(plan)
        revision = -1
        if placement is not None and placement.deterministic:
            shape = PodShape.of(first_request(plan.request.containers, plan.request.backends))
            revision = placement.revision(shape)
        skipped: list[str] = []
        best: tuple[float, str, NodeView, PodFit] | None = None
        for name in known:
            view = self._cache.view(name)
            if view is None:
                failed[name] = codec.NODE_UNREGISTERED
                continue
            if placement is not None and not _passes(view, checks):
                skipped.append(name)
                continue
            memo_key = (name, view.generation, plan.signature, revision)
            scored = self._placed.get(memo_key) if revision >= 0 else None
            if scored is None:
                fit = self.fit(plan, view)
                total = 0.0
                if fit.ok:
                    total = (self._cache.score(policy, name) or 0.0) + self._vendor_score(plan, view, fit)
                    if placement is not None:
                        total += placement_score(
                            placement, view.devices, fit.usage, plan.request.containers, plan.request.backends
                        )
                scored = (total, fit)
                if revision >= 0:
                    self._placed.put(memo_key, scored)
            total, fit = scored
            if not fit.ok:
                failed[name] = fit.reason
                continue
            if best is None or (total, best[1]) > (best[0], name):
                best = (total, name, view, fit)
        if best is None:
            for name in skipped:
                view = self._cache.view(name)
                if view is not None:
                    failed[name] = self.fit(plan, view).reason
            return "", None, len(known)
        claimed = self._claim(plan, best[2], failed)
        return best[1], claimed, len(known) - len(skipped)

    def _vendor_score(self, plan: _Plan, view: NodeView, fit: PodFit) -> float:
        context = self._context(plan, view)
        return sum(
            self._backends[name].score_node(
                view.devices.get(name, ()), fit.devices.for_backend(name), context
            )
            for name in plan.request.backends
        )

    def _context(self, plan: _Plan, view: NodeView) -> FitContext:
        return FitContext(
            pod_annotations=plan.annotations,
            node_annotations=view.annotations,
            device_policy=plan.policies.device.text,
            weights=plan.policies.weights,
        )

    # --- results ----------------------------------------------------------------------------------

    def _annotate(self, plan: _Plan, node: str, fit: PodFit) -> None:
        annotations: dict[str, str] = {
            codec.VGPU_NODE: node,
            codec.VGPU_TIME: str(int(self._clock().timestamp())),
        }
        for name in plan.request.backends:
            keys = self._backends[name].keys
            encoded = codec.encode_pod_devices(fit.devices.for_backend(name))
            annotations[keys.to_allocate] = encoded
            annotations[keys.allocated] = encoded
        patch = {"metadata": {"annotations": annotations, "labels": {codec.VGPU_NODE: node}}}
        try:
            self._kube.patch_pod(plan.namespace, plan.name, patch)
        except NotFoundError as err:
            raise NotFoundError(f"pod {plan.namespace}/{plan.name} is gone: {err}", status=404) from err

    def _unschedulable(self, plan: _Plan, failed: Mapping[str, str], evaluated: int) -> FilterOutcome:
        outcome = FilterOutcome(result="unschedulable", failed=dict(failed), evaluated=evaluated)
        if self._retrier is not None:
            quota_limited = any(codec.RESOURCE_QUOTA_NOT_FIT in reason for reason in failed.values())
            self._retrier.rejected(
                plan.namespace, plan.name, plan.uid, plan.request, quota_limited=quota_limited
            )
        by_reason: dict[str, list[str]] = {}
        for node, reason in failed.items():
            by_reason.setdefault(reason, []).append(node)
        parts = []
        for reason, nodes in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
            shown = ",".join(heapq.nsmallest(_EVENT_NODES, nodes)) + (
                ",..." if len(nodes) > _EVENT_NODES else ""
            )
            parts.append(f"{len(nodes)} nodes {reason}({shown})")
        self._event(plan, "Warning", "FilteringFailed", "; ".join(parts) or "no candidate nodes")
        return outcome

    def _event(self, plan: _Plan, kind: EventKind, reason: str, message: str) -> None:
        if self._recorder is not None:
            ref = ObjectRef(kind="Pod", name=plan.name, namespace=plan.namespace, uid=plan.uid)
            self._recorder.record(ref, kind, reason, message)

    # --- dry run --------------------------------------------------------------------------------------

    def dry_run(self, pod: PodView, nodes: Sequence[Node]) -> FilterOutcome:
        """HAMi's simulation path (``Nodes`` given): fit transient, unused copies of ``nodes``.

        Nothing is reserved or written; the best node by the pod's node policy is returned.

        Raises:
            BackendError: a container's resources are malformed.
            CodecError: a scheduling annotation of the pod is malformed.
        """
        plan = self.plan(pod)
        names = [(node.get("metadata") or {}).get("name", "") for node in nodes]
        if plan is None:
            return FilterOutcome(result="passthrough", passed=tuple(names))
        failed: dict[str, str] = {}
        best: tuple[float, str, Node] | None = None
        for node, name in zip(nodes, names, strict=True):
            view = self._transient_view(node, name)
            fit = self.fit(plan, view)
            if not fit.ok:
                failed[name] = fit.reason if view.devices else codec.NODE_UNREGISTERED
                continue
            score = plan.policies.node.score(view.all_devices()) + self._vendor_score(plan, view, fit)
            placement = plan.policies.node.placement
            if placement is not None:
                score += placement_score(
                    placement, view.devices, fit.usage, plan.request.containers, plan.request.backends
                )
            if best is None or (score, best[1]) > (best[0], name):
                best = (score, name, node)
        if best is None:
            return FilterOutcome(result="unschedulable", failed=failed, evaluated=len(nodes))
        return FilterOutcome(
            result="scheduled", node=best[1], failed=failed, evaluated=len(nodes), node_object=best[2]
        )

    def _transient_view(self, node: Node, name: str) -> NodeView:
        annotations = dict((node.get("metadata") or {}).get("annotations") or {})
        devices: dict[str, tuple[DeviceUsage, ...]] = {}
        for backend_name, backend in self._backends.items():
            try:
                infos = backend.node_devices(annotations)
            except (CodecError, BackendError):
                continue
            if infos:
                devices[backend_name] = tuple(DeviceUsage.from_info(info) for info in infos)
        return NodeView(
            name=name,
            generation=0,
            annotations=annotations,
            devices=devices,
            summaries={backend: BackendSummary.of(found) for backend, found in devices.items()},
        )


def _passes(view: NodeView, checks: Sequence[_Check]) -> bool:
    """Whether the node's aggregates leave room for every request (``False`` is certain)."""
    summaries = view.summaries
    for backend, wanted, strict in checks:
        summary = summaries.get(backend)
        if summary is None or not summary.may_fit(wanted, strict=strict):
            return False
    return True


class _ReasonMemo:
    """Failure reasons by (node, node generation, pod signature); cleared when it grows too large.

    Makes the no-fit path cheap for the pods that keep coming back (retries, replicas of one shape):
    a node that has not changed since a pod of the same signature failed on it fails the same way.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._entries: dict[tuple[str, int, int], str] = {}
        self._signatures: dict[object, int] = {}
        self._next = itertools.count()

    def intern(self, signature: object) -> int:
        """A small number standing for ``signature`` (cheap to hash in every key); never reused."""
        found = self._signatures.get(signature)
        if found is None:
            if len(self._signatures) >= self._capacity:
                self._signatures.clear()
            found = self._signatures[signature] = next(self._next)
        return found

    def get(self, key: tuple[str, int, int]) -> str | None:
        return self._entries.get(key)

    def put(self, key: tuple[str, int, int], reason: str) -> None:
        if len(self._entries) >= self._capacity:
            self._entries.clear()
        self._entries[key] = reason


class _Memo(Generic[_K, _V]):
    """A dict that starts over when it grows past ``capacity`` entries."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._entries: dict[_K, _V] = {}

    def get(self, key: _K) -> _V | None:
        return self._entries.get(key)

    def put(self, key: _K, value: _V) -> None:
        if len(self._entries) >= self._capacity:
            self._entries.clear()
        self._entries[key] = value


class _NodeFitter:
    """The per-request fit :func:`hami_core.allocation.fit_pod` calls for one pod on one node.

    Backends that keep the shared fit get their rules extended by the core: the node's
    ``hami.io/device-cordon`` list and the namespace quota check (step 9 of HAMi's ``Fit``). A backend
    with its own fit is called as is and its result checked against the quota afterwards.
    """

    def __init__(self, filtering: Filtering, plan: _Plan, view: NodeView) -> None:
        self._filtering = filtering
        self._plan = plan
        self._view = view
        self._context = filtering._context(plan, view)
        self._rules: dict[str, allocation.FitRules] = {}

    def __call__(
        self, backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
    ) -> FitResult:
        plan = self._plan
        owner = self._filtering._backends[backend]
        placement = plan.policies.node.placement
        if placement is not None:
            devices = placement.order(NodeState(devices=tuple(devices)), PodShape.of(request))
        else:
            devices = plan.policies.device.order(devices)
        limit = self._filtering._cache.quotas.limit(plan.namespace, backend)
        if not self._filtering._shared_fit[backend]:
            result = owner.fit(request, devices, self._context)
            if result.ok and limit is not None and not self._admits(limit, backend, earlier, result.devices):
                return FitResult(
                    ok=False, reasons={codec.RESOURCE_QUOTA_NOT_FIT: len(devices)}, considered=len(devices)
                )
            return result
        rules = self._rules.get(backend)
        if rules is None:
            rules = owner.fit_rules(self._context)
            cordon = self._view.annotations.get(codec.DEVICE_CORDON)
            if cordon:
                rules = attrs.evolve(rules, cordoned=rules.cordoned | codec.parse_cordon(cordon))
            self._rules[backend] = rules
        if limit is not None:
            rules = attrs.evolve(rules, extra_check=self._quota_check(limit, backend, earlier))
        return allocation.fit_container(request, devices, rules, plan.policies.device.policy)

    def _admits(
        self, limit: quota.ResourceLimit, backend: str, earlier: PodDevices, current: ContainerDevices
    ) -> bool:
        containers = [*earlier.for_backend(backend), current]
        collapsed = allocation.collapse_usage(containers, self._plan.request.n_init)
        return limit.admits(self._plan.used.get(backend, quota.Usage()), quota.booking_usage(collapsed))

    def _quota_check(
        self, limit: quota.ResourceLimit, backend: str, earlier: PodDevices
    ) -> Callable[[DeviceUsage, ContainerDevice, ContainerDevices], str | None]:
        def check(device: DeviceUsage, candidate: ContainerDevice, picked: ContainerDevices) -> str | None:
            if self._admits(limit, backend, earlier, (*picked, candidate)):
                return None
            return codec.RESOURCE_QUOTA_NOT_FIT

        return check
