"""``hami top``'s live loop: list, then follow node and pod watches; every event redraws the view,
and the monitors are scraped again every ``refresh`` seconds (their figures change without events)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from hami_core.backend import DeviceBackend
from hami_core.errors import KubeError
from hami_core.kube.client import KubeClient
from hami_core.kube.client import WatchExpiredError
from hami_core.localcluster.sharing import sharing_report
from hami_core.top.state import ClusterState
from hami_core.top.usage import UsageReport
from hami_core.top.view import SortKey
from hami_core.top.view import TopView
from hami_core.top.view import build_view

Event = tuple[str, str, Any]


def snapshot_view(
    state: ClusterState,
    backends: Sequence[DeviceBackend],
    usage: UsageReport | None,
    *,
    namespace: str | None,
    sort: SortKey,
) -> TopView:
    report = sharing_report(list(state.nodes.values()), list(state.pods.values()), backends)
    return build_view(report, usage, namespace=namespace, sort=sort)


def _follow(kube: KubeClient, kind: str, events: queue.Queue[Event], stop: threading.Event) -> None:
    """List then watch ``kind`` until ``stop``; a watch that expires is followed by a new listing."""
    while not stop.is_set():
        try:
            listing = kube.list_nodes() if kind == "node" else kube.list_pods()
            events.put((kind, "LISTED", listing["items"]))
            version = listing["metadata"]["resourceVersion"]
            watch = (
                kube.watch_nodes(resource_version=version, timeout_seconds=300)
                if kind == "node"
                else kube.watch_pods(resource_version=version, timeout_seconds=300)
            )
            try:
                for event, obj in watch:
                    if stop.is_set():
                        break
                    events.put((kind, event, obj))
            finally:
                watch.stop()
        except WatchExpiredError:
            continue
        except KubeError as err:
            events.put((kind, "ERROR", str(err)))
            stop.wait(2.0)


def follow(
    kube: KubeClient,
    draw: Callable[[ClusterState, bool], None],
    scrape: Callable[[], None],
    stop: threading.Event,
    refresh: float,
) -> None:
    """Feed ``draw(state, rescraped)`` after every event batch until ``stop`` is set."""
    events: queue.Queue[Event] = queue.Queue()
    threads = [
        threading.Thread(target=_follow, args=(kube, kind, events, stop), daemon=True)
        for kind in ("node", "pod")
    ]
    for thread in threads:
        thread.start()
    state = ClusterState()
    listed: set[str] = set()
    while not stop.is_set():
        try:
            kind, event, obj = events.get(timeout=refresh)
        except queue.Empty:
            scrape()
            draw(state, True)
            continue
        while True:
            if event == "LISTED":
                state.replace(kind, obj)
                listed.add(kind)
            elif event != "ERROR":
                state.apply(kind, event, obj)
            try:
                kind, event, obj = events.get_nowait()
            except queue.Empty:
                break
        if len(listed) == 2:
            draw(state, False)
