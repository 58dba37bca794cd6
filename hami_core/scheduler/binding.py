"""The extender's bind: checks, node lock, then ``pods/binding`` carrying ``bind-phase=allocating`` (``specs/hami-wire.md`` 3.8).

Bind acts only on what the filter placed. HAMi's bind trusts the pod's own annotations, so anyone who
reaches the extender could bind a pod with forged allocation annotations onto devices other pods
hold, or any pod to any node name. Here the pod is read afresh and the bind refused (a
:class:`BindError` with a reason, a ``BindingRefused`` event, nothing changed) unless it names the
pod's current uid and a known node, and the pod's allocation is one this scheduler's filter placed
(the annotations it wrote, unchanged), or, for a pod filtered before this scheduler started, one that
looks as the filter writes it and fits the node beside every other booking.

The node lock is what the device plugin's ``Allocate`` uses to find the pod it serves, so it is taken
only for pods that hold devices and only for their node; nothing else is serialised. Where HAMi fails
a bind at once when another pod holds the lock (and kube-scheduler backs the pod off for seconds,
issues #1130, #1655), this bind waits a bounded time for the holder to finish, woken by the node
watch as soon as the lock changes, and takes over at once a lock whose holder is gone (deleted,
finished, or done allocating), instead of waiting out the 5-minute expiry (HAMi PR #3047).

On any failure the lock is released if this bind took it, the pod's reservation is dropped from the
cache and its allocation annotations are removed (unless the pod did get bound), so the devices are
free for other pods at once and a re-filter starts clean.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import ConflictError
from hami_core.errors import HamiError
from hami_core.errors import KubeError
from hami_core.errors import LockError
from hami_core.errors import NotFoundError
from hami_core.kube.client import KubeClient
from hami_core.kube.nodelock import LockHeldError
from hami_core.kube.nodelock import NodeLock
from hami_core.pods import PodView
from hami_core.scheduler.bookings import PodAllocation
from hami_core.scheduler.bookings import decode_allocation
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.pod_requests import parse_pod_request
from hami_core.scheduler.recording import EventRecorder
from hami_core.scheduler.recording import ObjectRef

_log = logging.getLogger(__name__)

#: Default seconds a bind waits for another pod's node lock (kube-scheduler's HAMi timeout is 30 s).
DEFAULT_LOCK_WAIT = 10.0
#: A waiting bind re-checks the lock at least this often, in case a watch event was missed.
_RECHECK = 0.5
_DONE_PHASES = (codec.BIND_PHASE_SUCCESS, codec.BIND_PHASE_FAILED)
#: The longest node name (a DNS subdomain).
_NODE_NAME_MAX = 253
#: How much of a request body's value a message repeats.
_ECHO = 100


class BindError(HamiError):
    """The bind is refused: it is not for what the filter placed (see :meth:`Binding._verify`).

    Args:
        reason: a short label for the refusal metric (``uid-mismatch``, ``unknown-node``, ...).
        message: what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _echo(text: str) -> str:
    """A value from the request body, cut short for messages, events and logs."""
    return text if len(text) <= _ECHO else f"{text[:_ECHO]}... ({len(text)} characters)"


def _done(pod: PodView) -> bool:
    """Whether a lock holder no longer needs the lock: ending, ended, or done allocating."""
    return pod.deleting or pod.finished or pod.annotation(codec.BIND_PHASE) in _DONE_PHASES


