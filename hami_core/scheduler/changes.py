"""What a cache call changed that someone outside the cache must act on: :class:`Changes`.

Every mutating call of :class:`~hami_core.scheduler.cache.ClusterCache` returns one; the scheduler's
``dispatch`` turns it into events, lock wake-ups, prompt retries and handshake writes. Pure values.
"""

from __future__ import annotations

from typing import Literal

import attrs

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@attrs.frozen
class CacheWarning:
    """A malformed annotation the cache skipped; becomes a Warning event on the object.

    ``items`` is how many things it skipped (rejected devices of one registration), for the metric.
    """

    kind: Literal["Node", "Pod"]
    name: str
    reason: str
    message: str
    namespace: str = ""
    uid: str = ""
    items: int = 1


@attrs.frozen
class Changes:
    """What a cache call changed that someone outside must act on.

    Args:
        freed_nodes: nodes where capacity grew (a pod ended, a reservation was dropped, devices
            appeared or turned healthy): pending pods rejected for capacity may fit now.
        freed_namespaces: namespaces whose device-quota use shrank.
        lock_nodes: nodes whose ``hami.io/mutex.lock`` changed or that were deleted.
        handshakes: (node, backend) pairs that need a ``Requesting_<now>`` handshake.
        settled_pods: ``namespace/name`` of pods that were bound, finished or deleted.
        warnings: malformed annotations skipped.
    """

    freed_nodes: frozenset[str] = frozenset()
    freed_namespaces: frozenset[str] = frozenset()
    lock_nodes: frozenset[str] = frozenset()
    handshakes: tuple[tuple[str, str], ...] = ()
    settled_pods: frozenset[str] = frozenset()
    warnings: tuple[CacheWarning, ...] = ()

    def __or__(self, other: Changes) -> Changes:
        if not other:
            return self
        if not self:
            return other
        return Changes(
            freed_nodes=self.freed_nodes | other.freed_nodes,
            freed_namespaces=self.freed_namespaces | other.freed_namespaces,
            lock_nodes=self.lock_nodes | other.lock_nodes,
            handshakes=self.handshakes + other.handshakes,
            settled_pods=self.settled_pods | other.settled_pods,
            warnings=self.warnings + other.warnings,
        )

    def __bool__(self) -> bool:
        return bool(
            self.freed_nodes
            or self.freed_namespaces
            or self.lock_nodes
            or self.handshakes
            or self.settled_pods
            or self.warnings
        )


NO_CHANGES = Changes()


class Gather:
    """Accumulates many :class:`Changes` in linear time (merging frozen ones pairwise is quadratic)."""

    def __init__(self) -> None:
        self.freed_nodes: set[str] = set()
        self.freed_namespaces: set[str] = set()
        self.lock_nodes: set[str] = set()
        self.handshakes: list[tuple[str, str]] = []
        self.settled_pods: set[str] = set()
        self.warnings: list[CacheWarning] = []

    def add(self, changes: Changes) -> None:
        if not changes:
            return
        self.freed_nodes |= changes.freed_nodes
        self.freed_namespaces |= changes.freed_namespaces
        self.lock_nodes |= changes.lock_nodes
        self.handshakes.extend(changes.handshakes)
        self.settled_pods |= changes.settled_pods
        self.warnings.extend(changes.warnings)

    def result(self) -> Changes:
        return Changes(
            freed_nodes=frozenset(self.freed_nodes),
            freed_namespaces=frozenset(self.freed_namespaces),
            lock_nodes=frozenset(self.lock_nodes),
            handshakes=tuple(self.handshakes),
            settled_pods=frozenset(self.settled_pods),
            warnings=tuple(self.warnings),
        )
