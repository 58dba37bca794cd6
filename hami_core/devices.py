"""Value types shared by the core and every backend.

These are the domain shapes behind HAMi's wire formats (``specs/hami-wire.md`` section 1.4):
what a node registers (:class:`DeviceInfo`), what the scheduler tracks per device
(:class:`DeviceUsage`), what a container asks for (:class:`DeviceRequest`), what it is given
(:class:`ContainerDevice`, :class:`PodDevices`) and what the device plugin hands kubelet
(:class:`ContainerAllocation`). Encoding and decoding live in :mod:`hami_core.codec`; this
module does no I/O and knows no vendor.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs

#: One whole device in thousandths (the FGD trace's unit: 1000 = one GPU).
MILLI = 1000

#: ``DeviceRequest.mem_percentage_req`` when no percentage was asked for (HAMi's sentinel 101).
MEM_PERCENTAGE_UNSET = 101

#: Device mode of HAMi's soft-split devices; the legacy node codec defaults to it.
MODE_HAMI_CORE = "hami-core"


@attrs.frozen
class MigPlacement:
    """A MIG placement: the first memory slice and how many slices an instance takes."""

    start: int
    size: int


@attrs.frozen
class MigProfile:
    """A MIG instance profile a GPU offers (``migProfiles`` in the register annotation)."""

    name: str
    memory_mb: int = 0
    core: int = 0
    slice_count: int = 0
    placements: tuple[MigPlacement, ...] = ()


@attrs.frozen
class DeviceInfo:
    """One physical device as a node registers it.

    Field meanings follow HAMi's ``DeviceInfo`` (``specs/hami-wire.md`` 1.4.1): ``count`` is the
    split count (how many containers may share it), ``devmem`` MiB, ``devcore`` percent units.
    ``device_vendor`` is never on the wire; the scheduler fills it with the backend's name.
    """

    id: str
    index: int = 0
    count: int = 0
    devmem: int = 0
    devcore: int = 0
    type: str = ""
    numa: int = 0
    mode: str = ""
    health: bool = False
    mig_profiles: tuple[MigProfile, ...] = ()
    custom_info: Mapping[str, object] = attrs.field(factory=dict, hash=False)
    device_vendor: str = ""


@attrs.frozen
class DeviceUsage:
    """One device as the scheduler sees it: capacity plus what pods already hold.

    Immutable: fitting works on the values and :meth:`add` returns the device with one more
    container's share booked, so concurrent filters never mutate a shared snapshot.
    """

    id: str
    index: int = 0
    count: int = 0
    used: int = 0
    totalmem: int = 0
    usedmem: int = 0
    totalcore: int = 0
    usedcores: int = 0
    type: str = ""
    numa: int = 0
    mode: str = ""
    health: bool = True
    mig_profiles: tuple[MigProfile, ...] = ()
    custom_info: Mapping[str, object] = attrs.field(factory=dict, hash=False)
    device_vendor: str = ""

    @classmethod
    def from_info(cls, info: DeviceInfo) -> DeviceUsage:
        """The device with nothing allocated on it."""
        return cls(
            id=info.id,
            index=info.index,
            count=info.count,
            totalmem=info.devmem,
            totalcore=info.devcore,
            type=info.type,
            numa=info.numa,
            mode=info.mode,
            health=info.health,
            mig_profiles=info.mig_profiles,
            custom_info=info.custom_info,
            device_vendor=info.device_vendor,
        )

    def add(self, device: ContainerDevice, slots: int = 1) -> DeviceUsage:
        """This device with ``device``'s memory and cores and ``slots`` more tasks booked.

        Built field by field rather than with ``attrs.evolve``: placement policies book a pod on
        every node they score, and ``evolve`` costs several times as much.
        """
        return DeviceUsage(
            id=self.id,
            index=self.index,
            count=self.count,
            used=self.used + slots,
            totalmem=self.totalmem,
            usedmem=self.usedmem + device.usedmem,
            totalcore=self.totalcore,
            usedcores=self.usedcores + device.usedcores,
            type=self.type,
            numa=self.numa,
            mode=self.mode,
            health=self.health,
            mig_profiles=self.mig_profiles,
            custom_info=self.custom_info,
            device_vendor=self.device_vendor,
        )

    @functools.cached_property
    def free_milli(self) -> int:
        """How much of the device is free in thousandths: the scarcer of cores and memory; 0 if no slot.

        Placement policies read it for every device of every node they score, so each value
        computes it once.
        """
        if self.count <= self.used or self.totalcore <= 0 or not self.health:
            return 0
        cores = self.free_cores * MILLI // self.totalcore
        if self.totalmem <= 0:
            return cores
        return min(cores, self.free_mem * MILLI // self.totalmem)

    @property
    def free_mem(self) -> int:
        return self.totalmem - self.usedmem

    @property
    def free_cores(self) -> int:
        return self.totalcore - self.usedcores

    @property
    def free_slots(self) -> int:
        return self.count - self.used


@attrs.frozen
class DeviceRequest:
    """What one container asks of one backend (HAMi's ``ContainerDeviceRequest``).

    ``memreq`` is MiB after the backend's memory factor; ``mem_percentage_req`` is a percent of
    the device's memory, :data:`MEM_PERCENTAGE_UNSET` when not given; ``coresreq`` percent.
    """

    nums: int
    type: str
    memreq: int = 0
    mem_percentage_req: int = MEM_PERCENTAGE_UNSET
    coresreq: int = 0

    def memory_on(self, totalmem: int) -> int:
        """MiB this request takes on a device of ``totalmem`` MiB (HAMi's resolution rule)."""
        if self.memreq > 0:
            return self.memreq
        if self.mem_percentage_req != MEM_PERCENTAGE_UNSET:
            return totalmem * self.mem_percentage_req // 100
        return 0


@attrs.frozen
class ContainerDevice:
    """One device share given to one container: the ``UUID,Type,mem,cores`` wire item.

    ``idx`` (the device index) is known to the scheduler but is not part of the wire format.
    """

    uuid: str
    type: str
    usedmem: int
    usedcores: int
    idx: int | None = attrs.field(default=None, eq=False)


#: The devices of one container for one backend.
ContainerDevices = tuple[ContainerDevice, ...]
#: One backend's devices per container, init containers first (HAMi's ``PodSingleDevice``).
PodSingleDevice = tuple[ContainerDevices, ...]


@attrs.frozen
class PodDevices:
    """Every backend's per-container device lists of one pod, keyed by backend name."""

    by_backend: Mapping[str, PodSingleDevice] = attrs.field(factory=dict, hash=False)

    def for_backend(self, name: str) -> PodSingleDevice:
        return self.by_backend.get(name, ())

    def is_empty(self) -> bool:
        return not any(dev for containers in self.by_backend.values() for dev in containers)


@attrs.frozen
class FitResult:
    """Whether a container's request fits a node's devices, and which ones it takes.

    ``reasons`` counts, per HAMi reason key (``CardInsufficientMemory``, ...), the devices that
    were rejected for it; ``considered`` is the denominator of HAMi's ``GenReason`` string.
    """

    ok: bool
    devices: ContainerDevices = ()
    reasons: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    considered: int = 0


@attrs.frozen
class Mount:
    """A host path mounted into the container (kubelet ``Mount``)."""

    container_path: str
    host_path: str
    read_only: bool = True


@attrs.frozen
class DeviceSpec:
    """A device node exposed to the container (kubelet ``DeviceSpec``)."""

    container_path: str
    host_path: str
    permissions: str = "rw"


@attrs.frozen
class ContainerAllocation:
    """What the device plugin returns to kubelet for one container (kubelet ``ContainerAllocateResponse``)."""

    envs: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    mounts: tuple[Mount, ...] = ()
    devices: tuple[DeviceSpec, ...] = ()
    annotations: Mapping[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class ScoringWeights:
    """Weights of the slot, core and memory terms of the device score (``hami.io/device-scoring-weights``)."""

    slot: int = 1
    core: int = 1
    memory: int = 1


@attrs.frozen
class FitContext:
    """What a backend's ``fit`` may consult besides the request and the devices.

    Args:
        pod_annotations: the pod's annotations (type/UUID include-exclude lists, NUMA bind, mode).
        node_annotations: the node's annotations (device cordon list, pair scores).
        device_policy: the device policy chain, e.g. ``"spread"`` or ``"binpack,numa"``.
        weights: weights of the device score.
    """

    pod_annotations: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    node_annotations: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    device_policy: str = "spread"
    weights: ScoringWeights = ScoringWeights()
