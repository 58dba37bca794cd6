"""kube-scheduler's scheduling queue (pkg/scheduler/backend/queue), as pure bookkeeping over pod keys.

Three places a pending pod can wait, as in kube-scheduler:

- **active**: ready to be tried, ordered by priority, then by the time it entered the queue;
- **backoff**: tried and failed recently; ready again at ``last failure + backoff``, where the backoff
  starts at 1 s and doubles per attempt up to 10 s;
- **unschedulable**: found unschedulable; it stays until a cluster event may have made it schedulable
  (its own update, a node added or changed, an assigned pod deleted) or until it has waited 5 minutes,
  then moves to backoff (still backing off) or active.

A pod that fails with an error rather than "unschedulable" goes straight to backoff, and so does a pod
whose cycle overlapped a move request (an event arrived while it was being tried). The caller passes
``now`` (seconds of any monotonic clock) to every method, so tests drive it with a virtual clock. No
I/O, no threads, no locks: the scheduler holds its own lock around it.
"""

from __future__ import annotations

import heapq
from typing import Literal

import attrs

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
MAX_UNSCHEDULABLE_SECONDS = 300.0

QueueState = Literal["active", "backoff", "unschedulable", "in-flight"]


@attrs.define
class _Entry:
    key: str
    priority: int
    timestamp: float
    attempts: int = 0
    state: QueueState = "active"
    cycle: int = 0
    updated_in_flight: bool = False


def backoff_seconds(
    attempts: int, initial: float = INITIAL_BACKOFF_SECONDS, maximum: float = MAX_BACKOFF_SECONDS
) -> float:
    """Backoff after ``attempts`` tries: ``initial * 2**(attempts-1)``, capped at ``maximum``."""
    duration = initial
    for _ in range(1, attempts):
        duration *= 2
        if duration >= maximum:
            return maximum
    return min(duration, maximum)


class SchedulingQueue:
    """Which pending pod to try next, and when a failed one may be tried again.

    Args:
        initial_backoff: first backoff in seconds (kube-scheduler's podInitialBackoffSeconds).
        max_backoff: backoff ceiling in seconds (podMaxBackoffSeconds).
        max_unschedulable: how long a pod may sit unschedulable without an event before it is retried.
    """

    def __init__(
        self,
        *,
        initial_backoff: float = INITIAL_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        max_unschedulable: float = MAX_UNSCHEDULABLE_SECONDS,
    ) -> None:
        self._initial = initial_backoff
        self._max = max_backoff
        self._max_unschedulable = max_unschedulable
        self._entries: dict[str, _Entry] = {}
        self._cycle = 0
        self._move_request_cycle = -1

    def __len__(self) -> int:
        return len(self._entries)

    def state(self, key: str) -> QueueState | None:
        """Where the pod waits now, ``None`` when the queue does not hold it."""
        entry = self._entries.get(key)
        return entry.state if entry else None

    # ------------------------------------------------------------ pod events

    def add(self, key: str, *, priority: int, now: float) -> None:
        """A new pending pod: it becomes active (an already queued pod is left where it is)."""
        if key not in self._entries:
            self._entries[key] = _Entry(key, priority, now)

    def update(self, key: str, *, priority: int, now: float, changed: bool) -> None:
        """The pending pod was updated; ``changed`` says whether more than its status moved.

        An unschedulable pod whose spec or metadata changed is retried (after its backoff); a pod being
        tried right now is retried after backoff should this try fail.
        """
        entry = self._entries.get(key)
        if entry is None:
            self.add(key, priority=priority, now=now)
            return
        entry.priority = priority
        if not changed:
            return
        if entry.state == "in-flight":
            entry.updated_in_flight = True
        elif entry.state == "unschedulable":
            self._requeue(entry, now)

    def delete(self, key: str) -> None:
        """The pod is gone or no longer pending (bound, deleted, handed to another scheduler)."""
        self._entries.pop(key, None)

    def move_all(self, now: float) -> None:
        """A cluster event (node added or changed, assigned pod deleted): retry every unschedulable pod."""
        self._move_request_cycle = self._cycle
        for entry in self._entries.values():
            if entry.state == "unschedulable":
                self._requeue(entry, now)

    # ------------------------------------------------------------ scheduling cycle

    def pop(self, now: float) -> str | None:
        """The next pod to try, or ``None``; it stays ``in-flight`` until ``done`` or a failure call."""
        self.flush(now)
        active = [(-e.priority, e.timestamp, e.key) for e in self._entries.values() if e.state == "active"]
        if not active:
            return None
        key = heapq.nsmallest(1, active)[0][2]
        entry = self._entries[key]
        self._cycle += 1
        entry.state = "in-flight"
        entry.cycle = self._cycle
        entry.attempts += 1
        entry.updated_in_flight = False
        return key

    def done(self, key: str) -> None:
        """The pod was bound: forget it."""
        self._entries.pop(key, None)

    def unschedulable(self, key: str, now: float) -> None:
        """The pod fits no node. It waits for an event, unless one already came during its cycle."""
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.timestamp = now
        if entry.updated_in_flight or self._move_request_cycle >= entry.cycle:
            entry.state = "backoff"
        else:
            entry.state = "unschedulable"

    def failed(self, key: str, now: float) -> None:
        """Trying the pod failed with an error (extender unreachable, bind refused): back off."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.timestamp = now
            entry.state = "backoff"

    # ------------------------------------------------------------ time

    def flush(self, now: float) -> None:
        """Move pods whose backoff ended to active, and pods unschedulable for too long out of waiting."""
        for entry in self._entries.values():
            if entry.state == "backoff" and self._backoff_end(entry) <= now:
                entry.state = "active"
            elif entry.state == "unschedulable" and entry.timestamp + self._max_unschedulable <= now:
                self._requeue(entry, now)

    def next_due(self, now: float) -> float | None:
        """The earliest time a waiting pod becomes ready by itself; ``now`` if one is ready already."""
        times = []
        for entry in self._entries.values():
            if entry.state == "active":
                return now
            if entry.state == "backoff":
                times.append(self._backoff_end(entry))
            elif entry.state == "unschedulable":
                times.append(entry.timestamp + self._max_unschedulable)
        return max(now, min(times)) if times else None

    def _backoff_end(self, entry: _Entry) -> float:
        return entry.timestamp + backoff_seconds(entry.attempts, self._initial, self._max)

    def _requeue(self, entry: _Entry, now: float) -> None:
        entry.state = "backoff" if self._backoff_end(entry) > now else "active"
