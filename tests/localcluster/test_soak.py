"""Soak: 200 pods created and patched from 8 threads while three watchers follow.

Every watcher must see every committed write exactly once, in resourceVersion order, and
optimistic concurrency must lose no update: writers racing on shared pods get 409 and retry.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes import watch

from hami_core.localcluster import ApiServer

THREADS = 8
PODS_PER_THREAD = 25
SHARED = 4
INCREMENTS = 10
NS = "soak"


class Conn:
    """One keep-alive connection speaking JSON."""

    def __init__(self, server: ApiServer) -> None:
        self._conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)

    def __call__(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        self._conn.request(method, path, data, {"Content-Type": content_type})
        resp = self._conn.getresponse()
        return resp.status, json.loads(resp.read())

    def close(self) -> None:
        self._conn.close()


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {"count": "0"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


class Writer(threading.Thread):
    """Creates its pods, labels them by strategic merge, and increments the shared counters by get/PUT."""

    def __init__(self, server: ApiServer, index: int) -> None:
        super().__init__(name=f"writer-{index}")
        self.server = server
        self.index = index
        self.versions: list[int] = []
        self.conflicts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        conn = Conn(self.server)
        try:
            base = f"/api/v1/namespaces/{NS}/pods"
            for i in range(PODS_PER_THREAD):
                code, obj = conn("POST", base, pod(f"w{self.index}-{i}"))
                assert code == 201, obj
                self.versions.append(int(obj["metadata"]["resourceVersion"]))
            for i in range(PODS_PER_THREAD):
                patch = {"metadata": {"labels": {"writer": str(self.index)}}}
                code, obj = conn(
                    "PATCH", f"{base}/w{self.index}-{i}", patch, "application/strategic-merge-patch+json"
                )
                assert code == 200, obj
                self.versions.append(int(obj["metadata"]["resourceVersion"]))
            for _ in range(INCREMENTS):
                for shared in range(SHARED):
                    self.increment(conn, f"{base}/shared-{shared}")
        except BaseException as err:  # reported by the test thread
            self.error = err
        finally:
            conn.close()

    def increment(self, conn: Conn, path: str) -> None:
        while True:
            code, current = conn("GET", path)
            assert code == 200, current
            current["metadata"]["annotations"]["count"] = str(
                int(current["metadata"]["annotations"]["count"]) + 1
            )
            code, obj = conn("PUT", path, current)
            if code == 409:
                assert obj["reason"] == "Conflict"
                self.conflicts += 1
                continue
            assert code == 200, obj
            self.versions.append(int(obj["metadata"]["resourceVersion"]))
            return


class RawWatcher(threading.Thread):
    """Follows pods over a raw chunked watch until the sentinel pod appears."""

    def __init__(self, server: ApiServer, path: str) -> None:
        super().__init__(name=f"watch {path}")
        self.conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=60)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        self.events: list[tuple[str, int, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while line := self.resp.readline():
                event = json.loads(line)
                meta = event["object"]["metadata"]
                self.events.append((event["type"], int(meta["resourceVersion"]), meta["name"]))
                if meta["name"] == "done":
                    return
        except BaseException as err:  # reported by the test thread
            self.error = err
        finally:
            self.resp.close()
            self.conn.close()


class ClientWatcher(threading.Thread):
    """Follows pods with the official client's watch until the sentinel pod appears."""

    def __init__(self, api: client.ApiClient, start: str) -> None:
        super().__init__(name="client watch")
        self.core = client.CoreV1Api(api)
        self.start_rv = start
        self.events: list[tuple[str, int, str]] = []
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        w = watch.Watch()
        try:
            stream = w.stream(
                self.core.list_namespaced_pod, NS, resource_version=self.start_rv, timeout_seconds=60
            )
            self.ready.set()
            for event in stream:
                obj = event["object"]
                self.events.append((event["type"], int(obj.metadata.resource_version), obj.metadata.name))
                if obj.metadata.name == "done":
                    w.stop()
        except BaseException as err:  # reported by the test thread
            self.error = err
            self.ready.set()


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer() as srv:
        yield srv


def test_concurrent_create_patch_watch_soak(server: ApiServer) -> None:
    setup = Conn(server)
    assert setup("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    setup_versions = []
    for shared in range(SHARED):
        code, obj = setup("POST", f"/api/v1/namespaces/{NS}/pods", pod(f"shared-{shared}"))
        assert code == 201
        setup_versions.append(int(obj["metadata"]["resourceVersion"]))
    start = setup_versions[0] - 1
    cfg = client.Configuration()
    cfg.host = server.url
    with client.ApiClient(cfg) as api:
        watchers: list[Any] = [
            RawWatcher(server, f"/api/v1/namespaces/{NS}/pods?watch=true&resourceVersion={start}"),
            RawWatcher(
                server,
                f"/api/v1/pods?watch=1&resourceVersion={start}&fieldSelector=metadata.namespace%3D{NS}",
            ),
            ClientWatcher(api, str(start)),
        ]
        for watcher in watchers:
            watcher.start()
        watchers[2].ready.wait(timeout=30)
        writers = [Writer(server, i) for i in range(THREADS)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
        code, done = setup("POST", f"/api/v1/namespaces/{NS}/pods", pod("done"))
        assert code == 201
        for watcher in watchers:
            watcher.join(timeout=60)
    for thread in (*writers, *watchers):
        assert not thread.is_alive(), thread.name
        assert thread.error is None, f"{thread.name}: {thread.error!r}"

    committed = sorted(
        setup_versions + [v for w in writers for v in w.versions] + [int(done["metadata"]["resourceVersion"])]
    )
    expected_writes = SHARED + THREADS * (2 * PODS_PER_THREAD + SHARED * INCREMENTS) + 1
    assert len(committed) == len(set(committed)) == expected_writes
    for watcher in watchers:
        versions = [rv for _, rv, _ in watcher.events]
        assert versions == committed, watcher.name
        assert (
            sum(1 for kind, _, _ in watcher.events if kind == "ADDED")
            == SHARED + THREADS * PODS_PER_THREAD + 1
        )

    counts = [
        int(setup("GET", f"/api/v1/namespaces/{NS}/pods/shared-{i}")[1]["metadata"]["annotations"]["count"])
        for i in range(SHARED)
    ]
    setup.close()
    assert counts == [THREADS * INCREMENTS] * SHARED
    assert sum(w.conflicts for w in writers) > 0, "no writer raced; the soak proved nothing about 409s"
