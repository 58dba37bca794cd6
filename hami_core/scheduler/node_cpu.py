"""Free CPU per node as kube-scheduler counts it: allocatable CPU minus the requests of the pods there.

Placement policies that weigh CPU stranding (FGD and the baselines) need each node's free CPU, which
the extender does not check itself (kube-scheduler's ``NodeResourcesFit`` does). The scheduler
already watches every node and pod, so :class:`NodeCpu` keeps, per node, ``status.allocatable.cpu``
and the summed CPU requests (:func:`pod_cpu`) of the unfinished pods counted there: a pod counts on
its ``spec.nodeName`` whichever scheduler bound it, and before that on the node this scheduler's
filter reserved for it. These are requests, not usage, and only what the watch has shown.

Every change returns the nodes whose free CPU moved, so the cache refreshes only those. Not
thread-safe: :class:`~hami_core.scheduler.cache.ClusterCache` calls it under its lock. Pure, no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import attrs

from hami_core.errors import QuantityError
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.pods import Quantity
from hami_core.quantity import parse_quantity

_NOTHING: frozenset[str] = frozenset()


def _milli(value: object) -> int | None:
    """A CPU quantity in milli-cores, rounded up as Kubernetes' ``MilliValue``; ``None`` if not one."""
    try:
        return max(0, math.ceil(parse_quantity(value) * 1000))
    except QuantityError:
        return None


@functools.lru_cache(maxsize=1024)
def milli_cpu(value: Quantity | None) -> int:
    """A container's or pod's CPU quantity in milli-cores; 0 when absent or invalid.

    The API server refuses invalid and negative quantities, so 0 only meets hand-written bodies.
    Memoised: a relist reads the same few strings (``"500m"``, ``"4"``) for every pod.
    """
    return _milli(value) or 0


def allocatable_cpu(allocatable: Mapping[str, object]) -> int | None:
    """A node's ``status.allocatable.cpu`` in milli-cores; ``None`` when absent or not a quantity."""
    return _milli(allocatable.get("cpu"))


def _container_cpu(container: ContainerView) -> int:
    # A request left out defaults to the limit (the API server's defaulting; the local emulator skips it).
    found = container.requests.get("cpu")
    return milli_cpu(found if found is not None else container.limits.get("cpu"))


def pod_cpu(pod: PodView) -> int:
    """The pod's CPU request in milli-cores, by kube-scheduler's rule.

    The app containers' sum, or the largest init container if that is more, plus ``spec.overhead``.
    Sidecars (init containers with ``restartPolicy: Always``) keep running: each adds to the app
    containers' sum and to every init container started after it.
    """
    total = sum(_container_cpu(container) for container in pod.app_containers)
    sidecars = 0
    init_peak = 0
    for container in pod.init_containers:
        cpu = _container_cpu(container)
        if container.spec.get("restartPolicy") == "Always":
            total += cpu
            sidecars += cpu
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + cpu)
    return max(total, init_peak) + milli_cpu(pod.overhead.get("cpu"))


@attrs.frozen
class _Counted:
    """Where one pod's CPU counts: its bound node, else the node the filter reserved."""

    cpu: int
    bound: str = ""
    reserved: str = ""

    @property
    def node(self) -> str:
        return self.bound or self.reserved


class NodeCpu:
    """Allocatable CPU per node and the CPU requests of the pods counted on each."""

    def __init__(self) -> None:
        self._allocatable: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self._pods: dict[str, _Counted] = {}

    def left(self, node: str) -> int | None:
        """Free CPU of ``node`` in milli-cores (never below 0); ``None`` when its allocatable is unknown."""
        total = self._allocatable.get(node)
        return None if total is None else max(0, total - self._used.get(node, 0))

    def set_allocatable(self, node: str, milli: int | None) -> bool:
        """Take ``node``'s allocatable CPU (``None``: unknown, or the node is gone); whether it changed."""
        if milli is None:
            return self._allocatable.pop(node, None) is not None
        if self._allocatable.get(node) == milli:
            return False
        self._allocatable[node] = milli
        return True

    def observe(self, uid: str, node: str, cpu: int) -> frozenset[str]:
        """The watch shows pod ``uid`` unfinished, bound to ``node`` asking ``cpu`` (``""``: not bound yet).

        A pod not bound yet keeps whatever the filter reserved for it (``cpu`` is then not read).
        """
        before = self._pods.get(uid)
        if not node:
            return _NOTHING
        return self._move(uid, before, _Counted(cpu, bound=node))

    def reserve(self, uid: str, node: str, cpu: int) -> frozenset[str]:
        """The filter placed pod ``uid`` (asking ``cpu``) on ``node``: count it there until it is bound."""
        before = self._pods.get(uid)
        if before is not None and before.bound:
            return _NOTHING
        return self._move(uid, before, _Counted(cpu, reserved=node))

    def unreserve(self, uid: str) -> frozenset[str]:
        """The filter's reservation for pod ``uid`` is dropped (a re-filter, a failed bind)."""
        before = self._pods.get(uid)
        if before is None or before.bound:
            return _NOTHING
        return self._move(uid, before, None)

    def drop(self, uid: str) -> frozenset[str]:
        """Pod ``uid`` finished or was deleted: it holds no CPU any more."""
        return self._move(uid, self._pods.get(uid), None)

    def _move(self, uid: str, before: _Counted | None, after: _Counted | None) -> frozenset[str]:
        if after is None:
            self._pods.pop(uid, None)
        else:
            self._pods[uid] = after
        old = (before.node, before.cpu) if before is not None else ("", 0)
        new = (after.node, after.cpu) if after is not None else ("", 0)
        if old == new:
            return _NOTHING
        touched = set()
        for node, cpu, sign in ((*old, -1), (*new, 1)):
            if node and cpu:
                used = self._used.get(node, 0) + sign * cpu
                if used:
                    self._used[node] = used
                else:
                    self._used.pop(node, None)
                touched.add(node)
        return frozenset(touched)
