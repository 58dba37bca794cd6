"""The extender's filter: read the pod's question once, choose, then commit.

Per call (``specs/hami-wire.md`` 3.3-3.7): :meth:`~hami_core.scheduler.choosing.Chooser.ask` resolves
what the pod asks and with which policies (a malformed request is refused here, with a Warning event,
before anything changes); a body whose uid is not the named pod's current uid is refused (bookings
are keyed by uid, so a made-up one would book devices no pod ever releases); the pod's previous booking is dropped (re-filtering never counts its old
choice against it, as in HAMi) and its namespace's quota use read; then the pure
:meth:`~hami_core.scheduler.choosing.Chooser.choose` decides once on the cache's snapshot, and
:meth:`~hami_core.scheduler.committing.Committer.commit` books and writes the decision. Only when a
concurrent filter booked the chosen node first (its view's generation moved on) is the choice made
again; a node that keeps losing that race is reported as ``node busy`` and the pod retried.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

import attrs

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.config import SchedulerConfig
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import HamiError
from hami_core.hookspecs import ScoringPolicy
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.choosing import Ask
from hami_core.scheduler.choosing import Chooser
from hami_core.scheduler.committing import Committer
from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.retrying import Retrier

_log = logging.getLogger(__name__)

#: How often one node may be chosen again when concurrent filters keep booking it first.
_RESERVE_ATTEMPTS = 8
#: How many choices one filter call may make in all before giving up on the races.
_CHOICES = 4 * _RESERVE_ATTEMPTS
#: The reason of a node that concurrent filters kept booking first (the pod is retried).
NODE_BUSY = "node busy"
#: The Warning event of a pod whose node policy annotation names no known policy.
POLICY_REPLACED = "UnknownSchedulerPolicy"


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


class StalePodError(HamiError):
    """A filter body names a pod by a uid the pod does not have (made up, or of a deleted pod)."""


def _label(reason: str) -> str:
    """A reason as a metric label: keys stay, phrases become CamelCase (``node unregistered``)."""
    words = reason.strip().split()
    return "".join(word[:1].upper() + word[1:] for word in words) if len(words) > 1 else reason.strip()


class Filtering:
    """Chooses a node and devices per pod, and commits the choice.

    Args:
        cache: the cluster cache.
        backends: the loaded backends by name.
        policies: every registered scoring policy by name.
        kube: the API client (the pod patch).
        config: the scheduler section (default policies).
        clock: the current time (``hami.io/vgpu-time``).
        recorder: where events go; ``None`` records none.
        retrier: told of rejections and successes; ``None`` disables prompt retries.
        observe_phase: told the seconds each call spent choosing (``choose``) and committing
            (``commit``).
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
        observe_phase: Callable[[str, float], None] | None = None,
    ) -> None:
        self._cache = cache
        self._kube = kube
        self._policies = dict(policies)
        self.chooser = Chooser(
            backends,
            self._policies,
            default_node=config.node_scheduler_policy,
            default_device=config.gpu_scheduler_policy,
        )
        self._committer = Committer(cache, backends, kube, clock=clock, recorder=recorder, retrier=retrier)
        self._observe = observe_phase

    def _ask(self, pod: PodView) -> Ask | None:
        try:
            ask = self.chooser.ask(pod)
        except (BackendError, CodecError) as err:
            self._committer.warn(pod, "FilteringFailed", str(err))
            raise
        if ask is not None and ask.policy_warning:
            self._committer.warn(pod, POLICY_REPLACED, ask.policy_warning)
        return ask

    def _limited(self, ask: Ask) -> Ask:
        """``ask`` with its namespace's quota use as the cache has it now."""
        namespace = ask.pod.namespace
        if not self._cache.quotas.any_in(namespace):
            return ask
        return self.chooser.limited(
            ask,
            used=lambda backend: self._cache.namespace_usage(namespace, backend),
            limits=lambda backend: self._cache.quotas.limit(namespace, backend),
        )

    def filter(self, pod: PodView, node_names: Sequence[str]) -> FilterOutcome:
        """Choose a node among ``node_names`` and devices on it for ``pod``; annotate the pod.

        Raises:
            BackendError: a container's resources are malformed.
            CodecError: a scheduling annotation of the pod is malformed.
            StalePodError: the body's uid is not the named pod's (nothing is reserved).
            KubeError: the pod could not be read or annotated (its reservation is dropped).
        """
        ask = self._ask(pod)
        if ask is None:
            return FilterOutcome(result="passthrough", passed=tuple(node_names))
        self._check_uid(pod)
        # Re-filtering must never count the pod's previous choice against it (HAMi does the same).
        previous = self._cache.forget(pod.uid)
        try:
            return self._place(self._limited(ask), set(node_names))
        finally:
            # What the pod held before is free for others now (if it took it again, the retrier's
            # capacity check sees that): pods rejected for capacity may try again.
            self._committer.freed(previous)

    def _check_uid(self, pod: PodView) -> None:
        """Refuse a body whose uid is not the current uid of the pod it names.

        Reservations are keyed by uid: one made for a uid no pod has would never be released.
        The cache answers when it knows the pod under that uid; otherwise the API server does.

        Raises:
            StalePodError: the pod has another uid now.
            NotFoundError: no pod has that name.
        """
        state = self._cache.pod(pod.namespace, pod.name)
        if pod.uid and state is not None and state.uid == pod.uid:
            return
        current = self._kube.get_pod(pod.namespace, pod.name)
        found = str((current.get("metadata") or {}).get("uid", ""))
        if not pod.uid or found != pod.uid:
            given = pod.uid[:64] or "(none)"
            raise StalePodError(f"pod {pod.key} has uid {found}, not {given}; nothing reserved")

    def _place(self, ask: Ask, wanted: set[str]) -> FilterOutcome:
        excluded: dict[str, str] = {}
        lost: Counter[str] = Counter()
        for _ in range(_CHOICES):
            started = time.perf_counter()
            decision = self.chooser.choose(self._cache, ask, wanted, excluded=excluded)
            chosen = time.perf_counter()
            self._phase("choose", chosen - started)
            if not decision.ok:
                self._committer.reject(ask, decision.failed)
                self._phase("commit", time.perf_counter() - chosen)
                return FilterOutcome(
                    result="unschedulable", failed=dict(decision.failed), evaluated=decision.evaluated
                )
            outcome = self._committer.commit(ask, decision, len(wanted))
            self._phase("commit", time.perf_counter() - chosen)
            if outcome == "reserved":
                return FilterOutcome(
                    result="scheduled",
                    node=decision.node,
                    failed=decision.failed,
                    evaluated=decision.evaluated,
                )
            lost[decision.node] += 1
            if lost[decision.node] >= _RESERVE_ATTEMPTS:
                excluded[decision.node] = NODE_BUSY
            if outcome == "quota":
                ask = self._limited(ask)
        failed = {**excluded, **dict.fromkeys(lost, NODE_BUSY)}
        self._committer.reject(ask, failed)
        return FilterOutcome(result="unschedulable", failed=failed, evaluated=len(lost))

    def _phase(self, name: str, seconds: float) -> None:
        if self._observe is not None:
            self._observe(name, seconds)

    def dry_run(self, pod: PodView, nodes: Sequence[Node]) -> FilterOutcome:
        """HAMi's simulation path (``Nodes`` given): fit transient, unused copies of ``nodes``.

        Nothing is reserved or written; the best node by the pod's node policy is returned.

        Raises:
            BackendError: a container's resources are malformed.
            CodecError: a scheduling annotation of the pod is malformed.
        """
        ask = self.chooser.ask(pod)
        if ask is None:
            names = [str((node.get("metadata") or {}).get("name", "")) for node in nodes]
            return FilterOutcome(result="passthrough", passed=tuple(names))
        decision = self.chooser.choose_transient(ask, nodes)
        if not decision.ok:
            return FilterOutcome(result="unschedulable", failed=decision.failed, evaluated=decision.evaluated)
        return FilterOutcome(
            result="scheduled",
            node=decision.node,
            failed=decision.failed,
            evaluated=decision.evaluated,
            node_object=decision.node_object,
        )
