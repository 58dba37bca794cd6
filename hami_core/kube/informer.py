"""List-then-watch loop with a local store, the way client-go informers feed controllers.

The scheduler's cache, the local cluster's kube-scheduler stand-in and its simulated kubelets react
to API changes through it: one thread lists, watches from the list's resourceVersion, relists after
410 Gone (or any failure), and calls a handler with ``(event, new, old)`` for every change. A relist
either synthesises the events it reveals or, for consumers that rebuild from whole lists (the
scheduler's cache after a restart), goes to ``on_list``. It owns no decision: handlers do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import Generic
from typing import Literal
from typing import TypeVar

from hami_core.errors import KubeError
from hami_core.kube.client import WatchExpiredError
from hami_core.kube.client import WatchStream
from hami_core.looping import Loop

_log = logging.getLogger(__name__)

T = TypeVar("T", bound=Mapping[str, Any])

InformerEvent = Literal["ADDED", "MODIFIED", "DELETED"]
Handler = Callable[[InformerEvent, T, T | None], None]
"""Called as ``handler(event, obj, old)``; ``old`` is the previous copy (``None`` when ADDED)."""


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` for namespaced objects, ``name`` otherwise (client-go's MetaNamespaceKey)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name', '')}" if namespace else str(metadata.get("name", ""))


class Informer(Generic[T]):
    """Keeps a local copy of one list of objects current and reports each change.

    Args:
        name: for thread names and logs.
        lister: returns ``(items, resourceVersion)`` of a fresh list.
        watcher: opens a watch from the given resourceVersion.
        handler: called in the informer thread for every change; exceptions are logged.
        on_list: when given, receives every full list (the first and each relist) instead of the
            events a relist would synthesise.
        retry_delay: seconds to wait before relisting after a failure.
    """

    def __init__(
        self,
        name: str,
        lister: Callable[[], tuple[list[T], str]],
        watcher: Callable[[str], WatchStream[T]],
        handler: Handler[T],
        *,
        on_list: Callable[[list[T]], None] | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        self.name = name
        self._lister = lister
        self._watcher = watcher
        self._handler = handler
        self._on_list = on_list
        self._retry_delay = retry_delay
        self._store: dict[str, T] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stream: WatchStream[T] | None = None
        # A failure other than the API's (a bug in on_list) relists after retry_delay, then later.
        self._loop = Loop(f"informer-{name}", self._list_and_watch, retry=retry_delay, log=_log)

    def start(self) -> None:
        """Start the list-and-watch thread."""
        self._loop.start()

    def stop(self) -> None:
        """Stop the thread and its watch; returns once the thread has ended."""
        self._loop.request_stop()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.stop()
        self._loop.join()

    @property
    def synced(self) -> bool:
        """Whether the first list has been delivered."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until the first list has been delivered; ``False`` on timeout."""
        return self._synced.wait(timeout)

    def get(self, key: str) -> T | None:
        """The stored object with this ``namespace/name`` (or ``name``) key."""
        with self._lock:
            return self._store.get(key)

    def items(self) -> list[T]:
        """Every stored object, sorted by key."""
        with self._lock:
            return [self._store[key] for key in sorted(self._store)]

    # ------------------------------------------------------------ loop

    def _list_and_watch(self) -> float:
        """List, then follow watches until one fails; returns how long to wait before relisting."""
        try:
            version = self._relist()
            self._synced.set()
            while not self._loop.stopping:
                version = self._watch(version)
        except WatchExpiredError:
            return 0
        except KubeError as err:
            if not self._loop.stopping:
                _log.info("informer %s: %s; relisting", self.name, err)
            return self._retry_delay
        return 0

    def _relist(self) -> str:
        items, version = self._lister()
        fresh = {object_key(item): item for item in items}
        with self._lock:
            previous = self._store
            self._store = dict(fresh)
        if self._on_list is not None:
            self._on_list(items)
            return version
        for key, gone in previous.items():
            if key not in fresh:
                self._deliver("DELETED", gone, gone)
        for key, item in fresh.items():
            old = previous.get(key)
            if old is None:
                self._deliver("ADDED", item, None)
            elif _version(old) != _version(item):
                self._deliver("MODIFIED", item, old)
        return version

    def _watch(self, version: str) -> str:
        """Follow one watch until it ends; returns the resourceVersion to resume from."""
        stream = self._watcher(version)
        with self._lock:
            self._stream = stream
        if self._loop.stopping:
            stream.stop()
        try:
            for event_type, obj in stream:
                version = _version(obj) or version
                if event_type == "BOOKMARK":
                    continue
                key = object_key(obj)
                with self._lock:
                    old = self._store.get(key)
                    if event_type == "DELETED":
                        self._store.pop(key, None)
                    else:
                        self._store[key] = obj
                self._deliver(event_type, obj, old)
        finally:
            with self._lock:
                self._stream = None
        return version

    def _deliver(self, event: InformerEvent, obj: T, old: T | None) -> None:
        try:
            self._handler(event, obj, old)
        except Exception:
            _log.exception("informer %s: handler failed on %s %s", self.name, event, object_key(obj))


def listed(result: Mapping[str, Any]) -> tuple[list[Any], str]:
    """``(items, resourceVersion)`` of a list reply, the shape an informer's lister returns."""
    return list(result.get("items") or []), str((result.get("metadata") or {}).get("resourceVersion", ""))


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
