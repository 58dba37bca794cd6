"""The emulator's object store: one global resourceVersion, a history ring and watch queues.

Locking is fine-grained. Each resource type has its own table lock, held only for the
compare-and-commit of one write. A short commit lock orders resourceVersions, the history ring
and the fan-out, so every watcher's queue receives events in resourceVersion order, fed at
commit time (nothing polls). Updates follow kube-apiserver's GuaranteedUpdate: the new object is
computed on a private copy outside every lock and committed only if the stored object is still
the one read; otherwise it is recomputed. Stored objects are never mutated in place, so they are
shared freely with readers and watchers.

The store knows nothing of HTTP, defaults or admission; the registry does.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import attrs

from hami_core.localcluster import statuses
from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType
from hami_core.looping import Loop

_log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""


@attrs.frozen
class Event:
    """One committed change. ``old`` is the previous state (None for ADDED)."""

    type: EventType
    rt: ResourceType
    rv: int
    obj: JsonObj
    old: JsonObj | None = None


def key_of(obj: JsonObj) -> Key:
    """The store key of an object."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _rv_of(obj: JsonObj) -> int:
    return int(obj["metadata"]["resourceVersion"])


class _Table:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[Key, JsonObj] = {}


class Watcher:
    """One open watch on a resource type.

    ``replay`` holds the events owed before live ones (history since the requested
    resourceVersion, or synthetic ADDED events for the current objects). Live events arrive in
    the queue, fed by the commit path; a None in the queue means the store closed.
    """

    def __init__(self, store: Store, rt: ResourceType, replay: list[Event], start_rv: int) -> None:
        self.rt = rt
        self.replay = replay
        self.start_rv = start_rv
        """The resourceVersion at registration: every later event of ``rt`` reaches the queue."""
        self.queue: queue.Queue[Event | None] = queue.Queue()
        self._store = store

    def bookmark_rv(self) -> int | None:
        """A resourceVersion safe to resume from, or None while events are still queued."""
        return self._store._bookmark(self)

    def close(self) -> None:
        """Stop receiving events."""
        self._store._unregister(self)


