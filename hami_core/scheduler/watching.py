"""The I/O that feeds the cache: node and pod informers, and the housekeeping loop.

Each informer lists, then watches from the list's resourceVersion, and relists after ``410 Gone`` or
any failure, handing the cache whole lists (:meth:`~hami_core.scheduler.cache.ClusterCache.replace_nodes`)
and single events; so after a restart the cache is rebuilt from the API alone. Each pod is read
into a :class:`~hami_core.pods.PodView` once, here, as it enters; a pod that is not a pod object is
logged and left out. The housekeeping thread
runs every ``resync`` seconds (HAMi's 15 s register loop) and whenever handshakes are due: it re-applies
the handshake rule (a ``Requesting_`` ages out), writes the ``Requesting_<now>`` handshakes the cache
asked for (leader only), and re-reads ResourceQuotas (the client has no quota watch). Every
:class:`~hami_core.scheduler.cache.Changes` goes to one ``dispatch`` callback. No decisions here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.errors import KubeError
from hami_core.errors import PodFormatError
from hami_core.kube.client import KubeClient
from hami_core.kube.informer import Informer
from hami_core.kube.informer import listed
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.looping import Loop
from hami_core.pods import PodView
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.changes import EventType
from hami_core.scheduler.quota import limits_from_quotas

_log = logging.getLogger(__name__)

#: HAMi's register loop period.
RESYNC_SECONDS = 15.0

#: Seconds before an informer relists after a failure.
RETRY_SECONDS = 0.5


class ClusterWatch:
    """Keeps a :class:`ClusterCache` current from the API.

    Args:
        kube: the API client.
        cache: the cache to feed.
        backends: the loaded backends (their handshake keys, quota resources).
        dispatch: receives every change the cache reports.
        is_leader: only the leader writes handshakes.
        node_selector: only nodes with these labels are watched.
        clock: the current time (handshake ages and values).
        resync: seconds between housekeeping rounds.
    """

    def __init__(
        self,
        kube: KubeClient,
        cache: ClusterCache,
        backends: Sequence[DeviceBackend],
        dispatch: Callable[[Changes], None],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        node_selector: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        resync: float = RESYNC_SECONDS,
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._backends = {backend.name: backend for backend in backends}
        self._dispatch = dispatch
        self._is_leader = is_leader
        self._clock = clock
        selector = ",".join(f"{key}={value}" for key, value in sorted((node_selector or {}).items()))
        self._nodes: Informer[Node] = Informer(
            "nodes",
            lambda: listed(kube.list_nodes(label_selector=selector)),
            lambda version: kube.watch_nodes(label_selector=selector, resource_version=version),
            lambda event, node, _: self._dispatch(cache.apply_node(event, node, self._clock())),
            on_list=lambda items: self._dispatch(cache.replace_nodes(items, self._clock())),
            retry_delay=RETRY_SECONDS,
        )
        self._pods: Informer[Pod] = Informer(
            "pods",
            lambda: listed(kube.list_pods()),
            lambda version: kube.watch_pods(resource_version=version),
            self._pod_event,
            on_list=lambda items: self._dispatch(cache.replace_pods(_views(items))),
            retry_delay=RETRY_SECONDS,
        )
        self._lock = threading.Lock()
        self._handshakes: set[tuple[str, str]] = set()
        self._loop = Loop(
            "hami-housekeeping",
            self._housekeeping_round,
            interval=resync,
            retry=min(1.0, resync),
            max_retry=resync,
            log=_log,
        )

    def _pod_event(self, event: EventType, pod: Pod, _: object) -> None:
        view = _view(pod)
        if view is not None:
            self._dispatch(self._cache.apply_pod(event, view))

    @property
    def synced(self) -> bool:
        """Both informers have delivered their first list."""
        return self._nodes.synced and self._pods.synced

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until both informers delivered their first list, at most ``timeout`` seconds in all."""
        if timeout is None:
            return self._nodes.wait_synced() and self._pods.wait_synced()
        deadline = time.monotonic() + timeout
        return self._nodes.wait_synced(timeout) and self._pods.wait_synced(
            max(0.0, deadline - time.monotonic())
        )

    def start(self) -> None:
        self._nodes.start()
        self._pods.start()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._nodes.stop()
        self._pods.stop()

    def wake(self) -> None:
        """Run a housekeeping round now (e.g. on becoming the leader)."""
        self._loop.wake()

    def request_handshakes(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Queue ``Requesting_<now>`` writes for (node, backend) pairs; the housekeeping thread writes."""
        with self._lock:
            self._handshakes.update(pairs)
        self._loop.wake()

    def housekeeping(self) -> None:
        """One round: age handshakes, write the due ones (leader only), re-read quotas."""
        self._dispatch(self._cache.assess_health(self._clock()))
        self._write_handshakes()
        try:
            quotas = self._kube.list_resource_quotas()
        except KubeError as err:
            _log.info("cannot list resource quotas: %s", err)
        else:
            self._dispatch(
                self._cache.set_quotas(
                    limits_from_quotas(quotas.get("items") or [], list(self._backends.values()))
                )
            )

    def _write_handshakes(self) -> None:
        with self._lock:
            pending, self._handshakes = self._handshakes, set()
        if not pending or not self._is_leader():
            return
        value = codec.format_handshake_requesting(self._clock())
        for node, backend in sorted(pending):
            key = self._backends[backend].keys.handshake
            try:
                self._kube.patch_node(node, {"metadata": {"annotations": {key: value}}})
            except KubeError as err:
                _log.info("cannot write the handshake of node %s (%s): %s", node, backend, err)

    def _housekeeping_round(self) -> float | None:
        self.housekeeping()
        return None  # the next round after ``resync``, or when woken


def _view(pod: Pod) -> PodView | None:
    """The pod read once at the edge; ``None`` (logged) for an object that is not a pod."""
    try:
        return PodView.from_object(pod)
    except PodFormatError as err:
        _log.warning("skipping a pod event the cache cannot read: %s", err)
        return None


def _views(pods: Iterable[Pod]) -> Iterator[PodView]:
    for pod in pods:
        view = _view(pod)
        if view is not None:
            yield view
