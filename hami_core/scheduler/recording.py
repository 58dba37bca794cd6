"""Kubernetes Events the scheduler records (``FilteringFailed``, ``BindingSucceed``, warnings on bad input).

Events are written by one background thread from a bounded queue, so recording never adds an API
round trip to a filter or bind; when the queue is full (the API server is slow), events are dropped
and counted rather than queued without bound. Reasons and message shapes follow HAMi
(``specs/hami-wire.md`` 3.3, 3.8) so dashboards and ``kubectl describe`` read the same.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Literal

import attrs

from hami_core.errors import KubeError
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Event
from hami_core.looping import Loop

_log = logging.getLogger(__name__)

#: kube-scheduler caps event notes at 1024 bytes.
MESSAGE_LIMIT = 1024
COMPONENT = "hami-scheduler"

EventKind = Literal["Normal", "Warning"]


@attrs.frozen
class ObjectRef:
    """The object an event is about."""

    kind: Literal["Pod", "Node"]
    name: str
    namespace: str = ""
    uid: str = ""


def _truncate(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 4] + " ..."


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Records core/v1 Events asynchronously.

    Args:
        kube: the API client.
        component: the ``source.component`` and ``reportingComponent`` of every event.
        capacity: events that may wait; more are dropped.
        clock: the current time for event timestamps.
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        component: str = COMPONENT,
        capacity: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._component = component
        self._clock = clock
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=capacity)
        self._loop = Loop("hami-events", self._write_next, log=_log)
        self.dropped = 0

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        if not self._loop.running:
            return
        self._queue.put(None)
        self._loop.join()

    def record(self, ref: ObjectRef, kind: EventKind, reason: str, message: str) -> None:
        """Queue an event about ``ref``; never blocks."""
        now = _stamp(self._clock())
        namespace = ref.namespace or "default"
        event: Event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": ref.kind, "name": ref.name, "uid": ref.uid},
            "reason": reason,
            "message": _truncate(message),
            "type": kind,
            "source": {"component": self._component},
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": self._component,
        }
        if ref.namespace:
            event["involvedObject"]["namespace"] = ref.namespace
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _write_next(self) -> float:
        """Write the next queued event (waiting for one); the stop marker ends the loop."""
        event = self._queue.get()
        if event is None:
            self._loop.request_stop()
            return 0
        try:
            self._kube.create_event(event["metadata"]["namespace"], event)
        except KubeError as err:
            _log.info("cannot record event %s: %s", event.get("reason"), err)
        return 0
