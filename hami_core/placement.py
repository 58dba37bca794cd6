"""Placement policies: node policies whose score depends on the pod and on the devices it would take.

HAMi's ``binpack``/``spread`` score a node on its usage *before* the pod, so the cache can keep them
sorted. Fragmentation-aware policies (FGD and the baselines of "Beware of Fragmentation", ATC '23)
need to know the pod: how much a node's fragmentation grows when *this* pod lands on *these*
devices. A :class:`ScoringPolicy` carrying a :class:`Placement` is such a policy. For each candidate
node the caller runs the shared fit with the devices in :meth:`Placement.order` (most preferred
last, as the fit takes from the end), books the result, and ranks nodes by :meth:`Placement.score`
of the usage before and after; ties go to the caller's node order.

The views here are plain values built from :class:`~hami_core.devices.DeviceUsage`; nothing in this
module does I/O.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Protocol

import attrs

from hami_core import allocation
from hami_core.allocation import PodFit
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import MILLI
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitResult
from hami_core.devices import PodDevices

_FREE_MILLI = operator.attrgetter("free_milli")

#: A cluster-wide CPU and GPU scale used by the baselines' normalisation (128 cores, 8 GPUs).
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8_000


def coarse_cpu(cpu: int) -> int:
    """``cpu`` milli-cores to the nearest power of two of cores (a quarter core at least; 0 stays 0)."""
    if cpu <= 0:
        return 0
    return int(1000 * 2 ** round(math.log2(max(cpu, 250) / 1000)))


@attrs.frozen
class PodShape:
    """A pod as placement policies see it.

    Args:
        cpu: CPU request in milli-cores (kube-scheduler's rule in the extender; 0 where unknown).
        gpus: how many devices it asks (0 for a CPU-only pod).
        milli: share of each device in milli-devices (1000 for whole devices).
        models: device types it accepts; empty accepts any.
    """

    cpu: int
    gpus: int
    milli: int
    models: frozenset[str] = frozenset()

    @property
    def demand(self) -> int:
        """The pod's device demand in milli-devices."""
        return self.gpus * self.milli

    @property
    def tag(self) -> str:
        """GpuClustering's tag: ``share-gpu`` for a fraction of one device, ``<k>-gpu`` otherwise."""
        if self.gpus == 0:
            return ""
        return "share-gpu" if self.milli < MILLI else f"{self.gpus}-gpu"

    @classmethod
    def of(
        cls, request: DeviceRequest | None, cpu: int = 0, models: frozenset[str] = frozenset()
    ) -> PodShape:
        """The shape of one device request: its share from cores, else from memory percentage."""
        if request is None or request.nums <= 0:
            return cls(cpu=cpu, gpus=0, milli=0, models=models)
        share = min(request.coresreq, 100) * 10
        if share == 0 and request.mem_percentage_req not in (0, MEM_PERCENTAGE_UNSET):
            share = min(request.mem_percentage_req, 100) * 10
        if share == 0:
            share = MILLI if request.memreq == 0 else 1
        return cls(cpu=cpu, gpus=request.nums, milli=share, models=models)


@attrs.frozen
class NodeState:
    """One node as placement policies see it.

    Args:
        devices: the node's devices of the pod's backend, with usage.
        cpu_left: free CPU in milli-cores: in the extender the node's allocatable CPU minus the
            requests of the pods bound or reserved there (``NodeView.cpu_left``); ``None`` where
            unknown (no ``status.allocatable.cpu``), and policies then ignore CPU.
        tags: GpuClustering's tags of the pods on the node, where known.
    """

    devices: tuple[DeviceUsage, ...]
    cpu_left: int | None = None
    tags: frozenset[str] = frozenset()

    @property
    def model(self) -> str:
        """The node's device type (the first device's); empty without devices."""
        return self.devices[0].type if self.devices else ""

    @functools.cached_property
    def _frees(self) -> tuple[int, ...]:
        return tuple(map(_FREE_MILLI, self.devices))

    def frees(self) -> tuple[int, ...]:
        """Free milli-devices per device, in device order (computed once per state)."""
        return self._frees

    @functools.cached_property
    def sorted_frees(self) -> tuple[int, ...]:
        """Free milli-devices per device, smallest first (what fragments are memoised on)."""
        return tuple(sorted(self._frees))

    def cpu_after(self, cpu: int) -> int | None:
        """The free CPU once a pod asking ``cpu`` lands, never below 0 (``None`` stays unknown).

        kube-scheduler has checked that the pod's CPU fits; the extender's rounded request
        (:func:`coarse_cpu`) may still exceed what is left.
        """
        return None if self.cpu_left is None else max(0, self.cpu_left - cpu)


class Placement(Protocol):
    """How a pod-aware node policy orders devices inside a node and scores the outcome.

    ``deterministic`` is ``True`` when :meth:`score` is a pure function of its arguments and of
    :meth:`revision` (callers may cache it per node state); ``False`` when scores are independent
    random draws, so callers may instead draw the winner uniformly among the nodes that fit.
    """

    deterministic: bool

    def revision(self, pod: PodShape) -> int:
        """Called once per pod before scoring; changes whenever scores of unchanged nodes may change.

        A policy that learns from the pods it sees (FGD's workload in the extender) records ``pod``
        here and numbers its revisions from 1; the others return 0, and callers keep nothing for a
        later revision of those.
        """
        ...

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        """``node.devices`` in the order the fit should try them, most preferred **last**."""
        ...

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        """How much this node is preferred for ``pod``; higher wins."""
        ...


def tightest_last(devices: Sequence[DeviceUsage]) -> list[DeviceUsage]:
    """Devices ordered so the fit takes the tightest device first, lowest index on ties.

    The baselines' ``best`` GPU choice: a share goes to the device with the least room that holds
    it; whole devices come from the lowest-index idle ones.
    """
    return sorted(devices, key=lambda device: (-device.free_milli, -device.index))


def first_request(
    containers: Sequence[Mapping[str, DeviceRequest]], backends: Sequence[str]
) -> tuple[str, DeviceRequest] | None:
    """The backend and request a placement policy judges a pod by: the first container's of the first backend."""
    for wanted in containers:
        for backend in backends:
            request = wanted.get(backend)
            if request is not None and request.nums > 0:
                return backend, request
    return None


def placement_state(
    devices: Mapping[str, Sequence[DeviceUsage]], backends: Sequence[str], cpu_left: int | None
) -> NodeState:
    """A node as a placement policy sees it for a pod asking ``backends``: their devices and its free CPU."""
    if len(backends) == 1:
        return NodeState(devices=tuple(devices.get(backends[0], ())), cpu_left=cpu_left)
    return NodeState(
        devices=tuple(device for backend in backends for device in devices.get(backend, ())),
        cpu_left=cpu_left,
    )


def placement_score(
    placement: Placement,
    shape: PodShape,
    before: NodeState,
    after: Mapping[str, Sequence[DeviceUsage]],
    backends: Sequence[str],
) -> float:
    """A placement policy's score of one fitted node, as the extender computes it.

    ``shape`` is the pod as the policy sees it (its first request, :func:`first_request`);
    ``before`` the node without it (:func:`placement_state`); ``after`` every asked backend's
    devices with the pod booked. The node's free CPU drops by the pod's, never below 0:
    kube-scheduler has checked that the CPU fits before the extender is called, so the score only
    weighs what is left.
    """
    return float(
        placement.score(before, shape, placement_state(after, backends, before.cpu_after(shape.cpu)))
    )


def single_fit(
    containers: Sequence[Mapping[str, DeviceRequest]],
    n_init: int,
    devices: Mapping[str, Sequence[DeviceUsage]],
    fit: Callable[[str, DeviceRequest, Sequence[DeviceUsage], PodDevices], FitResult],
) -> PodFit | None:
    """The fit of a one-container, one-backend pod without the device-policy sort; ``None`` otherwise.

    A placement policy reorders the devices itself, so :func:`~hami_core.allocation.fit_pod`'s sort
    by HAMi's device score would be thrown away; for the common pod shape this calls the same
    per-request ``fit`` once on the node's devices and books its result as ``fit_pod`` does.
    """
    single = single_request(containers, n_init)
    if single is None:
        return None
    backend, request = single
    node = devices.get(backend, ())
    result = fit(backend, request, node, PodDevices())
    if not result.ok:
        return PodFit(ok=False, reasons=dict(result.reasons), considered=result.considered)
    usage = {name: tuple(listed) for name, listed in devices.items()}
    usage[backend] = booked(node, result.devices)
    return PodFit(ok=True, devices=PodDevices({backend: (result.devices,)}), usage=usage)


def booked(node: Sequence[DeviceUsage], given: ContainerDevices) -> tuple[DeviceUsage, ...]:
    """``node``'s devices once one container holding ``given`` is booked on them."""
    once = {entry.uuid: entry for entry in given}
    if len(once) == len(given):
        return tuple(device.add(once[device.id]) if device.id in once else device for device in node)
    held = {booking.device.uuid: booking for booking in allocation.collapse_usage((given,), 0)}
    return tuple(
        device.add(held[device.id].device, held[device.id].slots) if device.id in held else device
        for device in node
    )


def single_request(
    containers: Sequence[Mapping[str, DeviceRequest]], n_init: int
) -> tuple[str, DeviceRequest] | None:
    """The backend and request of a pod that :func:`single_fit` fits (one container, one backend)."""
    if n_init or len(containers) != 1 or len(containers[0]) != 1:
        return None
    ((backend, request),) = containers[0].items()
    return None if request.nums <= 0 else (backend, request)
