"""Prompt retries of pending pods the scheduler rejected for lack of device capacity.

kube-scheduler keeps a pod an extender rejected in its unschedulable queue until a cluster event it
cares about, or for 5 minutes (peers.md section 3, item 5: HAMi #812, #1368). The extender knows
better when devices free up: a pod ends, a bind fails, a device turns healthy, a node registers. Then
the :class:`Retrier` touches each rejected pod that might now fit (an update of annotation
:data:`hami_core.codec.SCHEDULING_RETRY`), which kube-scheduler treats as a pod update and requeues
it at once. :class:`RetryBook` is the pure bookkeeping (which pods, which may fit where, how often);
the retrier is its thread. A pod is touched at most once per ``min_interval``, and only when a freed
node passes the cheap capacity check for every request of the pod, or its namespace's device quota
use shrank; only the leader touches pods.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime

import attrs

from hami_core import codec
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube.client import KubeClient
from hami_core.looping import Loop
from hami_core.scheduler.bookings import pod_key
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.index import NodeView
from hami_core.scheduler.pod_requests import PodRequest

_log = logging.getLogger(__name__)


@attrs.define
class Rejected:
    """A pending pod the scheduler rejected, waiting for capacity."""

    namespace: str
    name: str
    uid: str
    request: PodRequest
    quota_limited: bool = False
    touched_at: float = float("-inf")
    wanted: bool = False

    @property
    def key(self) -> str:
        return pod_key(self.namespace, self.name)


def may_fit(request: PodRequest, view: NodeView, strict: Mapping[str, bool]) -> bool:
    """Whether every request of the pod passes the node's cheap capacity check."""
    return all(
        view.summary(backend).may_fit(wanted, strict=strict.get(backend, False))
        for backend, wanted in request.requests()
    )


class RetryBook:
    """Which rejected pods to touch, and when; no I/O, not thread-safe (the retrier locks it).

    Args:
        strict: per backend, whether the cheap check may use memory and cores (the shared fit).
        min_interval: seconds between two touches of the same pod.
    """

    def __init__(self, strict: Mapping[str, bool], *, min_interval: float = 1.0) -> None:
        self._strict = dict(strict)
        self._min_interval = min_interval
        self._pods: dict[str, Rejected] = {}

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, key: object) -> bool:
        return key in self._pods

    def rejected(
        self, namespace: str, name: str, uid: str, request: PodRequest, *, quota_limited: bool = False
    ) -> None:
        """The filter found no node for this pod; ``quota_limited`` when its namespace quota was a reason."""
        key = pod_key(namespace, name)
        found = self._pods.get(key)
        if found is None or found.uid != uid:
            self._pods[key] = Rejected(namespace, name, uid, request, quota_limited)
        else:
            found.request = request
            found.quota_limited = quota_limited
            found.wanted = False

    def settled(self, key: str) -> None:
        """The pod was scheduled, bound, finished or deleted: forget it."""
        self._pods.pop(key, None)

    def freed(self, changes: Changes, view: Callable[[str], NodeView | None]) -> None:
        """Mark the pods that the freed nodes or namespaces in ``changes`` might now admit."""
        views = [found for name in changes.freed_nodes if (found := view(name)) is not None]
        for pod in self._pods.values():
            if pod.wanted:
                continue
            if (pod.quota_limited and pod.namespace in changes.freed_namespaces) or any(
                may_fit(pod.request, found, self._strict) for found in views
            ):
                pod.wanted = True

    def due(self, now: float) -> tuple[list[Rejected], float | None]:
        """The pods to touch now, and when the next deferred one falls due (``None`` if none)."""
        ready = []
        later: float | None = None
        for pod in self._pods.values():
            if not pod.wanted:
                continue
            at = pod.touched_at + self._min_interval
            if at <= now:
                ready.append(pod)
            else:
                later = at if later is None else min(later, at)
        return ready, later

    def touched(self, pod: Rejected, now: float) -> None:
        pod.touched_at = now
        pod.wanted = False


class Retrier:
    """The thread that touches rejected pods when capacity is freed.

    Args:
        kube: the API client.
        cache: the cluster cache (node views and pod states).
        book: the bookkeeping.
        is_leader: only the leader writes.
        clock: monotonic seconds (injectable).
        wall: the current time, written into the annotation.
        on_touch: called after each touch (a metric).
    """

    def __init__(
        self,
        kube: KubeClient,
        cache: ClusterCache,
        book: RetryBook,
        *,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_touch: Callable[[], None] | None = None,
    ) -> None:
        self._kube = kube
        self._on_touch = on_touch
        self._cache = cache
        self._book = book
        self._is_leader = is_leader
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._loop = Loop("hami-retrier", self._step, log=_log)
        self.touches = 0

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    # --- inputs (any thread) -----------------------------------------------------------------------

    def rejected(
        self, namespace: str, name: str, uid: str, request: PodRequest, *, quota_limited: bool = False
    ) -> None:
        """Filtering found no node for the pod."""
        with self._lock:
            self._book.rejected(namespace, name, uid, request, quota_limited=quota_limited)

    def scheduled(self, namespace: str, name: str) -> None:
        """Filtering found a node for the pod."""
        with self._lock:
            self._book.settled(pod_key(namespace, name))

    def notify(self, changes: Changes) -> None:
        """React to a cache change: forget settled pods, mark those freed capacity may help."""
        if not (changes.freed_nodes or changes.freed_namespaces or changes.settled_pods):
            return
        with self._lock:
            for key in changes.settled_pods:
                self._book.settled(key)
            if changes.freed_nodes or changes.freed_namespaces:
                self._book.freed(changes, self._cache.view)
                self._loop.wake()

    # --- the loop ------------------------------------------------------------------------------------

    def run_once(self) -> float | None:
        """Touch every pod that is due; returns when the next deferred one is due."""
        with self._lock:
            ready, later = self._book.due(self._clock())
            for pod in ready:
                self._book.touched(pod, self._clock())
        if ready and not self._is_leader():
            return later  # only the leader writes; a follower's book empties as pods settle
        for pod in ready:
            self._touch(pod)
        return later

    def _touch(self, pod: Rejected) -> None:
        state = self._cache.pod(pod.namespace, pod.name)
        if state is None or state.uid != pod.uid or not state.pending:
            with self._lock:
                self._book.settled(pod.key)
            return
        stamp = f"{self._wall().timestamp():.3f}"
        try:
            self._kube.patch_pod(
                pod.namespace, pod.name, {"metadata": {"annotations": {codec.SCHEDULING_RETRY: stamp}}}
            )
            self.touches += 1
            if self._on_touch is not None:
                self._on_touch()
        except NotFoundError:
            with self._lock:
                self._book.settled(pod.key)
        except KubeError as err:
            _log.info("cannot ask for a retry of %s: %s", pod.key, err)

    def _step(self) -> float | None:
        """Touch what is due; wait until the next deferred pod is due, or until woken."""
        self.run_once()
        with self._lock:
            ready, later = self._book.due(self._clock())
        if ready:
            return 0
        return None if later is None else max(0.01, later - self._clock())
