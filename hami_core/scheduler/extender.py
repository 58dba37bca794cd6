"""The extender verbs behind the HTTP edge: gating, timing and the PascalCase reply shapes.

Filter and bind are served only by the leader and only once the cache has synced: a filter that
arrives before the first lists waits for them a bounded time (HAMi waits without bound), anything
else gets an ``Error`` reply that says why (kube-scheduler then retries the pod). A successful filter
reply names the chosen node and carries no ``FailedNodes``, as HAMi's does. Every hami error a verb raises
becomes the reply's ``Error`` field here, never an HTTP failure, as HAMi does (``specs/hami-wire.md``
3.1); the latencies and outcomes go to the metrics. Requests arrive already decoded and shape-checked
by :mod:`hami_core.scheduler.server`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Sequence

from hami_core.errors import HamiError
from hami_core.kube.objects import ExtenderBindingResult
from hami_core.kube.objects import ExtenderFilterResult
from hami_core.kube.objects import HostPriority
from hami_core.kube.objects import Node
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.binding import BindError
from hami_core.scheduler.binding import Binding
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.filtering import Filtering
from hami_core.scheduler.filtering import FilterOutcome
from hami_core.scheduler.metrics import SchedulerMetrics

_log = logging.getLogger(__name__)

#: kube-scheduler's ``MaxExtenderPriority``.
MAX_PRIORITY = 10
#: Seconds a filter waits for the cache's first lists before answering with an error.
SYNC_WAIT_SECONDS = 10.0


def filter_reply(
    *,
    node_names: Sequence[str] | None = None,
    nodes: list[Node] | None = None,
    failed: dict[str, str] | None = None,
    error: str = "",
) -> ExtenderFilterResult:
    """An ``ExtenderFilterResult`` with every key present (Go sends ``null`` for nil)."""
    return {
        "Nodes": {"apiVersion": "v1", "kind": "NodeList", "items": nodes} if nodes is not None else None,
        "NodeNames": list(node_names) if node_names is not None else None,
        "FailedNodes": failed,
        "FailedAndUnresolvableNodes": None,
        "Error": error,
    }


class Extender:
    """Serves the extender verbs for one scheduler replica.

    Args:
        filtering: chooses nodes and devices.
        binding: binds pods.
        cache: node scores for prioritize.
        metrics: latency and outcome metrics.
        synced: whether the cache has its first lists.
        leading: whether this replica is the leader.
        identity: this replica's name, for the not-leader message.
        default_node_policy: the configured node policy (prioritize).
        wait_synced: waits up to the given seconds for the first lists; whether they came.
        sync_wait: seconds a filter waits for them.
    """

    def __init__(
        self,
        filtering: Filtering,
        binding: Binding,
        cache: ClusterCache,
        metrics: SchedulerMetrics,
        *,
        synced: Callable[[], bool],
        leading: Callable[[], bool],
        identity: str = "",
        default_node_policy: str = scoring.BINPACK,
        wait_synced: Callable[[float], bool] | None = None,
        sync_wait: float = SYNC_WAIT_SECONDS,
    ) -> None:
        self._filtering = filtering
        self._binding = binding
        self._cache = cache
        self._metrics = metrics
        self._synced = synced
        self._leading = leading
        self._identity = identity
        self._default_policy = default_node_policy
        self._policies = filtering.chooser.policies
        self._wait_synced = wait_synced
        self._sync_wait = sync_wait

    def readiness(self) -> tuple[bool, str]:
        """Whether this replica serves filter and bind now, and if not, why."""
        if not self._synced():
            return False, "the cluster cache has not synced yet"
        if not self._leading():
            return False, f"{self._identity or 'this replica'} is not the leader"
        return True, "ok"

    def filter(
        self, pod: PodView, node_names: Sequence[str] | None, nodes: list[Node] | None
    ) -> ExtenderFilterResult:
        """The filter verb: ``nodes`` (the dry-run path) when given, else ``node_names``."""
        started = time.perf_counter()
        result = "error"
        try:
            if self._wait_synced is not None and not self._synced():
                self._wait_synced(self._sync_wait)
            ready, why = self.readiness()
            if not ready:
                result = "refused"
                return filter_reply(error=why)
            if nodes is not None:
                outcome = self._filtering.dry_run(pod, nodes)
            else:
                outcome = self._filtering.filter(pod, node_names or [])
            result = outcome.result
            self._count(outcome)
            return self._reply(outcome, nodes)
        except HamiError as err:
            _log.info("filter of %s failed: %s", pod.key, err)
            return filter_reply(error=str(err))
        finally:
            self._metrics.filter_results.labels(result).inc()
            self._metrics.filter_duration.labels(result).observe(time.perf_counter() - started)

    def _count(self, outcome: FilterOutcome) -> None:
        self._metrics.nodes_evaluated.observe(outcome.evaluated)
        for reason, count in outcome.reason_keys().items():
            self._metrics.node_rejections.labels(reason).inc(count)

    @staticmethod
    def _reply(outcome: FilterOutcome, nodes: list[Node] | None) -> ExtenderFilterResult:
        failed = dict(outcome.failed) or None
        if outcome.result == "passthrough":
            if nodes is not None:
                return filter_reply(nodes=nodes)
            return filter_reply(node_names=outcome.passed)
        if outcome.result != "scheduled":
            return filter_reply(failed=failed or {})
        if nodes is not None:
            chosen = [outcome.node_object] if outcome.node_object is not None else []
            return filter_reply(nodes=chosen, failed=failed)
        return filter_reply(node_names=[outcome.node])

    def prioritize(self, pod: PodView, node_names: Sequence[str]) -> list[HostPriority]:
        """Scores 0..10 by the pod's node policy, scaled over the given nodes (pure read).

        The policy is resolved as ``/filter`` resolves it (an unknown name means the default).
        """
        policy, _ = scoring.resolve_node_policy(pod.annotations, self._policies, self._default_policy)
        scores: dict[str, float] = {}
        for name in node_names:
            found = self._cache.score(policy.name, name)
            if found is not None:
                scores[name] = found
        if not scores:
            return [{"Host": name, "Score": 0} for name in node_names]
        low, high = min(scores.values()), max(scores.values())
        span = high - low
        return [
            {
                "Host": name,
                "Score": round(MAX_PRIORITY * (scores[name] - low) / span)
                if name in scores and span > 0
                else 0,
            }
            for name in node_names
        ]

    def bind(self, namespace: str, name: str, uid: str, node: str) -> ExtenderBindingResult:
        """The bind verb."""
        started = time.perf_counter()
        result = "error"
        try:
            ready, why = self.readiness()
            if not ready:
                result = "refused"
                return {"Error": why}
            self._binding.bind(namespace, name, uid, node)
            result = "bound"
            return {"Error": ""}
        except BindError as err:
            result = "refused"
            self._metrics.bind_refused.labels(err.reason).inc()
            _log.warning("bind of %s/%s to %.100s refused (%s): %s", namespace, name, node, err.reason, err)
            return {"Error": str(err)}
        except HamiError as err:
            _log.info("bind of %s/%s to %s failed: %s", namespace, name, node, err)
            return {"Error": str(err)}
        finally:
            self._metrics.bind_duration.labels(result).observe(time.perf_counter() - started)
