"""The filter's decision, pure: which node and which devices for one pod, and why not elsewhere.

:meth:`Chooser.choose` takes a usage snapshot (anything that answers :class:`CapacityReader`, such as
:class:`~hami_core.scheduler.cache.ClusterCache`), one pod's :class:`Ask` and the candidate node names,
and returns a :class:`Decision`: the node, the devices per container, and HAMi's reason string for
each node that does not fit. It reads nothing else and writes nothing: reserving the devices and
annotating the pod is :mod:`hami_core.scheduler.committing`'s job, so a simulator can drive this
module directly with a cache it fills itself::

    chooser = Chooser(backends, policies, default_node="binpack", default_device="spread")
    ask = chooser.ask(pod_view)                    # None when the pod asks no device
    decision = chooser.choose(cache, ask, names)   # decision.node, decision.fit, decision.failed

How (``specs/hami-wire.md`` 3.3-3.7): the node policy ranks nodes by their usage *before* the pod,
which does not depend on the fit, so the snapshot keeps that ranking sorted and the walk goes in
preference order, skips nodes whose per-device capacity already rules the pod out, fits the rest with
the backends (HAMi's per-device ``Fit`` through :func:`hami_core.allocation.fit_pod`) and stops at
the first node that fits: HAMi's "sort the fitting nodes, take the last" without fitting every node.
A pod needing a sizeable share of a device (or several whole devices) walks the matching room
ranking, which leaves out the nodes that cannot give it.

``failed`` lists the nodes fitted before the chosen one; when no node fits, every candidate gets its
reason (``GenReason``). Two memos keep that cheap: reasons per (node generation, request shape), and
per request shape the whole "fits nowhere" answer, re-checked only on the nodes the snapshot's change
log names since. A backend that adds its own node score (``score_node``) makes every candidate be
fitted, since the score then depends on the fit; the dry-run path (:meth:`Chooser.choose_transient`)
fits transient, unused copies of given node objects, as HAMi does.
"""

from __future__ import annotations

import functools
import itertools
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set
from typing import Protocol

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import PodFit
from hami_core.backend import DeviceBackend
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
from hami_core.hookspecs import ScoringPolicy
from hami_core.kube.objects import Node
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import booked
from hami_core.placement import coarse_cpu
from hami_core.placement import first_request
from hami_core.placement import placement_score
from hami_core.placement import placement_state
from hami_core.placement import single_fit
from hami_core.placement import single_request
from hami_core.pods import PodView
from hami_core.scheduler import quota
from hami_core.scheduler import scoring
from hami_core.scheduler.capacity import ROOM_TIERS
from hami_core.scheduler.capacity import RoomTier
from hami_core.scheduler.index import NodeView
from hami_core.scheduler.index import node_view
from hami_core.scheduler.node_cpu import allocatable_cpu
from hami_core.scheduler.placed import Placed
from hami_core.scheduler.placed import PlacedRankings
from hami_core.scheduler.pod_requests import PodRequest
from hami_core.scheduler.pod_requests import parse_pod_request
from hami_core.scheduler.scoring import PodPolicies

#: A candidate list this much shorter than the ranking is sorted directly instead of walked.
_SMALL_CANDIDATES = 4
#: One request as the cheap capacity check sees it: backend, request, whether the shared fit applies.
_Check = tuple[str, DeviceRequest, bool]
#: Request shapes whose "fits nowhere" answer is kept.
_NO_FIT_SHAPES = 16
#: Past this many changed nodes a kept "fits nowhere" answer is recomputed instead of patched.
_NO_FIT_RECHECK = 512
#: A device's id: kept rankings compare the orders a placement policy gives by their ids.
_ID = operator.attrgetter("id")


class CapacityReader(Protocol):
    """The usage snapshot :meth:`Chooser.choose` reads (implemented by ``ClusterCache``)."""

    def view(self, name: str) -> NodeView | None: ...

    def ranking(self, policy: str, room: tuple[str, RoomTier] | None = None) -> list[tuple[float, str]]: ...

    def rank(self, policy: str, names: Sequence[str]) -> list[str]: ...

    def score(self, policy: str, name: str) -> float | None: ...

    def largest_device_memory(self, backend: str) -> int | None: ...

    def device_kinds(self, backend: str) -> tuple[DeviceUsage, ...]: ...

    @property
    def seq(self) -> int: ...

    def changed_since(self, seq: int) -> set[str] | None: ...


