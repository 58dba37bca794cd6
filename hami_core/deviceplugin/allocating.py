"""``Allocate`` and ``GetPreferredAllocation`` as HAMi's device plugin does them, minus the gRPC.

The scheduler has already chosen the devices: ``/filter`` wrote them per container (init containers
first) into the pod's ``<vendor>-devices-to-allocate`` annotation and ``/bind`` took the node lock and
set ``bind-phase=allocating``. For each container the kubelet admits, :class:`Allocator` finds that
pod (the node lock's holder, else the oldest pending pod bound here with ``bind-phase=allocating``),
takes the first container entry not yet consumed, asks the backend for the container's env, mounts
and device nodes, and writes the entry back consumed. After the last entry it sets
``bind-phase=success`` in the same patch and releases the lock; any failure sets ``bind-phase=failed``
and releases the lock, and the error propagates with a message that says why (``specs/hami-wire.md``
5.4). Calls are serialized, as HAMi's are, and so is :meth:`Allocator.clear_stale_lock`.

gRPC stays in ``server.py``: this module takes device ID lists and returns value types. Its only I/O
is through ``KubeClient`` and the backend.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime

import attrs

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.deviceplugin import locking
from hami_core.deviceplugin.devices import DeviceState
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevices
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import HamiError
from hami_core.errors import KubeError
from hami_core.errors import NotFoundError
from hami_core.kube.client import KubeClient
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.objects import Node
from hami_core.pods import PodView

_log = logging.getLogger(__name__)


@attrs.frozen
class PreferenceRequest:
    """One container of a ``GetPreferredAllocation`` call.

    Args:
        available: the kubelet device IDs it may choose from.
        must_include: IDs the answer must contain (devices of the pod's finished init containers).
        size: how many IDs the container gets.
    """

    available: tuple[str, ...]
    must_include: tuple[str, ...] = ()
    size: int = 0


def decode_entries(pod: PodView, key: str) -> list[ContainerDevices]:
    """The pod's per-container entries of annotation ``key``.

    Raises:
        BackendError: the pod has no such annotation (it was not scheduled for this backend).
        CodecError: the annotation is not in HAMi's pod device format.
    """
    raw = pod.annotations.get(key)
    if raw is None:
        raise BackendError(f"pod {pod.key} has no {key} annotation: hami did not schedule it here")
    try:
        return [tuple(entry) for entry in codec.decode_pod_devices(raw)]
    except CodecError as err:
        raise CodecError(f"pod {pod.key}: malformed {key} annotation {raw!r}: {err}") from err


def next_entry(entries: Sequence[ContainerDevices]) -> int | None:
    """The index of the first container entry not yet consumed (HAMi takes the first non-empty one)."""
    return next((index for index, entry in enumerate(entries) if entry), None)


def allocation_patch(key: str, entries: Sequence[ContainerDevices]) -> dict[str, object]:
    """The pod merge patch after an ``Allocate``: the entries rewritten, and ``success`` once none is left.

    Consumed entries are written empty so that indexes keep matching containers (hami-wire.md
    1.4.3, example 10).
    """
    annotations: dict[str, str] = {key: codec.encode_pod_devices(entries)}
    if next_entry(entries) is None:
        annotations[codec.BIND_PHASE] = codec.BIND_PHASE_SUCCESS
    return {"metadata": {"annotations": annotations}}


def prefer(
    entry: ContainerDevices, request: PreferenceRequest, physical_id: Callable[[str], str | None]
) -> list[str]:
    """The kubelet device IDs to prefer for a container: one replica of each device the scheduler gave it.

    The IDs the kubelet insists on come first, then for each assigned device its first available
    replica not yet chosen, then other available IDs until ``size``.
    """
    chosen = list(dict.fromkeys(request.must_include))
    for device in entry:
        if len(chosen) >= request.size:
            break
        replica = next(
            (i for i in request.available if physical_id(i) == device.uuid and i not in chosen), None
        )
        if replica is not None:
            chosen.append(replica)
    for replica in request.available:
        if len(chosen) >= request.size:
            break
        if replica not in chosen:
            chosen.append(replica)
    return chosen[: max(request.size, len(request.must_include))]


class Allocator:
    """Serves one backend's ``Allocate`` calls on one node.

    Args:
        kube: the API client (its per-call timeout is the deadline the kubelet does not set).
        backend: the backend whose devices this plugin serves.
        node_name: the node the plugin runs on.
        state: the node's devices, to check that kubelet device IDs are this plugin's.
        lock: releases the node lock; its expiry is the scheduler's node lock timeout.
    """

    def __init__(
        self, kube: KubeClient, backend: DeviceBackend, node_name: str, state: DeviceState, lock: NodeLock
    ) -> None:
        self._kube = kube
        self._lock = lock
        self._backend = backend
        self._node_name = node_name
        self._state = state
        self._key = backend.keys.to_allocate
        self._mutex = threading.Lock()

    def allocate(self, requests: Sequence[Sequence[str]]) -> list[ContainerAllocation]:
        """Hand out the devices of the next containers of the pod being allocated on this node.

        Args:
            requests: per container of the kubelet's request, the kubelet device IDs it chose.

        Returns:
            One allocation per request, in order.

        Raises:
            NotFoundError: no pod is being allocated here, or the lock's pod vanished (lock released).
            CodecError: the pod's to-allocate annotation is malformed (pod failed, lock released).
            BackendError: foreign device IDs, a count mismatch, no entry left, or the backend refused
                (pod failed, lock released).
            KubeError: the API server failed (pod failed and lock released where still possible).
        """
        with self._mutex:
            node = self._kube.get_node(self._node_name)
            pod = self._pending_pod(node)
            try:
                return self._allocate(pod, requests)
            except Exception as err:  # a backend bug must not leave the node locked either
                self._fail(pod, err)
                raise

    def preferred(self, requests: Sequence[PreferenceRequest]) -> list[list[str]]:
        """The kubelet device IDs this plugin prefers for each container of a preference request.

        Preferences are advice: when the pod cannot be read the answer is the kubelet's own
        choice (must-include IDs, then available ones), and ``Allocate`` reports the problem.
        """
        with self._mutex:
            try:
                pod = self._pending_pod(self._kube.get_node(self._node_name))
                entries = [entry for entry in decode_entries(pod, self._key) if entry]
            except HamiError as err:
                _log.info("node %s: no preference for %s: %s", self._node_name, self._backend.name, err)
                entries = []
        return [
            prefer(entries[k] if k < len(entries) else (), request, self._state.physical_id)
            for k, request in enumerate(requests)
        ]

    def clear_stale_lock(self, now: datetime) -> None:
        """Release this node's lock when its allocation can no longer finish (:func:`locking.stale_lock_action`).

        Raises:
            KubeError: the API server failed.
            LockError: the release kept losing resourceVersion races.
        """
        with self._mutex:
            node = self._kube.get_node(self._node_name)
            lock = locking.pod_lock(node)
            owner = lock.owner if lock is not None else None
            if lock is None or owner is None:
                return
            try:
                pod: PodView | None = PodView.from_object(self._kube.get_pod(*owner))
            except NotFoundError:
                pod = None
            action = locking.stale_lock_action(lock, pod, now, self._lock.expiry)
            if action == "keep":
                return
            _log.info("node %s: clearing stale node lock %r (%s)", self._node_name, lock, action)
            if action == "fail":
                self._set_phase(owner[0], owner[1], codec.BIND_PHASE_FAILED)
            self._lock.release(self._node_name, *owner)

    # ------------------------------------------------------------ steps

    def _pending_pod(self, node: Node) -> PodView:
        """The pod being allocated on this node (HAMi's ``GetPendingPod``): the lock's holder while
        its bind-phase is ``allocating``, else the oldest pending pod bound here that is.

        Raises:
            NotFoundError: there is none; a lock naming a vanished pod is released first.
        """
        lock = locking.pod_lock(node)
        owner = lock.owner if lock is not None else None
        if owner is not None:
            try:
                holder = PodView.from_object(self._kube.get_pod(*owner))
            except NotFoundError as err:
                self._lock.release(self._node_name, *owner)
                raise NotFoundError(
                    f"node {self._node_name}: pod {owner[0]}/{owner[1]} holds the node lock but no longer "
                    "exists; the lock was released",
                    status=404,
                    reason="NotFound",
                ) from err
            # A holder whose phase is settled left the lock behind; never fail a finished allocation.
            if holder.annotations.get(codec.BIND_PHASE) == codec.BIND_PHASE_ALLOCATING:
                return holder
        listed = self._kube.list_pods(field_selector=f"spec.nodeName={self._node_name},status.phase=Pending")
        waiting = [
            pod
            for pod in map(PodView.from_object, listed.get("items") or [])
            if pod.annotations.get(codec.BIND_PHASE) == codec.BIND_PHASE_ALLOCATING
            and pod.annotations.get(codec.VGPU_NODE) == self._node_name
            and codec.BIND_TIME in pod.annotations
            and self._key in pod.annotations
        ]
        if not waiting:
            raise NotFoundError(
                f"node {self._node_name}: no pod is waiting for {self._backend.name} devices (no node lock "
                f"held and no pending pod with {codec.BIND_PHASE}={codec.BIND_PHASE_ALLOCATING})",
                status=404,
                reason="NotFound",
            )
        return min(waiting, key=lambda pod: (pod.annotations[codec.BIND_TIME], pod.key))

    def _allocate(self, pod: PodView, requests: Sequence[Sequence[str]]) -> list[ContainerAllocation]:
        entries = decode_entries(pod, self._key)
        containers = pod.containers
        results = []
        for ids in requests:
            foreign = [device for device in ids if self._state.physical_id(device) is None]
            if foreign:
                raise BackendError(
                    f"kubelet asked for device IDs {', '.join(foreign)}, which are not "
                    f"{self._backend.resource_names.count} devices of node {self._node_name}"
                )
            index = next_entry(entries)
            if index is None:
                raise BackendError(
                    f"pod {pod.key} has no container left to allocate in {self._key} "
                    f"(kubelet asked for {len(ids)} devices)"
                )
            if index >= len(containers):
                raise BackendError(
                    f"pod {pod.key}: {self._key} has an entry for container {index}, but the pod "
                    f"has {len(containers)} containers"
                )
            entry, container = entries[index], containers[index]
            if len(entry) != len(ids):
                raise BackendError(
                    f"device number not matched: kubelet gave container {container.label} of pod "
                    f"{pod.key} {len(ids)} devices, the scheduler assigned {len(entry)}"
                )
            _log.info(
                "node %s: allocating %s for container %s of pod %s",
                self._node_name,
                ", ".join(device.uuid for device in entry),
                container.label,
                pod.key,
            )
            try:
                results.append(self._backend.allocate(entry, container, pod))
            except BackendError as err:
                raise BackendError(f"pod {pod.key}: {err}") from err
            entries[index] = ()
        namespace, name = pod.namespace, pod.name
        self._kube.patch_pod(namespace, name, allocation_patch(self._key, entries))
        if next_entry(entries) is None:
            _log.info("node %s: pod %s allocated", self._node_name, pod.key)
            self._remove_bind_annotations()
            try:
                self._lock.release(self._node_name, namespace, name)
            except HamiError as err:  # the pod is allocated; the stale-lock sweep retries the release
                _log.warning("node %s: cannot release the node lock: %s", self._node_name, err)
        return results

    def _fail(self, pod: PodView, err: Exception) -> None:
        """Mark the allocation failed and free the node, as far as the API server lets us."""
        namespace, name = pod.namespace, pod.name
        _log.warning("node %s: allocation of pod %s/%s failed: %s", self._node_name, namespace, name, err)
        self._set_phase(namespace, name, codec.BIND_PHASE_FAILED)
        self._remove_bind_annotations()
        try:
            self._lock.release(self._node_name, namespace, name)
        except HamiError as release_err:
            _log.warning("node %s: cannot release the node lock: %s", self._node_name, release_err)

    def _remove_bind_annotations(self) -> None:
        """Remove what the scheduler's bind set for this backend (a vendor lock), before the node lock
        is released, so the next bind never finds it."""
        keys = self._backend.released_node_annotations
        if not keys:
            return
        try:
            self._kube.patch_node(self._node_name, {"metadata": {"annotations": dict.fromkeys(keys)}})
        except KubeError as err:
            _log.warning("node %s: cannot remove %s: %s", self._node_name, ", ".join(keys), err)

    def _set_phase(self, namespace: str, name: str, phase: str) -> None:
        try:
            self._kube.patch_pod(namespace, name, {"metadata": {"annotations": {codec.BIND_PHASE: phase}}})
        except KubeError as err:
            _log.warning(
                "node %s: cannot set %s on pod %s/%s: %s", self._node_name, phase, namespace, name, err
            )
