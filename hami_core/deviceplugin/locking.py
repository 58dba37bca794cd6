"""The device plugin's view of the node lock ``hami.io/mutex.lock``: whose it is, and whether it is stale.

The scheduler's ``/bind`` takes the lock and the device plugin gives it back when the pod's allocation
ends (``specs/hami-wire.md`` 1.4.4, 3.8); taking and releasing (owner-checked, guarded by the node's
resourceVersion) is :class:`hami_core.kube.nodelock.NodeLock`'s job. :func:`stale_lock_action` decides,
without I/O, whether a lock left on this node by an allocation that can no longer finish (its pod
gone, finished or failed, its phase settled, or the lock older than the expiry) should go; the
registration loop applies it, so a plugin that was killed mid-allocation clears the lock when it
comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from hami_core import codec
from hami_core.codec import NodeLockState
from hami_core.errors import CodecError
from hami_core.kube.nodelock import node_lock_state
from hami_core.kube.objects import Node
from hami_core.pods import PodView

#: What to do with a lock: leave it, remove it, or mark its pod's allocation failed and remove it.
LockAction = Literal["keep", "release", "fail"]


def pod_lock(node: Node) -> NodeLockState | None:
    """The node's lock when it names a pod; ``None`` when unlocked, or for a legacy or unreadable lock,
    which only the scheduler's expiry clears."""
    try:
        state = node_lock_state(node)
    except CodecError:
        return None
    return state if state is not None and state.owner is not None else None


def stale_lock_action(
    lock: NodeLockState, pod: PodView | None, now: datetime, expiry_seconds: float
) -> LockAction:
    """Whether a lock on this node belongs to an allocation that can no longer finish.

    Args:
        lock: the node's lock.
        pod: the pod the lock names, ``None`` when it no longer exists.
        now: the current time.
        expiry_seconds: the scheduler's node lock timeout.

    Returns:
        ``fail`` when the pod is finished, failed or being deleted while its bind-phase still says
        ``allocating`` (a plugin died mid-allocation and the kubelet gave up); ``release`` when the
        pod is gone, its bind-phase was settled after this lock was taken, or the lock expired;
        ``keep`` otherwise, including for legacy locks, which only the scheduler's expiry clears.
    """
    if lock.owner is None:
        return "keep"
    if pod is None:
        return "release"
    phase = pod.annotations.get(codec.BIND_PHASE, "")
    if pod.finished or pod.deleting:
        return "fail" if phase == codec.BIND_PHASE_ALLOCATING else "release"
    locked_at = lock.taken
    if phase in (codec.BIND_PHASE_SUCCESS, codec.BIND_PHASE_FAILED) and _bound_since(pod, locked_at):
        return "release"
    if (now - locked_at).total_seconds() > expiry_seconds:
        return "release"
    return "keep"


def _bound_since(pod: PodView, locked_at: datetime) -> bool:
    """Whether the pod's bind-time is from this lock's bind: ``/bind`` locks first, then writes it.

    A settled phase with an older bind-time is a previous attempt's, and the scheduler may be
    binding the pod again right now.
    """
    try:
        bound = int(pod.annotations.get(codec.BIND_TIME, ""))
    except ValueError:
        return False
    return bound >= int(locked_at.timestamp())