@attrs.frozen
class Ask:
    """One pod's placement question, resolved once per filter call.

    Args:
        pod: the pod.
        request: what each container asks of each backend.
        policies: node policy, device plan and score weights.
        numa_bind: whether some backend binds the pod to one NUMA node.
        used: per backend asked, the device memory and cores the namespace holds (quota).
        limits: per backend asked, the namespace's quota limits; ``None`` where none applies.
        policy_warning: why the pod's node policy was replaced by the default, or empty.
        signature: stands for everything a fit depends on besides the node (memo key).
    """

    pod: PodView
    request: PodRequest
    policies: PodPolicies
    numa_bind: bool = False
    used: Mapping[str, quota.Usage] = attrs.field(factory=dict, hash=False)
    limits: Mapping[str, quota.ResourceLimit | None] = attrs.field(factory=dict, hash=False)
    policy_warning: str = ""
    signature: int = -1

    @functools.cached_property
    def placement_cpu(self) -> int:
        """The pod's CPU as placement policies see it: to a power of two of cores (:func:`coarse_cpu`).

        Pods whose requests round alike share one kept ranking; exact requests would make nearly
        every pod a kind of its own, each paying a fit of every node. Read for every node fitted,
        so computed once.
        """
        return coarse_cpu(self.request.cpu)

    @functools.cached_property
    def placement_shape(self) -> PodShape:
        """The pod as placement policies judge it: its first device request and :attr:`placement_cpu`."""
        first = first_request(self.request.containers, self.request.backends)
        return PodShape.of(first[1] if first is not None else None, cpu=self.placement_cpu)


@attrs.frozen
class Decision:
    """What :meth:`Chooser.choose` decided.

    Args:
        node: the chosen node; empty when none fits.
        fit: the devices per container on ``node``; ``None`` when none fits.
        generation: the generation of ``node``'s view the fit was made on (for the reservation).
        failed: per node that does not fit, HAMi's reason string.
        evaluated: how many nodes were fitted, or had a remembered reason looked up, in this call.
        node_object: for :meth:`Chooser.choose_transient`, the chosen node object.
    """

    node: str = ""
    fit: PodFit | None = None
    generation: int = 0
    failed: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    evaluated: int = 0
    node_object: Node | None = attrs.field(default=None, eq=False, hash=False)

    @property
    def ok(self) -> bool:
        return self.fit is not None


def uses_shared_fit(backend: DeviceBackend) -> bool:
    """Whether the backend keeps the contract's default ``fit`` (so its rules can be extended)."""
    return type(backend).fit is DeviceBackend.fit


def scores_nodes(backend: DeviceBackend) -> bool:
    """Whether the backend adds its own node score (which depends on the devices chosen)."""
    return type(backend).score_node is not DeviceBackend.score_node


@attrs.frozen
class _NoFit:
    """A request shape's "fits nowhere" answer as of change-log point ``seq``."""

    seq: int
    failed: Mapping[str, str]


