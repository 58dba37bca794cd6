"""HAMi's node lock under contention, on the emulator and on a real kube-apiserver.

Six threads, each with its own client, take and release the lock of one node forty times each, as
six scheduler replicas binding pods to one node would. The lock is a get / conditional-patch of a
Node annotation, so mutual exclusion rests entirely on the API server refusing a write whose
``resourceVersion`` is stale (409 Conflict). The test asserts that no two threads ever held the lock
at once, that every acquisition happened, and that the server did refuse stale writes along the way
(otherwise the run proved nothing about optimistic concurrency).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path

import pytest

from hami_core import codec
from hami_core.errors import ConflictError
from hami_core.errors import LockError
from hami_core.kube.client import RealKubeClient
from hami_core.kube.nodelock import LockHeldError
from hami_core.kube.nodelock import NodeLock
from hami_core.kube.objects import Node
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.controlplane import ControlPlaneKind

pytestmark = pytest.mark.slow

THREADS = 6
ROUNDS = 40
NODE = "node-0"


class CountingClient(RealKubeClient):
    """A client that counts the node writes the API server refused as stale."""

    conflicts = 0

    def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node:
        try:
            return super().patch_node(name, patch, resource_version=resource_version)
        except ConflictError:
            self.conflicts += 1
            raise


class Contender(threading.Thread):
    """Takes the lock ``ROUNDS`` times for its own pod, holding it briefly each time."""

    def __init__(self, index: int, kubeconfig: Path, guard: Guard) -> None:
        super().__init__(name=f"contender-{index}")
        self.pod = f"pod-{index}"
        self.kube = CountingClient(kubeconfig=kubeconfig)
        self.guard = guard
        self.acquired = 0
        self.held_elsewhere = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        lock = NodeLock(self.kube, attempts=8, backoff=0.005)
        try:
            while self.acquired < ROUNDS:
                try:
                    lock.acquire(NODE, "default", self.pod)
                except LockHeldError:
                    self.held_elsewhere += 1
                    time.sleep(0.002)
                    continue
                except LockError:
                    continue  # lost every write race this time; try again
                self.guard.enter(self.pod)
                time.sleep(0.001)
                self.guard.leave(self.pod)
                self.acquired += 1
                assert lock.release(NODE, "default", self.pod)
        except BaseException as err:  # reported by the test thread
            self.error = err
        finally:
            self.kube.close()


class Guard:
    """Records overlapping critical sections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holder: str | None = None
        self.overlaps: list[tuple[str, str]] = []

    def enter(self, pod: str) -> None:
        with self._lock:
            if self.holder is not None:
                self.overlaps.append((self.holder, pod))
            self.holder = pod

    def leave(self, pod: str) -> None:
        with self._lock:
            if self.holder == pod:
                self.holder = None


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, control_plane: ControlPlaneKind
) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("lock", numbered=True)
    with LocalCluster(1, workdir, control_plane=control_plane) as running:
        yield running


def test_the_node_lock_admits_one_holder_at_a_time_under_contention(cluster: LocalCluster) -> None:
    guard = Guard()
    contenders = [Contender(index, cluster.kubeconfig, guard) for index in range(THREADS)]
    for contender in contenders:
        contender.start()
    for contender in contenders:
        contender.join(timeout=240)
    assert not [c.name for c in contenders if c.is_alive()], "a contender hung"
    errors = [(c.name, c.error) for c in contenders if c.error is not None]
    assert errors == []
    assert guard.overlaps == []
    assert [c.acquired for c in contenders] == [ROUNDS] * THREADS
    assert sum(c.kube.conflicts for c in contenders) > 0, "no write raced; nothing was shown"
    assert sum(c.held_elsewhere for c in contenders) > 0
    assert codec.NODE_LOCK not in (cluster.kube.get_node(NODE)["metadata"].get("annotations") or {})
