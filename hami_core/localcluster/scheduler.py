"""The kube-scheduler stand-in of the local cluster: one scheduler instance with its profiles and extenders.

It takes pending pods whose ``spec.schedulerName`` is one of its profiles, filters nodes as
kube-scheduler's default plugins would (``resource_fit``), calls the configured extenders over HTTP(S)
exactly as kube-scheduler does (``extender_client``), scores, and binds through the binding extender or
``pods/binding``. Failures become ``FailedScheduling`` events and a ``PodScheduled=False`` condition, and
the pod waits in kube-scheduler's queue (``queueing``) for the events that requeue it: its own update, a
node added or changed, an assigned pod deleted or finished, or the 5-minute flush.

Threads: two informers (all pods, all nodes) and one scheduling loop; pods are tried one at a time,
as kube-scheduler does. Time comes from an injectable monotonic clock; after moving a virtual clock
forward, call ``wake()``. Not emulated: preemption, taints, affinity terms, topology spread, volumes,
random tie-breaking (ties go to the first node by name, so runs are reproducible).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from typing import Literal
from typing import cast

from hami_core.errors import KubeError
from hami_core.errors import PodFormatError
from hami_core.kube.client import KubeClient
from hami_core.kube.informer import Informer
from hami_core.kube.informer import InformerEvent
from hami_core.kube.informer import listed
from hami_core.kube.informer import object_key
from hami_core.kube.objects import Event
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.kube.objects import PodCondition
from hami_core.localcluster import extender_client
from hami_core.localcluster import resource_fit
from hami_core.localcluster.extender_client import ExtenderError
from hami_core.localcluster.extender_client import HttpExtender
from hami_core.localcluster.queueing import SchedulingQueue
from hami_core.localcluster.scheduler_config import SchedulerConfig
from hami_core.localcluster.scheduler_config import load_scheduler_config
from hami_core.looping import Loop
from hami_core.pods import PodView

_log = logging.getLogger(__name__)

EVENT_MESSAGE_LIMIT = 1024
NO_NODES_MESSAGE = "no nodes available to schedule pods"


def pod_changed(old: Pod, new: Pod) -> bool:
    """Whether an update is more than status and bookkeeping (kube-scheduler's isPodUpdated)."""

    def strip(pod: Pod) -> dict[str, Any]:
        copied: dict[str, Any] = copy.deepcopy(dict(pod))
        copied.pop("status", None)
        metadata = copied.get("metadata") or {}
        for field in ("resourceVersion", "generation", "managedFields"):
            metadata.pop(field, None)
        return copied

    return strip(old) != strip(new)


def node_scheduling_changed(old: Node, new: Node) -> bool:
    """Whether a node update can make a pod schedulable: unschedulable, allocatable, labels, taints,
    annotations or condition statuses changed (heartbeats alone do not count)."""

    def view(node: Node) -> tuple[object, ...]:
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        metadata = node.get("metadata") or {}
        conditions = sorted((c.get("type", ""), c.get("status", "")) for c in status.get("conditions") or [])
        return (
            bool(spec.get("unschedulable")),
            spec.get("taints") or [],
            status.get("allocatable") or {},
            metadata.get("labels") or {},
            metadata.get("annotations") or {},
            conditions,
        )

    return view(old) != view(new)


def truncate_message(message: str, limit: int = EVENT_MESSAGE_LIMIT) -> str:
    """Event notes are capped at 1024 bytes; kube-scheduler cuts longer ones with " ..."."""
    if len(message) <= limit:
        return message
    return message[: limit - 4] + " ..."


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """One kube-scheduler instance (all profiles of one KubeSchedulerConfiguration).

    Args:
        kube: the API client.
        config: the KubeSchedulerConfiguration (object, decoded dict, YAML text or file); ``None`` is
            the default profile without extenders.
        clock: monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        kube: KubeClient,
        config: SchedulerConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = load_scheduler_config(config)
        self._kube = kube
        self._clock = clock
        self._extenders = [HttpExtender(extender) for extender in self.config.extenders]
        self._ignored = self.config.ignored_resources
        self._lock = threading.RLock()
        self._queue = SchedulingQueue()
        self._assumed: dict[str, tuple[str, PodView]] = {}
        self._views: dict[str, PodView] = {}
        self._loop = Loop("scheduler-loop", self._step, log=_log)
        name = "/".join(self.config.scheduler_names)
        self._pods: Informer[Pod] = Informer(
            f"{name}-pods",
            lambda: listed(kube.list_pods()),
            lambda version: kube.watch_pods(resource_version=version),
            self._on_pod,
        )
        self._nodes: Informer[Node] = Informer(
            f"{name}-nodes",
            lambda: listed(kube.list_nodes()),
            lambda version: kube.watch_nodes(resource_version=version),
            self._on_node,
        )

    # ------------------------------------------------------------ lifecycle

    def start(self, *, sync_timeout: float = 10.0) -> None:
        """Start the informers, wait for their first lists, then start scheduling.

        Raises:
            KubeError: the API server did not answer the first lists in time.
        """
        self._pods.start()
        self._nodes.start()
        if not (self._pods.wait_synced(sync_timeout) and self._nodes.wait_synced(sync_timeout)):
            self.stop()
            raise KubeError(
                f"scheduler {self.config.scheduler_names}: informers did not sync in {sync_timeout}s"
            )
        self._loop.start()

    def stop(self) -> None:
        """Stop scheduling and the informers; returns when every thread has ended."""
        self._loop.stop()
        self._pods.stop()
        self._nodes.stop()

    def wake(self) -> None:
        """Re-read the clock now (after a virtual clock moved) and schedule whatever became due."""
        self._loop.wake()

    def queue_state(self, namespace: str, name: str) -> str | None:
        """Where a pending pod waits: "active", "backoff", "unschedulable", "in-flight" or ``None``."""
        with self._lock:
            return self._queue.state(f"{namespace}/{name}")

    # ------------------------------------------------------------ informer handlers

    def _responsible(self, pod: PodView) -> bool:
        return (
            (pod.scheduler_name or "default-scheduler") in self.config.scheduler_names
            and not pod.node_name
            and not pod.deleting
            and not pod.finished
        )

    def _on_pod(self, event: InformerEvent, raw: Pod, raw_old: Pod | None) -> None:
        key = object_key(raw)
        try:
            pod = PodView.from_object(raw)
        except PodFormatError as err:
            _log.warning("ignoring unreadable pod %s: %s", key, err)
            return
        with self._lock:
            now = self._clock()
            old = self._views.get(key)
            if event == "DELETED":
                self._views.pop(key, None)
                self._queue.delete(key)
                self._assumed.pop(key, None)
                if pod.node_name and not pod.finished:
                    self._queue.move_all(now)
                self._loop.wake()
                return
            self._views[key] = pod
            if pod.node_name:
                self._queue.delete(key)
                self._assumed.pop(key, None)
                if pod.finished and old is not None and not old.finished:
                    self._queue.move_all(now)
            elif not self._responsible(pod):
                self._queue.delete(key)
            elif raw_old is None:
                self._queue.add(key, priority=pod.priority, now=now)
            else:
                self._queue.update(key, priority=pod.priority, now=now, changed=pod_changed(raw_old, raw))
            self._loop.wake()

    def _on_node(self, event: InformerEvent, node: Node, old: Node | None) -> None:
        if event == "DELETED":
            return
        if event == "ADDED" or old is None or node_scheduling_changed(old, node):
            with self._lock:
                self._queue.move_all(self._clock())
                self._loop.wake()

    # ------------------------------------------------------------ scheduling loop

    def _step(self) -> float | None:
        """Schedule the next due pod; with none due, wait until one is (or until woken)."""
        with self._lock:
            now = self._clock()
            key = self._queue.pop(now)
            if key is None:
                due = self._queue.next_due(now)
                return None if due is None else max(0.001, due - now)
            pod = self._views.get(key)
            if pod is None or not self._responsible(pod):
                self._queue.delete(key)
                return 0
        try:
            self._schedule_one(key, pod)
        except Exception:
            _log.exception("scheduling %s failed unexpectedly", key)
            with self._lock:
                self._queue.failed(key, self._clock())
        return 0

    def _usage(self) -> dict[str, dict[str, Fraction]]:
        by_node: dict[str, list[PodView]] = {}
        seen = set()
        with self._lock:
            for pod in self._views.values():
                if pod.node_name and not pod.finished:
                    by_node.setdefault(pod.node_name, []).append(pod)
                    seen.add(pod.key)
            for key, (node, pod) in self._assumed.items():
                if key not in seen:
                    by_node.setdefault(node, []).append(pod)
        return {node: resource_fit.requested_on_node(pods) for node, pods in by_node.items()}

    def _schedule_one(self, key: str, pod: PodView) -> None:
        nodes = self._nodes.items()
        if not nodes:
            self._fail(key, pod, NO_NODES_MESSAGE, unschedulable=False)
            return
        usage = self._usage()
        reasons: dict[str, list[str]] = {}
        feasible: list[Node] = []
        for node in nodes:
            name = node["metadata"]["name"]
            failures = resource_fit.node_failures(pod, node, usage.get(name, {}), ignored=self._ignored)
            if failures:
                reasons[name] = failures
            else:
                feasible.append(node)
        try:
            feasible = self._filter_by_extenders(pod, feasible, reasons)
        except ExtenderError as err:
            self._fail(key, pod, str(err), unschedulable=False)
            return
        if not feasible:
            self._fail(key, pod, resource_fit.fit_error_message(len(nodes), reasons), unschedulable=True)
            return
        host = self._select_host(pod, feasible, usage)
        with self._lock:
            self._assumed[key] = (host, pod)
        try:
            self._bind(pod, host)
        except (ExtenderError, KubeError) as err:
            with self._lock:
                self._assumed.pop(key, None)
            self._fail(key, pod, str(err), unschedulable=False)
            return
        with self._lock:
            self._queue.done(key)
        self._record(pod, "Normal", "Scheduled", f"Successfully assigned {pod.key} to {host}")

    def _filter_by_extenders(
        self, pod: PodView, feasible: list[Node], reasons: dict[str, list[str]]
    ) -> list[Node]:
        for extender in self._extenders:
            if not feasible:
                break
            if not extender.is_interested(pod):
                continue
            try:
                outcome = extender.filter(pod, feasible)
            except ExtenderError as err:
                if extender.config.ignorable:
                    _log.info("skipping ignorable extender %s: %s", extender.url, err)
                    continue
                raise
            extender_client.merge_failures(reasons, outcome)
            kept = set(outcome.node_names)
            feasible = [node for node in feasible if node["metadata"]["name"] in kept]
        return feasible

    def _select_host(
        self, pod: PodView, feasible: list[Node], usage: Mapping[str, Mapping[str, Fraction]]
    ) -> str:
        names = [node["metadata"]["name"] for node in feasible]
        if len(feasible) == 1:
            # kube-scheduler skips scoring, extenders included, when one node is left.
            return names[0]
        totals = {
            node["metadata"]["name"]: resource_fit.least_allocated_score(
                pod, node, usage.get(node["metadata"]["name"], {})
            )
            for node in feasible
        }
        combined: dict[str, int] = {}
        for extender in self._extenders:
            if not extender.config.prioritize_verb or not extender.is_interested(pod):
                continue
            try:
                scores = extender.prioritize(pod, feasible)
            except ExtenderError as err:
                # A prioritize failure is ignored, as in kube-scheduler.
                _log.info("extender %s prioritize failed: %s", extender.url, err)
                continue
            for host, score in scores.items():
                combined[host] = combined.get(host, 0) + score
        scale = extender_client.MAX_NODE_SCORE // extender_client.MAX_EXTENDER_PRIORITY
        for host, score in combined.items():
            if host in totals:
                totals[host] += score * scale
        # max() keeps the first of equal scores: ties go to the first node by name.
        return max(names, key=lambda name: totals[name])

    def _bind(self, pod: PodView, host: str) -> None:
        for extender in self._extenders:
            if extender.config.bind_verb and extender.is_interested(pod):
                extender.bind(pod, host)
                return
        self._kube.bind_pod(pod.namespace, pod.name, host, uid=pod.uid)

    # ------------------------------------------------------------ failure reporting

    def _fail(self, key: str, pod: PodView, message: str, *, unschedulable: bool) -> None:
        with self._lock:
            if unschedulable:
                self._queue.unschedulable(key, self._clock())
            else:
                self._queue.failed(key, self._clock())
            self._loop.wake()
        self._record(pod, "Warning", "FailedScheduling", message)
        self._set_condition(key, pod, "Unschedulable" if unschedulable else "SchedulerError", message)

    def _set_condition(self, key: str, pod: PodView, reason: str, message: str) -> None:
        current = self._pods.get(key) or cast(Pod, pod.raw)
        conditions = [
            c
            for c in (current.get("status") or {}).get("conditions") or []
            if c.get("type") != "PodScheduled"
        ]
        condition: PodCondition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": _now_rfc3339(),
        }
        try:
            self._kube.patch_pod_status(
                pod.namespace, pod.name, {"status": {"conditions": [*conditions, condition]}}
            )
        except KubeError as err:
            _log.info("cannot set PodScheduled=False on %s: %s", key, err)

    def _record(
        self, pod: PodView, event_type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        component = pod.scheduler_name or "default-scheduler"
        now = _now_rfc3339()
        event: Event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{pod.name}.{time.time_ns():x}",
                "namespace": pod.namespace,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": pod.namespace,
                "name": pod.name,
                "uid": pod.uid,
                "resourceVersion": pod.resource_version,
            },
            "reason": reason,
            "message": truncate_message(message),
            "type": event_type,
            "source": {"component": component},
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": component,
        }
        try:
            self._kube.create_event(pod.namespace or "default", event)
        except KubeError as err:
            _log.info("cannot record event %s on %s: %s", reason, pod.key, err)