class Chooser:
    """Decides, for one pod at a time, the node and devices (pure; keeps only memos).

    Args:
        backends: the loaded backends by name.
        policies: every registered scoring policy by name.
        default_node: the configured node policy.
        default_device: the configured device policy.
    """

    def __init__(
        self,
        backends: Mapping[str, DeviceBackend],
        policies: Mapping[str, ScoringPolicy],
        *,
        default_node: str = scoring.BINPACK,
        default_device: str = scoring.SPREAD,
    ) -> None:
        self.backends = dict(backends)
        self.policies = policies
        self.default_node = default_node
        self.default_device = default_device
        self.shared_fit = {name: uses_shared_fit(backend) for name, backend in self.backends.items()}
        self._node_scoring = {name: scores_nodes(backend) for name, backend in self.backends.items()}
        self._volatile = frozenset(
            {codec.VGPU_NODE, codec.VGPU_TIME, codec.BIND_PHASE, codec.BIND_TIME, codec.SCHEDULING_RETRY}
            | {
                key
                for backend in self.backends.values()
                for key in (backend.keys.to_allocate, backend.keys.allocated)
            }
        )
        self._reasons = _ReasonMemo()
        # Per pod kind of a deterministic placement policy, every node's fit and score, best first.
        self._rankings = PlacedRankings()
        self._no_fit: OrderedDict[int, _NoFit] = OrderedDict()
        self._no_fit_lock = threading.Lock()

    # --- the question -----------------------------------------------------------------------------

    def ask(self, pod: PodView) -> Ask | None:
        """Resolve what ``pod`` asks and with which policies; ``None`` when it asks no device.

        An unknown node policy is replaced by the default (the reason is in ``policy_warning``).
        No namespace quota applies until :meth:`limited` adds one.

        Raises:
            BackendError: a container's resources are malformed.
            CodecError: the device policy or scoring weights annotation is malformed.
        """
        request = parse_pod_request(pod, list(self.backends.values()))
        if request.empty:
            return None
        annotations = pod.annotations
        node, warning = scoring.resolve_node_policy(annotations, self.policies, self.default_node)
        policies = scoring.pod_policies(
            annotations,
            self.policies,
            default_node=self.default_node,
            default_device=self.default_device,
            node=node,
        )
        context = FitContext(
            pod_annotations=annotations, device_policy=policies.device.text, weights=policies.weights
        )
        numa_bind = any(self.backends[name].fit_rules(context).numa_bind for name in request.backends)
        ask = Ask(pod=pod, request=request, policies=policies, numa_bind=numa_bind, policy_warning=warning)
        return attrs.evolve(ask, signature=self._signature(ask))

    def limited(
        self,
        ask: Ask,
        used: Callable[[str], quota.Usage],
        limits: Callable[[str], quota.ResourceLimit | None],
    ) -> Ask:
        """``ask`` under its namespace's device quota.

        Args:
            ask: the question.
            used: per backend, the device memory and cores the namespace holds now.
            limits: per backend, the namespace's limits; ``None`` where none applies.
        """
        found = {name: limits(name) for name in ask.request.backends}
        applying = {name: limit for name, limit in found.items() if limit is not None}
        if not applying:
            return ask
        limited = attrs.evolve(ask, used={name: used(name) for name in ask.request.backends}, limits=applying)
        return attrs.evolve(limited, signature=self._signature(limited))

    def _signature(self, ask: Ask) -> int:
        """A number for everything a fit depends on besides the node.

        Two pods with the same signature get the same fit on the same node generation, so a
        failure's reason can be reused (the backends' fits are pure functions of request, devices
        and context, as the contract requires). Annotations the scheduler itself writes are left
        out; the namespace's quota and use are in only when a quota applies.
        """
        volatile = self._volatile
        annotations = frozenset(item for item in ask.pod.annotations.items() if item[0] not in volatile)
        quotas: object = None
        if ask.limits:
            quotas = (tuple(sorted(ask.limits.items())), tuple(sorted(ask.used.items())))
        signature = (
            tuple(tuple(sorted(wanted.items())) for wanted in ask.request.containers),
            ask.request.n_init,
            ask.policies.device.text,
            ask.policies.weights,
            ask.numa_bind,
            annotations,
            quotas,
        )
        return self._reasons.intern(signature)

    # --- the decision -----------------------------------------------------------------------------

    def choose(
        self,
        snapshot: CapacityReader,
        ask: Ask,
        candidates: Collection[str],
        *,
        excluded: Mapping[str, str] | None = None,
    ) -> Decision:
        """The node among ``candidates`` and the devices there for ``ask``, or why none fits.

        Args:
            snapshot: the usage snapshot (node views, rankings, change log).
            ask: the pod's question (:meth:`ask`).
            candidates: the node names kube-scheduler passed.
            excluded: nodes not to choose, with the reason to report for them (a node concurrent
                filters kept booking first).
        """
        wanted = candidates if isinstance(candidates, Set) else set(candidates)
        failed: dict[str, str] = dict(excluded or {})
        if ask.policies.node.placement is not None or any(
            self._node_scoring[name] for name in ask.request.backends
        ):
            return self._best_of_all(snapshot, ask, wanted, failed)
        seq = snapshot.seq  # before any view is read: later changes show up in the log
        kept = self._no_fit.get(ask.signature) if not failed else None
        changed = snapshot.changed_since(kept.seq) if kept is not None else None
        if kept is not None and changed is not None and len(changed) <= _NO_FIT_RECHECK:
            return self._recheck(snapshot, ask, wanted, kept, changed, seq)
        checks = self._checks(ask)
        evaluated = 0
        view_of = snapshot.view
        for name in self._ordered(snapshot, ask, wanted, checks):
            view = view_of(name)
            if view is None or name in failed or not _passes(view, checks):
                continue  # cannot fit (or deleted since the ranking was copied)
            evaluated += 1
            fit = self._fit_or_reason(ask, view, failed)
            if fit is not None:
                return Decision(name, fit, view.generation, failed, evaluated)
        # Nothing fits: every other candidate gets its reason too.
        for name in wanted:
            if name in failed:
                continue
            view = view_of(name)
            if view is None:
                failed[name] = codec.NODE_UNREGISTERED
                continue
            evaluated += 1
            fit = self._fit_or_reason(ask, view, failed, pruned=True)
            if fit is not None:  # capacity freed since the walk passed it
                return Decision(name, fit, view.generation, failed, evaluated)
        if not excluded:
            self._keep(ask.signature, _NoFit(seq, failed))
        return Decision(failed=failed, evaluated=evaluated)

    def _recheck(
        self, snapshot: CapacityReader, ask: Ask, wanted: Set[str], kept: _NoFit, changed: set[str], seq: int
    ) -> Decision:
        """Nothing fitted at ``kept.seq``: only the nodes changed since can fit now."""
        fresh = changed & wanted
        failed: dict[str, str] = {}
        evaluated = 0
        checks = self._checks(ask)
        for name in snapshot.rank(ask.policies.node.name, list(fresh)):
            view = snapshot.view(name)
            if view is None or not _passes(view, checks):
                continue
            evaluated += 1
            fit = self._fit_or_reason(ask, view, failed)
            if fit is not None:
                return Decision(name, fit, view.generation, failed, evaluated)
        previous = kept.failed
        if previous.keys() == wanted:
            reasons = dict(previous)
            reasons.update(failed)
            missing: Set[str] = fresh - failed.keys()
        else:
            reasons = {
                name: reason for name, reason in previous.items() if name in wanted and name not in fresh
            }
            reasons.update(failed)
            missing = wanted - reasons.keys()
        for name in missing:
            view = snapshot.view(name)
            if view is None:
                reasons[name] = codec.NODE_UNREGISTERED
                continue
            evaluated += 1
            fit = self._fit_or_reason(ask, view, reasons, pruned=True)
            if fit is not None:  # a node the kept answer did not cover
                return Decision(name, fit, view.generation, failed, evaluated)
        self._keep(ask.signature, _NoFit(seq, reasons))
        return Decision(failed=reasons, evaluated=evaluated)

    def _keep(self, signature: int, answer: _NoFit) -> None:
        with self._no_fit_lock:
            self._no_fit[signature] = answer
            self._no_fit.move_to_end(signature)
            while len(self._no_fit) > _NO_FIT_SHAPES:
                self._no_fit.popitem(last=False)

    def _fit_or_reason(
        self, ask: Ask, view: NodeView, failed: dict[str, str], *, pruned: bool = False
    ) -> PodFit | None:
        """Fit on ``view``; on failure record its reason in ``failed`` (and the reason memo).

        ``pruned`` says the node is expected not to fit (the capacity check ruled it out, or it was
        passed over): its reason is then first sought without ordering the devices.
        """
        if not view.registered:
            failed[view.name] = codec.NODE_UNREGISTERED
            return None
        memo_key = (view.name, view.generation, ask.signature)
        known = self._reasons.get(memo_key)
        if known is not None:
            failed[view.name] = known
            return None
        reason = self._reason_unordered(ask, view) if pruned else None
        if reason is not None:
            failed[view.name] = reason
            self._reasons.put(memo_key, reason)
            return None
        fit = self.fit(ask, view)
        if not fit.ok:
            failed[view.name] = fit.reason
            self._reasons.put(memo_key, fit.reason)
            return None
        return fit

    def _reason_unordered(self, ask: Ask, view: NodeView) -> str | None:
        """HAMi's reason for a pod making one request on ``view``, fitted on its devices as they are.

        For one request of a backend with the shared fit, no NUMA binding and no quota check, which
        devices fail which check, and how many pass, do not depend on the order the devices are
        tried in; so a failure found without ordering them (the costly part of a fit) is the
        failure :meth:`fit` would find. ``None`` when the pod may fit, or the shortcut does not apply.
        """
        containers = ask.request.containers
        if len(containers) != 1 or len(containers[0]) != 1 or ask.numa_bind or ask.limits:
            return None
        ((backend, request),) = containers[0].items()
        if not self.shared_fit[backend]:
            return None
        result = _NodeFitter(self, ask, view)(backend, request, view.devices.get(backend, ()), PodDevices())
        if result.ok:
            return None
        return PodFit(ok=False, reasons=dict(result.reasons), considered=result.considered).reason

    def fit(self, ask: Ask, view: NodeView) -> PodFit:
        """Fit every container of the pod on one node view."""
        return self._fit(ask, view)[0]

    def _fit(self, ask: Ask, view: NodeView) -> tuple[PodFit, Sequence[DeviceUsage] | None]:
        """The fit, and for a placement policy's single fit the device order it was made in."""
        devices = {name: view.devices.get(name, ()) for name in ask.request.backends}
        fitter = _NodeFitter(self, ask, view)
        if ask.policies.node.placement is not None:
            single = single_fit(ask.request.containers, ask.request.n_init, devices, fitter)
            if single is not None:
                return single, fitter.ordered
        fit = allocation.fit_pod(
            ask.request.containers,
            ask.request.n_init,
            devices,
            fitter,
            policy=ask.policies.device.policy,
            weights=ask.policies.weights,
            numa_bind=ask.numa_bind,
        )
        return fit, None

    def _checks(self, ask: Ask) -> tuple[_Check, ...]:
        """(backend, request, strict) of every request: what the cheap capacity check runs."""
        return tuple(
            (backend, wanted, self.shared_fit[backend]) for backend, wanted in ask.request.requests()
        )

    def _ordered(
        self, snapshot: CapacityReader, ask: Ask, known: Set[str], checks: Sequence[_Check]
    ) -> Iterator[str]:
        """``known`` in the pod's node policy order, most preferred first.

        When the pod needs a sizeable share of one device, only the nodes of the matching room
        ranking are listed: the others cannot give it (they still get a reason if nothing fits).
        """
        policy = ask.policies.node.name
        ranking = snapshot.ranking(policy)
        if len(known) * _SMALL_CANDIDATES < len(ranking):
            yield from snapshot.rank(policy, list(known))
            return
        room = self._room(snapshot, checks)
        if room is not None:
            ranking = snapshot.ranking(policy, room)
        for _, name in ranking:
            if name in known:
                yield name

    def _room(self, snapshot: CapacityReader, checks: Sequence[_Check]) -> tuple[str, RoomTier] | None:
        """The most selective room ranking every node that can fit the pod belongs to."""
        best: tuple[str, RoomTier] | None = None
        for backend, wanted, strict in checks:
            if not strict:
                continue
            needs = {"memory": _memory_need(snapshot, backend, wanted), "cores": min(wanted.coresreq, 100)}
            for tier in ROOM_TIERS:
                fits = tier.level <= needs[tier.dimension] and tier.count <= wanted.nums
                if fits and (best is None or (tier.count, tier.level) > (best[1].count, best[1].level)):
                    best = (backend, tier)
        return best

    def _best_of_all(
        self, snapshot: CapacityReader, ask: Ask, known: Set[str], failed: dict[str, str]
    ) -> Decision:
        """Fit every node and add the backends' node scores (they depend on the chosen devices).

        A deterministic placement policy (FGD and the like) keeps its scores instead
        (:meth:`_best_placed`); a random one, and backends with their own node score, fit every
        candidate per call. A placement policy's walk skips nodes the cheap capacity check rules
        out, fitting them only for their reasons when no node fits.
        """
        placement = ask.policies.node.placement
        checks = self._checks(ask)
        if placement is not None and placement.deterministic:
            revision = placement.revision(self._learned_shape(snapshot, ask))
            return self._best_placed(snapshot, ask, known, failed, revision)
        skipped: list[tuple[str, NodeView]] = []
        best: tuple[float, str, NodeView, PodFit] | None = None
        for name in known:
            if name in failed:
                continue
            view = snapshot.view(name)
            if view is None or not view.registered:
                failed[name] = codec.NODE_UNREGISTERED
                continue
            if placement is not None and not _passes(view, checks):
                skipped.append((name, view))
                continue
            fit = self.fit(ask, view)
            if not fit.ok:
                failed[name] = fit.reason
                continue
            total = self._total(snapshot, ask, view, fit)
            if best is None or (total, best[1]) > (best[0], name):
                best = (total, name, view, fit)
        if best is None:
            for name, view in skipped:
                failed[name] = self.fit(ask, view).reason
            return Decision(failed=failed, evaluated=len(known))
        return Decision(best[1], best[3], best[2].generation, failed, len(known) - len(skipped))

    def _learned_shape(self, snapshot: CapacityReader, ask: Ask) -> PodShape:
        """The pod as a learning placement policy records it: with the device models it may run on.

        FGD's workload counts a model-bound shape as unable to run on other models' nodes, and
        ``fgd-strand`` only breaks ties on the nodes of models some pods are bound to. The models
        are the types of the cluster's devices that the backend's type rules (``fit_rules``, so
        only a backend with the shared fit) accept for the pod; none are named when the rules
        accept every type, or none (the pod then fits nowhere, and is learned as unbound).
        """
        shape = ask.placement_shape
        first = first_request(ask.request.containers, ask.request.backends)
        if first is None or not self.shared_fit[first[0]]:
            return shape
        context = FitContext(
            pod_annotations=ask.pod.annotations,
            device_policy=ask.policies.device.text,
            weights=ask.policies.weights,
        )
        rules = self.backends[first[0]].fit_rules(context)
        kinds = snapshot.device_kinds(first[0])
        accepted = frozenset(device.type for device in kinds if rules.type_ok(device))
        return (
            shape if accepted == {device.type for device in kinds} else attrs.evolve(shape, models=accepted)
        )

    def _total(self, snapshot: CapacityReader, ask: Ask, view: NodeView, fit: PodFit) -> float:
        """A fitting node's score: usage score, the backends' node scores and the placement's."""
        return self._base(snapshot, ask, view, fit) + self._placement_score(ask, view, fit.usage)

    def _base(self, snapshot: CapacityReader, ask: Ask, view: NodeView, fit: PodFit) -> float:
        """The part of a fitting node's score no placement policy revision changes: usage and vendor."""
        usage = snapshot.score(ask.policies.node.name, view.name) or 0.0
        return usage + self._vendor_score(ask, view, fit)

    @staticmethod
    def _placement_score(
        ask: Ask, view: NodeView, usage: Mapping[str, Sequence[DeviceUsage]], before: NodeState | None = None
    ) -> float:
        """The pod-aware policy's score of the node booked as ``usage``, with its free CPU; 0 without one.

        ``before``: the node as the policy sees it without the pod, where the caller has it already.
        """
        placement = ask.policies.node.placement
        if placement is None:
            return 0.0
        if before is None:
            before = placement_state(view.devices, ask.request.backends, view.cpu_left)
        return placement_score(placement, ask.placement_shape, before, usage, ask.request.backends)

    def _best_placed(
        self, snapshot: CapacityReader, ask: Ask, known: Set[str], failed: dict[str, str], revision: int
    ) -> Decision:
        """The best node by a deterministic placement policy, from the kind's kept ranking.

        The ranking (:class:`~hami_core.scheduler.placed.PlacedRanking`) is refreshed for the
        candidates it has not evaluated and the nodes the change log names since its last point,
        then walked best first. When no candidate fits, each gets its reason (memoised per node
        generation, so a pod that keeps coming back pays little). The kind is the fit's signature
        plus the pod's CPU request: whether the pod fits does not depend on CPU, but which devices
        the policy orders first and how it scores the node may.
        """
        ranking = self._rankings.get((ask.signature, ask.placement_cpu, ask.policies.node.name, revision))
        checks = self._checks(ask)
        evaluated = 0
        with ranking.lock:
            seq = snapshot.seq  # before any view is read: later changes show up in the log
            earlier = ranking.take_previous(snapshot.changed_since)
            changed = snapshot.changed_since(ranking.seq) if ranking.seq is not None else None
            if changed is None:
                ranking.clear()
                changed = set()
            for name in changed - known:
                ranking.drop(name)
            ranking.seq = seq
            for name in (known - ranking.outcomes.keys()) | (changed & known):
                view = snapshot.view(name)
                if view is None or not view.registered:
                    ranking.drop(name)
                    continue
                evaluated += 1
                ranking.put(name, self._placed(snapshot, ask, view, checks, earlier.get(name), revision != 0))
            for _, name in ranking.order:
                if name in known and name not in failed:
                    view = snapshot.view(name)
                    if view is None:
                        continue
                    fit = self.fit(ask, view)  # the kept outcome's fit, made again (it is not kept)
                    if fit.ok:
                        return Decision(name, fit, view.generation, failed, evaluated)
        for name in known - failed.keys():
            view = snapshot.view(name)
            if view is None:
                failed[name] = codec.NODE_UNREGISTERED
                continue
            late = self._fit_or_reason(ask, view, failed, pruned=True)
            if late is not None:  # changed after the ranking was refreshed
                return Decision(name, late, view.generation, failed, len(known))
        return Decision(failed=failed, evaluated=len(known))

    def _placed(
        self,
        snapshot: CapacityReader,
        ask: Ask,
        view: NodeView,
        checks: Sequence[_Check],
        kept: Placed | None,
        carry: bool,
    ) -> Placed:
        """``view``'s outcome for the kind; ``kept``, its outcome under an earlier policy revision.

        The fit depends on the policy only through the order it puts the devices in, so where the
        node has not changed since ``kept`` and the policy orders them as before, the kept fit
        stands and only the placement score is computed again. ``carry``: whether the outcome
        keeps what a later revision needs for that (not for a policy that never changes).
        """
        if not _passes(view, checks):
            return Placed(view.generation, False)
        placement = ask.policies.node.placement
        single = single_request(ask.request.containers, ask.request.n_init)
        if (
            kept is not None
            and kept.order is not None
            and kept.generation == view.generation
            and placement is not None
            and single is not None
        ):
            backend = single[0]
            before = placement_state(view.devices, (backend,), view.cpu_left)
            if tuple(map(_ID, placement.order(before, ask.placement_shape))) == kept.order:
                if not kept.fits:
                    return kept
                usage = {backend: booked(before.devices, kept.given)}
                score = kept.base + self._placement_score(ask, view, usage, before)
                return Placed(kept.generation, True, score, kept.order, kept.given, kept.base)
        fit, ordered = self._fit(ask, view)
        order = tuple(map(_ID, ordered)) if carry and ordered is not None else None
        if not fit.ok:
            return Placed(view.generation, False, order=order)
        base = self._base(snapshot, ask, view, fit)
        score = base + self._placement_score(ask, view, fit.usage)
        if order is None or single is None:
            return Placed(view.generation, True, score)
        return Placed(view.generation, True, score, order, fit.devices.for_backend(single[0])[0], base)

    def _vendor_score(self, ask: Ask, view: NodeView, fit: PodFit) -> float:
        context = self.context(ask, view)
        return sum(
            self.backends[name].score_node(view.devices.get(name, ()), fit.devices.for_backend(name), context)
            for name in ask.request.backends
        )

    def context(self, ask: Ask, view: NodeView) -> FitContext:
        return FitContext(
            pod_annotations=ask.pod.annotations,
            node_annotations=view.annotations,
            device_policy=ask.policies.device.text,
            weights=ask.policies.weights,
        )

    # --- the dry run ------------------------------------------------------------------------------

    def choose_transient(self, ask: Ask, nodes: Sequence[Node]) -> Decision:
        """HAMi's simulation path: fit transient, unused copies of ``nodes``; the best by node policy."""
        failed: dict[str, str] = {}
        best: tuple[float, str, Node, PodFit] | None = None
        for node in nodes:
            view = self.transient_view(node)
            fit = self.fit(ask, view)
            if not fit.ok:
                failed[view.name] = fit.reason if view.registered else codec.NODE_UNREGISTERED
                continue
            score = ask.policies.node.score(view.all_devices()) + self._vendor_score(ask, view, fit)
            score += self._placement_score(ask, view, fit.usage)
            if best is None or (score, best[1]) > (best[0], view.name):
                best = (score, view.name, node, fit)
        if best is None:
            return Decision(failed=failed, evaluated=len(nodes))
        return Decision(best[1], best[3], 0, failed, len(nodes), node_object=best[2])

    def transient_view(self, node: Node) -> NodeView:
        """A node object's registered devices and allocatable CPU, nothing allocated (the dry run's view)."""
        metadata = node.get("metadata") or {}
        annotations = dict(metadata.get("annotations") or {})
        counted = []
        for name, backend in self.backends.items():
            try:
                infos = backend.node_devices(annotations)
            except (CodecError, BackendError):
                continue
            if infos:
                counted.append((name, tuple(infos)))
        cpu_left = allocatable_cpu((node.get("status") or {}).get("allocatable") or {})
        return node_view(str(metadata.get("name", "")), 0, annotations, counted, cpu_left=cpu_left)