class Binding:
    """Binds pods to the node their filter chose.

    Args:
        kube: the API client.
        cache: the cluster cache (reservations, pod states, lock changes).
        lock: the node lock.
        backends: the loaded backends by name (their annotation keys).
        clock: the current time (``hami.io/bind-time``).
        monotonic: seconds of a monotonic clock, for the lock wait deadline.
        lock_wait: seconds a bind waits for another pod's lock before failing.
        recorder: where events go; ``None`` records none.
        on_freed: told what a failed bind freed (prompt retries).
        observe_lock_wait: told how long each bind waited for its lock.
    """

    def __init__(
        self,
        kube: KubeClient,
        cache: ClusterCache,
        lock: NodeLock,
        backends: Mapping[str, DeviceBackend],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        recorder: EventRecorder | None = None,
        on_freed: Callable[[Changes], None] | None = None,
        observe_lock_wait: Callable[[float], None] | None = None,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._lock = lock
        self._backends = dict(backends)
        self._clock = clock
        self._monotonic = monotonic
        self._lock_wait = lock_wait
        self._recorder = recorder
        self._on_freed = on_freed
        self._observe_lock_wait = observe_lock_wait
        self._changed = threading.Condition()
        self._versions: dict[str, int] = {}

    def lock_changed(self, nodes: Iterable[str]) -> None:
        """The watch saw the lock of ``nodes`` change: wake the binds waiting for them."""
        with self._changed:
            for node in nodes:
                self._versions[node] = self._versions.get(node, 0) + 1
            self._changed.notify_all()

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """Bind pod ``namespace/name`` (``uid``) to ``node``.

        Raises:
            BindError: the bind is refused (see :meth:`_verify`); nothing was changed.
            LockError: the node stayed locked by another pod for the whole wait.
            KubeError: the pod or node could not be read or written (``NotFoundError`` when gone).
        """
        pod = self._read(namespace, name)
        if pod.node_name == node and pod.uid == uid:
            return  # a retried bind whose first attempt went through (lost reply)
        try:
            booked = self._verify(pod, uid, node)
        except BindError as err:
            self._event(
                namespace,
                name,
                pod.uid,
                "Warning",
                "BindingRefused",
                f"binding to node {_echo(node)} refused: {err}",
            )
            raise
        locked = False
        vendor_keys: tuple[str, ...] = ()
        try:
            if booked is not None:
                self._acquire(node, namespace, name)
                locked = True
                vendor_keys = self._vendor_annotations(node, booked)
            self._bind(namespace, name, uid, node, with_phase=booked is not None)
        except HamiError as err:
            self._fail(namespace, name, uid, node, booked, locked, err, vendor_keys)
            raise
        self._event(
            namespace,
            name,
            uid,
            "Normal",
            "BindingSucceed",
            f"Successfully binding node [{node}] to {namespace}/{name}",
        )

    def _verify(self, pod: PodView, uid: str, node: str) -> PodAllocation | None:
        """What the pod holds on ``node`` if this bind may go ahead; ``None`` for a pod without devices.

        The bind must name the pod's current uid and a known node, and the pod must not be bound
        already. A pod this scheduler's filter placed must still carry exactly the annotations the
        filter wrote, for that node. Any other pod with an allocation (one a filter wrote before this
        scheduler started) must look as the filter writes it (``hami.io/vgpu-time`` set, each
        ``-to-allocate`` equal to its ``-allocated``) and fit its node beside every other booking. A
        pod asking devices without an allocation was never filtered.

        Raises:
            BindError: with the reason (a metric label) why the bind is refused.
        """
        where = f"pod {pod.key}"
        if not uid or pod.uid != uid:
            raise BindError("uid-mismatch", f"{where} has uid {pod.uid}, not {_echo(uid) or '(none)'}")
        if pod.node_name:
            raise BindError("already-bound", f"{where} is already bound to node {pod.node_name}")
        if not self._node_exists(node):
            raise BindError("unknown-node", f"node {_echo(node)} does not exist")
        placement = self._cache.placement(uid)
        if placement is not None:
            if placement.booked.node != node:
                raise BindError(
                    "node-mismatch",
                    f"{where} was filtered for node {placement.booked.node}, not {_echo(node)}; filter it again",
                )
            if not placement.matches(pod.annotations):
                raise BindError(
                    "allocation-mismatch", f"{where}: its allocation annotations changed since the filter"
                )
            self._check_health(placement.booked)
            return placement.booked
        try:
            held = decode_allocation(pod, list(self._backends.values()))
        except CodecError as err:
            raise BindError("forged-allocation", f"{where}: {err}") from err
        if held is None:
            if self._asks_devices(pod):
                raise BindError("not-filtered", f"{where} asks for devices but was never filtered")
            return None
        if held.node != node:
            raise BindError(
                "node-mismatch",
                f"{where} was filtered for node {held.node}, not {_echo(node)}; filter it again",
            )
        why = self._unlike_filter(pod, held)
        if why:
            raise BindError("forged-allocation", f"{where}: {why}")
        self._check_health(held)
        why = self._cache.overbooked(uid, held)
        if why:
            raise BindError("overcommit", f"{where}: its allocation does not fit: {why}")
        return held

    def _check_health(self, held: PodAllocation) -> None:
        """Refuse a pod whose node lost a backend's devices since the filter (its plugin died): the
        kubelet would fail it, and a re-filter sends it elsewhere."""
        view = self._cache.view(held.node)
        lost = sorted(backend for backend in held.bookings if view is None or backend not in view.devices)
        if lost:
            raise BindError(
                "node-unhealthy",
                f"node {held.node} has no healthy {', '.join(lost)} devices now; filter it again",
            )

    def _unlike_filter(self, pod: PodView, held: PodAllocation) -> str:
        """Why the pod's allocation is not as a filter writes it; "" when it is."""
        if not pod.annotation(codec.VGPU_TIME).isascii() or not pod.annotation(codec.VGPU_TIME).isdigit():
            return f"{codec.VGPU_TIME} is not a filter's timestamp"
        for backend in self._backends.values():
            to_allocate = pod.annotation(backend.keys.to_allocate)
            allocated = pod.annotation(backend.keys.allocated)
            if backend.name in held.bookings and to_allocate != allocated:
                return f"{backend.keys.to_allocate} differs from {backend.keys.allocated}"
            if backend.name not in held.bookings and to_allocate:
                return f"{backend.keys.to_allocate} is set without an allocation"
        return ""

    def _asks_devices(self, pod: PodView) -> bool:
        try:
            return not parse_pod_request(pod, list(self._backends.values())).empty
        except BackendError:
            return True  # a malformed request was never placed by a filter either

    def _node_exists(self, node: str) -> bool:
        """Known to the cache, or (a node outside its selector) to the API server."""
        if self._cache.node_metadata(node) is not None:
            return True
        if not node or len(node) > _NODE_NAME_MAX or "/" in node:
            return False  # not a node name: nothing to ask the API server
        try:
            self._kube.get_node(node)
        except NotFoundError:
            return False
        return True

    def _read(self, namespace: str, name: str) -> PodView:
        """The pod as the API server has it now, read into a view.

        Raises:
            KubeError: it cannot be read (``NotFoundError`` when gone).
            PodFormatError: it is not a pod object.
        """
        return PodView.from_object(self._kube.get_pod(namespace, name))

    def _bind(self, namespace: str, name: str, uid: str, node: str, *, with_phase: bool) -> None:
        """Create the Binding; for a pod with devices it also sets ``bind-phase=allocating``.

        The API server merges a Binding's annotations into the pod in the same write that sets
        ``spec.nodeName``, so the pod is never bound without them (HAMi patches them first, one
        request more per pod, for the same guarantee).
        """
        annotations = None
        if with_phase:
            stamp = str(int(self._clock().timestamp()))
            annotations = {codec.BIND_PHASE: codec.BIND_PHASE_ALLOCATING, codec.BIND_TIME: stamp}
        try:
            self._kube.bind_pod(namespace, name, node, uid=uid, annotations=annotations)
        except ConflictError:
            # A retried bind whose first attempt went through (lost reply) is a success.
            if self._read(namespace, name).node_name != node:
                raise

    # --- the node lock --------------------------------------------------------------------------------

    def _acquire(self, node: str, namespace: str, name: str) -> None:
        started = self._monotonic()
        deadline = started + self._lock_wait
        try:
            while True:
                with self._changed:
                    version = self._versions.get(node, 0)
                try:
                    self._lock.acquire(
                        node,
                        namespace,
                        name,
                        holder_gone=self._holder_gone,
                        known=self._cache.node_metadata(node),
                    )
                    return
                except LockHeldError as err:
                    remaining = deadline - self._monotonic()
                    if remaining <= 0:
                        raise LockError(f"{err}; gave up after waiting {self._lock_wait:g}s") from err
                with self._changed:
                    if self._versions.get(node, 0) == version:
                        self._changed.wait(min(remaining, _RECHECK))
        finally:
            if self._observe_lock_wait is not None:
                self._observe_lock_wait(self._monotonic() - started)

    def _vendor_annotations(self, node: str, booked: PodAllocation) -> tuple[str, ...]:
        """Set the node annotations the pod's backends add at bind (vendor locks); returns what
        :attr:`DeviceBackend.released_node_annotations` says to remove if the bind fails.

        The node is read afresh (a vendor lock released a moment ago may not be in the cache yet),
        only for pods of backends that add any.

        Raises:
            LockError: a vendor lock is held for another pod.
            KubeError: the node could not be read or patched.
        """
        backends = [
            self._backends[name]
            for name in sorted(booked.bookings)
            if type(self._backends[name]).bind_node_annotations is not DeviceBackend.bind_node_annotations
        ]
        if not backends:
            return ()
        current = (self._kube.get_node(node).get("metadata") or {}).get("annotations") or {}
        now = self._clock()
        wanted: dict[str, str] = {}
        released: list[str] = []
        for backend in backends:
            wanted.update(backend.bind_node_annotations(current, now))
            released.extend(backend.released_node_annotations)
        if wanted:
            self._kube.patch_node(node, {"metadata": {"annotations": wanted}})
        return tuple(key for key in released if key in wanted)

    def _holder_gone(self, namespace: str, name: str) -> bool:
        state = self._cache.pod(namespace, name)
        if state is not None:
            return state.terminal or state.deleting or state.bind_phase in _DONE_PHASES
        try:
            return _done(self._read(namespace, name))
        except NotFoundError:
            return True
        except HamiError:  # unreadable: assume the holder still needs the lock
            return False

    # --- failure ------------------------------------------------------------------------------------

    def _fail(
        self,
        namespace: str,
        name: str,
        uid: str,
        node: str,
        booked: PodAllocation | None,
        locked: bool,
        err: Exception,
        vendor_keys: tuple[str, ...] = (),
    ) -> None:
        if vendor_keys:
            try:
                self._kube.patch_node(node, {"metadata": {"annotations": dict.fromkeys(vendor_keys)}})
            except HamiError as release_err:
                _log.warning(
                    "bind of %s/%s failed and %s on %s could not be removed: %s",
                    namespace,
                    name,
                    ", ".join(vendor_keys),
                    node,
                    release_err,
                )
        if locked:
            try:
                self._lock.release(node, namespace, name)
            except HamiError as release_err:
                _log.warning(
                    "bind of %s/%s failed and its node lock on %s could not be released: %s",
                    namespace,
                    name,
                    node,
                    release_err,
                )
        if booked is not None and not self._bound(namespace, name):
            self._clean(namespace, name)
            changes = self._cache.forget(uid)
            if self._on_freed is not None:
                self._on_freed(changes)
        self._event(namespace, name, uid, "Warning", "BindingFailed", f"binding to node {node} failed: {err}")

    def _bound(self, namespace: str, name: str) -> bool:
        try:
            return bool(self._read(namespace, name).node_name)
        except NotFoundError:
            return False
        except HamiError:
            return True  # unknown: keep the allocation rather than risk freeing devices in use

    def _clean(self, namespace: str, name: str) -> None:
        """Remove the pod's allocation and bind annotations, so nothing counts it any more."""
        annotations: dict[str, None] = dict.fromkeys(
            (codec.VGPU_NODE, codec.VGPU_TIME, codec.BIND_PHASE, codec.BIND_TIME)
        )
        for backend in self._backends.values():
            annotations[backend.keys.to_allocate] = None
            annotations[backend.keys.allocated] = None
        try:
            self._kube.patch_pod(
                namespace, name, {"metadata": {"annotations": annotations, "labels": {codec.VGPU_NODE: None}}}
            )
        except NotFoundError:
            return
        except KubeError as err:
            _log.warning(
                "cannot remove the allocation of %s/%s after a failed bind: %s", namespace, name, err
            )

    def _event(self, namespace: str, name: str, uid: str, kind: str, reason: str, message: str) -> None:
        if self._recorder is not None:
            ref = ObjectRef(kind="Pod", name=name, namespace=namespace, uid=uid)
            self._recorder.record(ref, "Normal" if kind == "Normal" else "Warning", reason, message)
