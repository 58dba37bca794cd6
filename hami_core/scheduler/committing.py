"""The filter's one I/O step: act on a :class:`~hami_core.scheduler.choosing.Decision`.

:meth:`Committer.commit` books the chosen devices in the cache against the node view's generation
(a concurrent filter that booked the same node first makes the caller choose again) with the
annotations it is about to write (bind checks them), writes them to the pod in one merge patch
(``hami.io/vgpu-node``, ``hami.io/vgpu-time``, ``<vendor>-devices-to-allocate`` and ``-allocated``)
carrying the pod's uid as a precondition, records the ``FilteringSucceed`` event and tells
the retrier. :meth:`Committer.reject` does the same for a pod that fits nowhere (``FilteringFailed``
with the nodes grouped by reason, the retrier told), and :meth:`Committer.warn` records the warnings
of a pod the filter refused or changed. Everything the filter path writes goes through here.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import DeviceBooking
from hami_core.allocation import PodFit
from hami_core.backend import DeviceBackend
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube.client import KubeClient
from hami_core.pods import PodView
from hami_core.scheduler.bookings import Placement
from hami_core.scheduler.bookings import PodAllocation
from hami_core.scheduler.bookings import allocation_keys
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.cache import ReserveOutcome
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.choosing import Ask
from hami_core.scheduler.choosing import Decision
from hami_core.scheduler.recording import EventKind
from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.recording import ObjectRef
from hami_core.scheduler.retrying import Retrier

_log = logging.getLogger(__name__)

#: Node names listed per reason in a ``FilteringFailed`` event.
_EVENT_NODES = 5


class Committer:
    """Reserves, annotates, records events and notifies the retrier for the filter.

    Args:
        cache: where reservations are booked.
        backends: the loaded backends by name (their annotation keys).
        kube: the API client (the pod patch).
        clock: the current time (``hami.io/vgpu-time``).
        recorder: where events go; ``None`` records none.
        retrier: told of rejections, successes and freed capacity; ``None`` disables prompt retries.
    """

    def __init__(
        self,
        cache: ClusterCache,
        backends: Mapping[str, DeviceBackend],
        kube: KubeClient,
        *,
        clock: Callable[[], datetime],
        recorder: EventRecorder | None = None,
        retrier: Retrier | None = None,
    ) -> None:
        self._cache = cache
        self._backends = dict(backends)
        self._kube = kube
        self._clock = clock
        self._recorder = recorder
        self._retrier = retrier
        self._allocation_keys = allocation_keys(self._backends.values())

    def commit(self, ask: Ask, decision: Decision, candidates: int) -> ReserveOutcome:
        """Reserve ``decision``'s devices and annotate the pod.

        Returns:
            ``"reserved"`` when done; ``"stale"`` or ``"quota"`` when the cache refused the booking
            (the node changed, or the namespace's quota no longer admits the pod): choose again.

        Raises:
            KubeError: the pod could not be annotated (its reservation is dropped again).
        """
        if decision.fit is None:
            raise ValueError("commit needs a decision that chose a node")
        pod = ask.pod
        annotations = self._annotations(ask, decision.node, decision.fit)
        placement = Placement(
            self._booked(ask, decision.node, decision.fit),
            {key: annotations.get(key) for key in self._allocation_keys},
        )
        outcome = self._cache.reserve(pod.uid, placement, decision.generation, cpu=ask.request.cpu)
        if outcome != "reserved":
            return outcome
        try:
            self._annotate(pod, decision.node, annotations)
        except KubeError:
            self.freed(self._cache.forget(pod.uid))
            raise
        if self._retrier is not None:
            self._retrier.scheduled(pod.namespace, pod.name)
        self._event(
            pod,
            "Normal",
            "FilteringSucceed",
            f"find fit node({decision.node}), {len(decision.failed)} nodes not fit, "
            f"{decision.evaluated} of {candidates} nodes evaluated",
        )
        return outcome

    def reject(self, ask: Ask, failed: Mapping[str, str]) -> None:
        """The pod fits nowhere: tell the retrier and record why, node by node."""
        pod = ask.pod
        if self._retrier is not None:
            quota_limited = any(codec.RESOURCE_QUOTA_NOT_FIT in reason for reason in failed.values())
            self._retrier.rejected(pod.namespace, pod.name, pod.uid, ask.request, quota_limited=quota_limited)
        by_reason: dict[str, list[str]] = {}
        for node, reason in failed.items():
            by_reason.setdefault(reason, []).append(node)
        parts = []
        for reason, nodes in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
            shown = ",".join(heapq.nsmallest(_EVENT_NODES, nodes)) + (
                ",..." if len(nodes) > _EVENT_NODES else ""
            )
            parts.append(f"{len(nodes)} nodes {reason}({shown})")
        self._event(pod, "Warning", "FilteringFailed", "; ".join(parts) or "no candidate nodes")

    def warn(self, pod: PodView, reason: str, message: str) -> None:
        """Record a Warning event on the pod (a refused request, a replaced policy)."""
        self._event(pod, "Warning", reason, message)

    def freed(self, changes: Changes) -> None:
        """Capacity was freed (a dropped reservation): pods rejected for it may try again."""
        if changes and self._retrier is not None:
            self._retrier.notify(changes)

    def _booked(self, ask: Ask, node: str, fit: PodFit) -> PodAllocation:
        bookings: dict[str, tuple[DeviceBooking, ...]] = {}
        for name in ask.request.backends:
            collapsed = allocation.collapse_usage(fit.devices.for_backend(name), ask.request.n_init)
            if collapsed:
                bookings[name] = collapsed
        return PodAllocation(ask.pod.namespace, ask.pod.name, node, bookings)

    def _annotations(self, ask: Ask, node: str, fit: PodFit) -> dict[str, str]:
        now = self._clock()
        annotations: dict[str, str] = {codec.VGPU_NODE: node, codec.VGPU_TIME: str(int(now.timestamp()))}
        for name in ask.request.backends:
            backend = self._backends[name]
            devices = fit.devices.for_backend(name)
            encoded = codec.encode_pod_devices(devices)
            annotations[backend.keys.to_allocate] = encoded
            annotations[backend.keys.allocated] = encoded
            annotations.update(backend.filter_annotations(devices, ask.pod, now))
        return annotations

    def _annotate(self, pod: PodView, node: str, annotations: Mapping[str, str]) -> None:
        """One merge patch; its ``metadata.uid`` is a precondition, so a pod recreated under the same
        name since the filter read it is not touched (the API server refuses the patch)."""
        patch = {
            "metadata": {"uid": pod.uid, "annotations": dict(annotations), "labels": {codec.VGPU_NODE: node}}
        }
        try:
            self._kube.patch_pod(pod.namespace, pod.name, patch)
        except NotFoundError as err:
            raise NotFoundError(f"pod {pod.key} is gone: {err}", status=404) from err

    def _event(self, pod: PodView, kind: EventKind, reason: str, message: str) -> None:
        if self._recorder is not None:
            ref = ObjectRef(kind="Pod", name=pod.name, namespace=pod.namespace, uid=pod.uid)
            self._recorder.record(ref, kind, reason, message)
