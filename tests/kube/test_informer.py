"""The list-then-watch loop: synthesised events, relist after 410 Gone, prompt stop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hami_core.kube import objects
from hami_core.kube.client import WatchExpiredError
from hami_core.kube.client import WatchStream
from hami_core.kube.informer import Informer
from hami_core.kube.informer import listed
from hami_core.kube.informer import object_key
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.localcluster.polling import eventually


@pytest.fixture
def seen(fake_kube: FakeKube) -> Iterator[list[tuple[str, str]]]:
    events: list[tuple[str, str]] = []
    informer: Informer[objects.Node] = Informer(
        "nodes",
        lambda: listed(fake_kube.list_nodes()),
        lambda version: fake_kube.watch_nodes(resource_version=version),
        lambda event, node, old: events.append((event, node["metadata"]["name"])),
    )
    fake_kube.create_node(make_node("before"))
    informer.start()
    assert informer.wait_synced(5)
    yield events
    informer.stop()


def test_the_first_list_arrives_as_added_then_changes_follow(
    fake_kube: FakeKube, seen: list[tuple[str, str]]
) -> None:
    fake_kube.create_node(make_node("after"))
    fake_kube.patch_node("after", {"metadata": {"labels": {"a": "b"}}})
    fake_kube.delete_node("before")
    eventually(lambda: len(seen) == 4)
    assert seen == [("ADDED", "before"), ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "before")]


def test_a_relist_after_410_reports_what_changed_meanwhile() -> None:
    fake_kube = FakeKube()
    fake_kube.create_node(make_node("stays"))
    fake_kube.create_node(make_node("goes"))
    events: list[tuple[str, str]] = []
    watches = iter(["expire"])

    def watcher(version: str) -> WatchStream[objects.Node]:
        if next(watches, None) == "expire":
            # Things change while the watch is down, then the server says 410.
            fake_kube.delete_node("goes")
            fake_kube.create_node(make_node("new"))
            raise WatchExpiredError("too old resource version", status=410)
        return fake_kube.watch_nodes(resource_version=version)

    informer: Informer[objects.Node] = Informer(
        "nodes",
        lambda: listed(fake_kube.list_nodes()),
        watcher,
        lambda event, node, old: events.append((event, node["metadata"]["name"])),
    )
    informer.start()
    try:
        eventually(lambda: len(events) == 4)
    finally:
        informer.stop()
    assert events == [("ADDED", "goes"), ("ADDED", "stays"), ("DELETED", "goes"), ("ADDED", "new")]
    assert [object_key(n) for n in informer.items()] == ["new", "stays"]


def test_a_failing_handler_does_not_stop_the_informer(fake_kube: FakeKube) -> None:
    names: list[str] = []

    def handler(event: str, pod: objects.Pod, old: objects.Pod | None) -> None:
        if pod["metadata"]["name"] == "bad":
            raise RuntimeError("boom")
        names.append(pod["metadata"]["name"])

    informer: Informer[objects.Pod] = Informer(
        "pods",
        lambda: listed(fake_kube.list_pods()),
        lambda v: fake_kube.watch_pods(resource_version=v),
        handler,
    )
    informer.start()
    try:
        fake_kube.create_pod("default", make_pod("bad"))
        fake_kube.create_pod("default", make_pod("good"))
        eventually(lambda: names == ["good"])
    finally:
        informer.stop()
    assert object_key(informer.get("default/good") or {}) == "default/good"


def test_a_failing_list_handler_is_logged_and_the_informer_relists(
    fake_kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    lists: list[list[str]] = []

    def on_list(items: list[objects.Node]) -> None:
        if not lists:
            lists.append([])
            raise RuntimeError("bug in on_list")
        lists.append([node["metadata"]["name"] for node in items])

    fake_kube.create_node(make_node("n1"))
    informer: Informer[objects.Node] = Informer(
        "nodes",
        lambda: listed(fake_kube.list_nodes()),
        lambda v: fake_kube.watch_nodes(resource_version=v),
        lambda event, node, old: None,
        on_list=on_list,
        retry_delay=0.01,
    )
    informer.start()
    try:
        assert informer.wait_synced(5)
    finally:
        informer.stop()
    assert lists == [[], ["n1"]]
    assert "informer-nodes failed (1 in a row)" in caplog.text
