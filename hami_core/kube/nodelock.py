"""HAMi's node lock ``hami.io/mutex.lock``: take, release and read it (``specs/hami-wire.md`` 1.4.4, 3.8).

The lock bridges the scheduler's ``/bind`` and the device plugin's ``Allocate``: kubelet tells the plugin
only device ids, so the plugin finds the pod it serves as the one named in the lock of its node. The
scheduler takes it in ``/bind``; the device plugin releases it after the pod's last container is
allocated. Every write is a JSON merge patch carrying the node's ``resourceVersion``, so two writers
never both believe they hold it.

Compared with HAMi's ``nodelock`` package the rules are the same (re-entrant for the same pod, expiry
after a configurable time, default 5 minutes) with two differences: a lock whose holder is gone is
taken over at once (the caller says what "gone" means), and a lock value that does not parse is
treated as expired instead of blocking the node forever. Time comes from an injectable clock. This
module does no waiting between contended attempts: callers decide whether and how long to wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from hami_core import codec
from hami_core.codec import NodeLockState
from hami_core.errors import CodecError
from hami_core.errors import ConflictError
from hami_core.errors import LockError
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Node

_log = logging.getLogger(__name__)

#: HAMi's ``--node-lock-timeout`` default: a lock older than this is stale.
DEFAULT_EXPIRY_SECONDS = 300.0
#: Attempts of one take or release when writes race (HAMi retries 5 times).
DEFAULT_ATTEMPTS = 5

#: Called as ``holder_gone(namespace, name)``: whether the pod named in a lock no longer needs it.
HolderGone = Callable[[str, str], bool]


def utc_now() -> datetime:
    """The default clock: an aware UTC datetime."""
    return datetime.now(UTC)


def lock_state(annotations: Mapping[str, str]) -> NodeLockState | None:
    """The lock a node's annotations hold, ``None`` when unlocked.

    Raises:
        CodecError: the value is not in HAMi's format.
    """
    value = annotations.get(codec.NODE_LOCK)
    return codec.parse_node_lock(value) if value else None


def node_lock_state(node: Node) -> NodeLockState | None:
    """The lock ``node`` holds, ``None`` when unlocked.

    Raises:
        CodecError: the value is not in HAMi's format.
    """
    return lock_state((node.get("metadata") or {}).get("annotations") or {})


class LockHeldError(LockError):
    """The lock is held by another pod that still needs it (contention, not a failure of the API)."""

    def __init__(self, message: str, *, holder: NodeLockState) -> None:
        super().__init__(message)
        self.holder = holder


class NodeLock:
    """Takes and releases the node lock through a :class:`~hami_core.kube.client.KubeClient`.

    Args:
        kube: the API client.
        expiry: seconds after which a lock is stale and may be taken over by anyone.
        clock: the current time, as an aware datetime (injectable for tests).
        attempts: how often a write that lost a resourceVersion race is retried.
        backoff: seconds slept before the second attempt, doubling after each.
        sleep: how to sleep (injectable for tests).
    """

    def __init__(
        self,
        kube: KubeClient,
        *,
        expiry: float = DEFAULT_EXPIRY_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = 0.01,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._kube = kube
        self.expiry = expiry
        self._clock = clock
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._sleep = sleep

    def acquire(
        self,
        node: str,
        namespace: str,
        name: str,
        *,
        holder_gone: HolderGone | None = None,
        known: Node | None = None,
    ) -> None:
        """Take the lock of ``node`` for pod ``namespace/name``; succeeds at once if the pod holds it.

        A lock older than :attr:`expiry`, one that does not parse, or one whose holder
        ``holder_gone`` reports gone is replaced in the same conditional write.

        Args:
            node: the node's name.
            namespace: the pod's namespace.
            name: the pod's name.
            holder_gone: tells whether the pod named in a live lock no longer needs it.
            known: the node as a watch last showed it (metadata with annotations and
                resourceVersion); when it shows no lock the first attempt writes against it
                instead of reading the node, and a stale copy only costs the read it saved.

        Raises:
            LockHeldError: another pod holds a live lock.
            LockError: the lock could not be written after the retries.
            KubeError: the node cannot be read or written (``NotFoundError`` when it is gone).
        """
        delay = self._backoff
        for attempt in range(self._attempts):
            unlocked = known is not None and not ((known.get("metadata") or {}).get("annotations") or {}).get(
                codec.NODE_LOCK
            )
            current = known if known is not None and unlocked and attempt == 0 else self._kube.get_node(node)
            metadata = current.get("metadata") or {}
            annotations = metadata.get("annotations") or {}
            try:
                state = lock_state(annotations)
            except CodecError as err:
                _log.warning(
                    "node %s: replacing unreadable lock %r: %s", node, annotations.get(codec.NODE_LOCK), err
                )
                state = None
            if state is not None:
                if state.owned_by(namespace, name):
                    return
                self._check_replaceable(node, state, holder_gone)
            value = codec.format_node_lock(self._clock(), namespace, name)
            try:
                self._kube.patch_node(
                    node,
                    {"metadata": {"annotations": {codec.NODE_LOCK: value}}},
                    resource_version=str(metadata.get("resourceVersion", "")),
                )
                return
            except ConflictError:
                if current is known:
                    continue  # only the cached copy was stale: read the node and try again at once
                if attempt + 1 < self._attempts:
                    self._sleep(delay)
                    delay *= 2
        raise LockError(
            f"node {node}: could not set the node lock for {namespace}/{name} after {self._attempts} attempts"
        )

    def _check_replaceable(self, node: str, state: NodeLockState, holder_gone: HolderGone | None) -> None:
        age = self._clock() - state.taken
        if age > timedelta(seconds=self.expiry):
            _log.info(
                "node %s: taking over a lock older than %ss (%s/%s)",
                node,
                self.expiry,
                state.namespace,
                state.name,
            )
            return
        if state.name and holder_gone is not None and holder_gone(state.namespace, state.name):
            _log.info(
                "node %s: taking over the lock of %s/%s, which no longer needs it",
                node,
                state.namespace,
                state.name,
            )
            return
        holder = f"{state.namespace}/{state.name}" if state.name else "a legacy lock"
        raise LockHeldError(
            f"node {node} is locked by {holder} since {state.taken.isoformat()} "
            f"(stale after {self.expiry:g}s)",
            holder=state,
        )

    def release(self, node: str, namespace: str, name: str, *, force: bool = False) -> bool:
        """Remove the lock of ``node`` if pod ``namespace/name`` holds it (any holder with ``force``).

        Returns:
            Whether this call removed a lock.

        Raises:
            LockError: the release kept losing write races.
            KubeError: the node cannot be read or written.
        """
        delay = self._backoff
        for attempt in range(self._attempts):
            current = self._kube.get_node(node)
            metadata = current.get("metadata") or {}
            value = (metadata.get("annotations") or {}).get(codec.NODE_LOCK)
            if not value or not (force or codec.node_lock_owned_by(value, namespace, name)):
                return False
            try:
                self._kube.patch_node(
                    node,
                    {"metadata": {"annotations": {codec.NODE_LOCK: None}}},
                    resource_version=str(metadata.get("resourceVersion", "")),
                )
                return True
            except ConflictError:
                if attempt + 1 < self._attempts:
                    self._sleep(delay)
                    delay *= 2
        raise LockError(
            f"node {node}: could not release the node lock of {namespace}/{name} after {self._attempts} attempts"
        )
