"""The watches and housekeeping that keep the cache current, rebuilt from the API after a restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from hami_core import codec
from hami_core.kube.client import WatchExpiredError
from hami_core.kube.informer import Informer
from hami_core.scheduler import scoring
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.changes import Changes
from hami_core.scheduler.watching import ClusterWatch
from hami_core.testing.builders import make_node
from hami_core.testing.fake_kube import FakeKube
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import eventually
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import registered_node

NVIDIA = NvidiaLikeBackend()


class OneShotWatch:
    """A watch that expires once, then yields its events and ends when stopped."""

    def __init__(self, events: list[tuple[str, dict[str, Any]]], expire: bool) -> None:
        self.events = events
        self.expire = expire
        self.stopped = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.expire:
            raise WatchExpiredError("too old resource version", status=410)
        yield from self.events
        self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


def test_an_informer_with_on_list_relists_after_410_gone_and_then_follows_events() -> None:
    lists: list[list[str]] = []
    events: list[tuple[str, str]] = []
    watches = [
        OneShotWatch([], expire=True),
        OneShotWatch([("ADDED", {"metadata": {"name": "b", "resourceVersion": "3"}})], expire=False),
    ]
    informer: Informer[dict[str, Any]] = Informer(
        "test",
        lambda: ([{"metadata": {"name": "a"}}], "1"),
        lambda version: watches.pop(0) if watches else OneShotWatch([], expire=False),
        lambda event, obj, _: events.append((event, obj["metadata"]["name"])),
        on_list=lambda items: lists.append([item["metadata"]["name"] for item in items]),
    )
    informer.start()
    try:
        eventually(lambda: events == [("ADDED", "b")], what="the event after the relist")
    finally:
        informer.stop()
    assert lists == [["a"], ["a"]]
    assert informer.synced


def start_watch(kube: FakeKube, *, leader: bool = True) -> tuple[ClusterCache, ClusterWatch, list[Changes]]:
    policies = scoring.node_policies({p.name: p for p in scoring.BuiltinPolicies().hami_scoring_policies()})
    cache = ClusterCache([NVIDIA], policies)
    seen: list[Changes] = []
    holder: list[ClusterWatch] = []

    def dispatch(changes: Changes) -> None:
        seen.append(changes)
        if changes.handshakes:
            holder[0].request_handshakes(changes.handshakes)

    watch = ClusterWatch(
        kube, cache, [NVIDIA], dispatch, is_leader=lambda: leader, clock=lambda: NOW, resync=3600
    )
    holder.append(watch)
    watch.start()
    assert watch.wait_synced(5)
    return cache, watch, seen


def test_the_cache_follows_nodes_and_pods_added_after_the_first_list() -> None:
    kube = FakeKube()
    kube.create_node(registered_node("early", gpus("E", 1)))
    cache, watch, _ = start_watch(kube)
    try:
        assert cache.view("early") is not None
        kube.create_node(registered_node("late", gpus("L", 1)))
        eventually(lambda: cache.view("late") is not None, what="the late node in the cache")
    finally:
        watch.stop()


def test_the_leader_writes_the_handshake_of_a_node_that_has_none() -> None:
    kube = FakeKube()
    kube.create_node(
        make_node("n", annotations={NVIDIA.keys.register: codec.encode_node_devices(gpus("G", 1))})
    )
    _, watch, _ = start_watch(kube)
    try:
        eventually(
            lambda: (
                kube.get_node("n")["metadata"]["annotations"]
                .get(NVIDIA.keys.handshake, "")
                .startswith("Requesting_")
            ),
            what="the Requesting_ handshake",
        )
    finally:
        watch.stop()


def test_a_follower_writes_no_handshake() -> None:
    kube = FakeKube()
    kube.create_node(
        make_node("n", annotations={NVIDIA.keys.register: codec.encode_node_devices(gpus("G", 1))})
    )
    _, watch, _ = start_watch(kube, leader=False)
    try:
        watch.housekeeping()
    finally:
        watch.stop()
    assert NVIDIA.keys.handshake not in kube.get_node("n")["metadata"]["annotations"]


def test_housekeeping_reads_the_resource_quotas() -> None:
    kube = FakeKube()
    kube.create_resource_quota(
        "default", {"metadata": {"name": "q"}, "spec": {"hard": {f"limits.{MEM}": "4000"}}}
    )
    cache, watch, _ = start_watch(kube)
    try:
        eventually(lambda: cache.quotas.limit("default", "nvidia") is not None, what="the quota in the cache")
    finally:
        watch.stop()
    assert cache.quotas.limit("default", "nvidia").memory == 4000  # type: ignore[union-attr]


def test_a_restarted_scheduler_rebuilds_usage_from_the_pods_annotations() -> None:
    from hami_core.testing.builders import make_pod

    kube = FakeKube()
    kube.create_node(registered_node("n", gpus("G", 1)))
    kube.create_pod(
        "default",
        make_pod(
            "held",
            annotations={codec.VGPU_NODE: "n", NVIDIA.keys.allocated: "G-0,NVIDIA,3000,30:;"},
            node_name="n",
        ),
    )
    cache, watch, _ = start_watch(kube)
    watch.stop()
    view = cache.view("n")
    assert view is not None
    (device,) = view.devices["nvidia"]
    assert (device.used, device.usedmem, device.usedcores) == (1, 3000, 30)
