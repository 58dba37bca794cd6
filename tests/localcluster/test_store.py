"""The store: one resourceVersion counter, optimistic updates, history ring and watch queues."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from hami_core.localcluster.resources import RESOURCES
from hami_core.localcluster.resources import require
from hami_core.localcluster.statuses import ApiError
from hami_core.localcluster.store import Event
from hami_core.localcluster.store import SnapshotWriter
from hami_core.localcluster.store import Store
from hami_core.localcluster.store import Watcher

CM = require("", "v1", "configmaps")
PODS = require("", "v1", "pods")


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "data": dict(data)}


def set_data(**data: str) -> Any:
    def mutate(obj: dict[str, Any]) -> dict[str, Any]:
        obj["data"] = obj.get("data", {}) | data
        return obj

    return mutate


def drain(watcher: Watcher) -> list[Event]:
    events = list(watcher.replay)
    while True:
        try:
            item = watcher.queue.get_nowait()
        except queue.Empty:
            return events
        assert item is not None
        events.append(item)


@pytest.fixture
def store() -> Store:
    return Store(RESOURCES, history_size=8)


def test_every_commit_takes_the_next_cluster_wide_resource_version(store: Store) -> None:
    a = store.create(CM, cm("a"))
    b = store.create(PODS, {"metadata": {"name": "p", "namespace": "ns"}})
    c = store.update(CM, ("ns", "a"), set_data(x="1"))
    assert [o["metadata"]["resourceVersion"] for o in (a, b, c)] == ["1", "2", "3"]
    assert store.resource_version == 3


def test_creating_an_existing_key_is_already_exists(store: Store) -> None:
    store.create(CM, cm("a"))
    with pytest.raises(ApiError, match='configmaps "a" already exists') as caught:
        store.create(CM, cm("a"))
    assert caught.value.code == 409
    assert store.resource_version == 1


def test_updating_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(ApiError, match='configmaps "a" not found'):
        store.update(CM, ("ns", "a"), set_data(x="1"))


def test_an_update_that_changes_nothing_commits_nothing(store: Store) -> None:
    store.create(CM, cm("a", x="1"))
    store.update(CM, ("ns", "a"), set_data(x="1"))
    assert store.resource_version == 1


def test_dry_run_writes_commit_nothing(store: Store) -> None:
    store.create(CM, cm("a"), dry_run=True)
    assert store.get(CM, ("ns", "a")) is None
    store.create(CM, cm("a"))
    assert store.update(CM, ("ns", "a"), set_data(x="1"), dry_run=True)["data"] == {"x": "1"}
    assert store.get(CM, ("ns", "a")) == cm("a") | {
        "metadata": cm("a")["metadata"] | {"resourceVersion": "1"}
    }


def test_an_update_that_lost_a_race_is_recomputed_on_the_new_object(store: Store) -> None:
    store.create(CM, cm("a"))
    calls = []

    def racing(obj: dict[str, Any]) -> dict[str, Any]:
        calls.append(dict(obj.get("data", {})))
        if len(calls) == 1:  # another writer commits between our read and our commit
            store.update(CM, ("ns", "a"), set_data(other="1"))
        return set_data(mine="1")(obj)

    result = store.update(CM, ("ns", "a"), racing)
    assert calls == [{}, {"other": "1"}]
    assert result["data"] == {"other": "1", "mine": "1"}


def test_stored_objects_are_never_mutated_by_updates(store: Store) -> None:
    before = store.create(CM, cm("a"))
    store.update(CM, ("ns", "a"), set_data(x="1"))
    assert before["data"] == {}
    assert before["metadata"]["resourceVersion"] == "1"


def test_deletion_timestamp_without_finalizers_removes_the_object(store: Store) -> None:
    store.create(CM, cm("a"))
    watcher = store.watch(CM, 1)
    store.update(CM, ("ns", "a"), lambda o: o | {"metadata": o["metadata"] | {"deletionTimestamp": "t"}})
    assert store.get(CM, ("ns", "a")) is None
    assert [e.type for e in drain(watcher)] == ["DELETED"]


def test_finalizers_hold_a_deleted_object_until_they_are_removed(store: Store) -> None:
    obj = cm("a")
    obj["metadata"]["finalizers"] = ["f"]
    store.create(CM, obj)
    watcher = store.watch(CM, 1)
    store.update(CM, ("ns", "a"), lambda o: o | {"metadata": o["metadata"] | {"deletionTimestamp": "t"}})
    assert store.get(CM, ("ns", "a")) is not None
    store.update(CM, ("ns", "a"), lambda o: o | {"metadata": o["metadata"] | {"finalizers": []}})
    assert store.get(CM, ("ns", "a")) is None
    assert [e.type for e in drain(watcher)] == ["MODIFIED", "DELETED"]


def test_watch_without_a_version_starts_with_the_current_objects(store: Store) -> None:
    store.create(CM, cm("b"))
    store.create(CM, cm("a"))
    watcher = store.watch(CM, None)
    store.update(CM, ("ns", "a"), set_data(x="1"))
    events = drain(watcher)
    assert [(e.type, e.obj["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
    ]
    assert events[-1].old is not None
    assert events[-1].old["data"] == {}


def test_watch_from_a_version_replays_later_events_of_that_resource_only(store: Store) -> None:
    store.create(CM, cm("a"))
    store.create(PODS, {"metadata": {"name": "p", "namespace": "ns"}})
    store.update(CM, ("ns", "a"), set_data(x="1"))
    watcher = store.watch(CM, 1)
    store.create(CM, cm("b"))
    assert [(e.type, e.rv) for e in drain(watcher)] == [("MODIFIED", 3), ("ADDED", 4)]


def test_a_version_older_than_the_history_ring_is_gone(store: Store) -> None:
    store.create(CM, cm("a"))
    for i in range(10):
        store.update(CM, ("ns", "a"), set_data(i=str(i)))
    with pytest.raises(ApiError, match=r"too old resource version: 1 \(3\)") as caught:
        store.watch(CM, 1)
    assert caught.value.code == 410
    assert [e.rv for e in drain(store.watch(CM, 3))] == list(range(4, 12))


def test_a_bookmark_is_only_safe_once_the_queue_is_drained(store: Store) -> None:
    watcher = store.watch(CM, None)
    store.create(CM, cm("a"))
    assert watcher.bookmark_rv() is None
    watcher.queue.get_nowait()
    assert watcher.bookmark_rv() == 1


def test_closed_watchers_receive_nothing_more(store: Store) -> None:
    watcher = store.watch(CM, None)
    watcher.close()
    store.create(CM, cm("a"))
    assert watcher.queue.empty()


def test_closing_the_store_ends_every_watch(store: Store) -> None:
    before = store.watch(CM, None)
    store.close()
    after = store.watch(CM, None)
    assert before.queue.get_nowait() is None
    assert after.queue.get_nowait() is None


def test_concurrent_writers_produce_gapless_ordered_events() -> None:
    big = Store(RESOURCES, history_size=10_000)
    watcher = big.watch(CM, None)
    for i in range(4):
        big.create(CM, cm(f"c{i}", n="0"))

    def bump(name: str) -> None:
        for _ in range(50):
            big.update(CM, ("ns", name), lambda o: o | {"data": {"n": str(int(o["data"]["n"]) + 1)}})

    threads = [threading.Thread(target=bump, args=(f"c{i % 4}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rvs = [e.rv for e in drain(watcher)]
    assert rvs == list(range(1, 4 + 8 * 50 + 1))
    assert all(o["data"]["n"] == "100" for o in big.list_objects(CM)[0])


def test_a_snapshot_restores_objects_and_resource_version(store: Store) -> None:
    store.create(CM, cm("a", x="1"))
    store.create(PODS, {"metadata": {"name": "p", "namespace": "ns"}})
    restored = Store(RESOURCES)
    restored.restore(json.loads(json.dumps(store.dump())))
    assert restored.get(CM, ("ns", "a")) == store.get(CM, ("ns", "a"))
    assert restored.resource_version == 2
    assert restored.create(CM, cm("b"))["metadata"]["resourceVersion"] == "3"
    with pytest.raises(ApiError) as caught:
        restored.watch(CM, 1)
    assert caught.value.code == 410


def test_the_snapshot_writer_follows_commits_and_writes_on_stop(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    writer = SnapshotWriter(store, path, delay=0.01)
    writer.start()
    store.create(CM, cm("a"))
    store.create(CM, cm("b"))
    writer.stop()
    snapshot = SnapshotWriter.load(path)
    assert snapshot is not None
    assert snapshot["resourceVersion"] == "2"
    assert [o["metadata"]["name"] for o in snapshot["objects"]["v1/configmaps"]] == ["a", "b"]
    assert SnapshotWriter.load(tmp_path / "absent.json") is None