class Store:
    """In-memory objects of the given resource types.

    Args:
        resources: the resource types to hold, one table each.
        history_size: how many recent events a watch can resume from; older
            resourceVersions get 410 Gone.
    """

    def __init__(self, resources: Iterable[ResourceType], *, history_size: int = 10_000) -> None:
        self._tables = {rt: _Table() for rt in resources}
        self._commit = threading.Lock()
        self._rv = 0
        self._compacted = 0
        self._history: deque[Event] = deque()
        self._history_size = history_size
        self._watchers: dict[ResourceType, set[Watcher]] = {rt: set() for rt in self._tables}
        self._closed = False
        self.changed = threading.Event()
        """Set after every commit; the snapshot writer clears it."""

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the latest commit."""
        return self._rv

    def get(self, rt: ResourceType, key: Key) -> JsonObj | None:
        """The stored object (shared: do not modify), or None."""
        return self._tables[rt].objects.get(key)

    def list_objects(self, rt: ResourceType) -> tuple[list[JsonObj], int]:
        """All objects of ``rt`` sorted by key, with a resourceVersion they are consistent with."""
        table = self._tables[rt]
        with table.lock:
            items = sorted(table.objects.items())
            rv = self._rv
        return [obj for _, obj in items], rv

    def create(self, rt: ResourceType, obj: JsonObj, *, dry_run: bool = False) -> JsonObj:
        """Store a new object (``obj`` becomes the store's) and give it the next resourceVersion.

        Raises:
            ApiError: 409 AlreadyExists.
        """
        key = key_of(obj)
        table = self._tables[rt]
        with table.lock:
            if key in table.objects:
                raise statuses.already_exists(rt, key[1])
            if dry_run:
                return obj
            return self._commit_locked(table, rt, key, obj, None)

    def update(
        self, rt: ResourceType, key: Key, mutate: Callable[[JsonObj], JsonObj], *, dry_run: bool = False
    ) -> JsonObj:
        """Replace an object with ``mutate(private copy of current)``, retrying on races.

        ``mutate`` may raise ``ApiError`` (a failed precondition). An unchanged result commits
        nothing. A result with ``deletionTimestamp`` and no finalizers removes the object.

        Raises:
            ApiError: 404 when the object does not exist, or whatever ``mutate`` raises.
        """
        table = self._tables[rt]
        while True:
            current = table.objects.get(key)
            if current is None:
                raise statuses.not_found(rt, key[1])
            new = mutate(copy.deepcopy(current))
            if new == current or dry_run:
                return new
            with table.lock:
                if table.objects.get(key) is current:
                    return self._commit_locked(table, rt, key, new, current)

    def _commit_locked(
        self, table: _Table, rt: ResourceType, key: Key, obj: JsonObj, old: JsonObj | None
    ) -> JsonObj:
        meta = obj["metadata"]
        removed = bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")
        with self._commit:
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            if removed:
                del table.objects[key]
            else:
                table.objects[key] = obj
            event = Event("DELETED" if removed else "MODIFIED" if old else "ADDED", rt, self._rv, obj, old)
            if len(self._history) >= self._history_size:
                self._compacted = self._history.popleft().rv
            self._history.append(event)
            for watcher in self._watchers[rt]:
                watcher.queue.put(event)
        self.changed.set()
        return obj

    def watch(self, rt: ResourceType, since: int | None) -> Watcher:
        """Open a watch; ``since`` None starts with ADDED events for every current object.

        Raises:
            ApiError: 410 Expired when ``since`` is older than the history ring.
        """
        if since is None:
            table = self._tables[rt]
            with table.lock, self._commit:
                replay = [Event("ADDED", rt, _rv_of(obj), obj) for _, obj in sorted(table.objects.items())]
                return self._register(rt, replay)
        with self._commit:
            if since < self._compacted:
                raise statuses.gone(f"too old resource version: {since} ({self._compacted})")
            return self._register(rt, [e for e in self._history if e.rt == rt and e.rv > since])

    def _register(self, rt: ResourceType, replay: list[Event]) -> Watcher:
        watcher = Watcher(self, rt, replay, self._rv)
        if self._closed:
            watcher.queue.put(None)
        else:
            self._watchers[rt].add(watcher)
        return watcher

    def _unregister(self, watcher: Watcher) -> None:
        with self._commit:
            self._watchers[watcher.rt].discard(watcher)

    def _bookmark(self, watcher: Watcher) -> int | None:
        # Under the commit lock no event can be in flight: an empty queue means the watcher
        # has seen everything up to the current resourceVersion.
        with self._commit:
            return self._rv if watcher.queue.empty() else None

    def close(self) -> None:
        """End every open watch; later watches end at once."""
        with self._commit:
            self._closed = True
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.queue.put(None)
                watchers.clear()

    def dump(self) -> JsonObj:
        """A consistent snapshot of every object and the resourceVersion, JSON-ready."""
        with contextlib.ExitStack() as stack:
            for table in self._tables.values():
                stack.enter_context(table.lock)
            with self._commit:
                rv = self._rv
            objects = {
                _table_name(rt): [obj for _, obj in sorted(t.objects.items())]
                for rt, t in self._tables.items()
            }
        return {"resourceVersion": str(rv), "objects": objects}

    def restore(self, snapshot: JsonObj) -> None:
        """Load a :meth:`dump` into an empty store; history restarts at its resourceVersion."""
        for rt, table in self._tables.items():
            table.objects = {key_of(obj): obj for obj in snapshot["objects"].get(_table_name(rt), [])}
        self._rv = self._compacted = int(snapshot["resourceVersion"])


def _table_name(rt: ResourceType) -> str:
    return f"{rt.api_version}/{rt.plural}"


class SnapshotWriter:
    """Keeps a JSON snapshot file of a store current, written shortly after each commit.

    Writes coalesce: one write covers every commit made during ``delay`` seconds. ``stop``
    writes a final snapshot, so a stop/start cycle loses nothing. Files are replaced atomically.
    """

    def __init__(self, store: Store, path: Path, *, delay: float = 0.05) -> None:
        self._store = store
        self._path = path
        self._delay = delay
        self._pending = False
        self._loop = Loop("apiserver-snapshot", self._step, log=_log)

    @staticmethod
    def load(path: Path) -> JsonObj | None:
        """The snapshot stored at ``path``, or None when there is none."""
        if not path.exists():
            return None
        snapshot: JsonObj = json.loads(path.read_text())
        return snapshot

    def start(self) -> None:
        """Start writing in the background."""
        self._loop.start()

    def stop(self) -> None:
        """Stop the writer and write the final snapshot."""
        self._loop.request_stop()
        self._store.changed.set()
        self._loop.join()
        self.write()

    def write(self) -> None:
        """Write the snapshot now."""
        data = json.dumps(self._store.dump(), separators=(",", ":"))
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(data)
        os.replace(tmp, self._path)

    def _step(self) -> float:
        if not self._pending:
            self._store.changed.wait()  # set by every commit, and by stop()
            self._pending = True
            return self._delay  # commits made meanwhile go into the same write
        self._pending = False
        self._store.changed.clear()
        self.write()
        return 0