def _memory_need(snapshot: CapacityReader, backend: str, wanted: DeviceRequest) -> int:
    """The request's memory as a percent every device that can hold it can still give.

    MiB are turned into a percent of the fleet's largest device, which no device that can hold
    them falls below.
    """
    if wanted.memreq > 0:
        largest = snapshot.largest_device_memory(backend)
        return wanted.memreq * 100 // largest if largest else 0
    if wanted.mem_percentage_req != MEM_PERCENTAGE_UNSET:
        return wanted.mem_percentage_req
    return 0


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


class _NodeFitter:
    """The per-request fit :func:`hami_core.allocation.fit_pod` calls for one pod on one node.

    Backends that keep the shared fit get their rules extended by the core: the node's
    ``hami.io/device-cordon`` list and the namespace quota check (step 9 of HAMi's ``Fit``). A backend
    with its own fit is called as is and its result checked against the quota afterwards.
    """

    def __init__(self, chooser: Chooser, ask: Ask, view: NodeView) -> None:
        self._chooser = chooser
        self._ask = ask
        self._view = view
        self._context = chooser.context(ask, view)
        self._rules: dict[str, allocation.FitRules] = {}
        #: The device order of the last request fitted under a placement policy.
        self.ordered: Sequence[DeviceUsage] | None = None

    def __call__(
        self, backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
    ) -> FitResult:
        ask = self._ask
        owner = self._chooser.backends[backend]
        placement = ask.policies.node.placement
        if placement is not None:
            state = NodeState(devices=tuple(devices), cpu_left=self._view.cpu_left)
            devices = placement.order(state, PodShape.of(request, cpu=ask.placement_cpu))
            self.ordered = devices
        else:
            devices = ask.policies.device.order(devices)
        limit = ask.limits.get(backend)
        if not self._chooser.shared_fit[backend]:
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
        return allocation.fit_container(request, devices, rules, ask.policies.device.policy)

    def _admits(
        self, limit: quota.ResourceLimit, backend: str, earlier: PodDevices, current: ContainerDevices
    ) -> bool:
        containers = [*earlier.for_backend(backend), current]
        collapsed = allocation.collapse_usage(containers, self._ask.request.n_init)
        return limit.admits(self._ask.used.get(backend, quota.Usage()), quota.booking_usage(collapsed))

    def _quota_check(
        self, limit: quota.ResourceLimit, backend: str, earlier: PodDevices
    ) -> Callable[[DeviceUsage, ContainerDevice, ContainerDevices], str | None]:
        def check(device: DeviceUsage, candidate: ContainerDevice, picked: ContainerDevices) -> str | None:
            if self._admits(limit, backend, earlier, (*picked, candidate)):
                return None
            return codec.RESOURCE_QUOTA_NOT_FIT

        return check
