"""What is left on a node's devices, summarised so filtering can rule a node out without fitting it.

:class:`BackendSummary` keeps, per node and backend, the free slots, memory and cores and one "room"
tuple per device, and answers whether a request *might* fit: a ``False`` is certain (the shared fit
would refuse the node), a ``True`` still needs the real fit. :data:`ROOM_TIERS` names the room rankings
the cache keeps (nodes where some device can still give a given share), so the filter's walk skips
nodes that cannot hold what a pod asks. Pure values; no I/O, no locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import attrs

from hami_core import allocation
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage

#: A request asking all of a 100-core device wants it alone (HAMi's exclusive-card rule).
_FULL_CORES = 100

RoomDimension = Literal["memory", "cores"]


@attrs.frozen
class RoomTier:
    """A room ranking: the nodes where ``count`` devices of a backend can each still give at least
    ``level`` percent of their memory (``memory``) or ``level`` cores (``cores``)."""

    dimension: RoomDimension
    level: int
    count: int = 1


#: The room rankings the cache keeps per node policy and backend: one device at each level of
#: both dimensions, and several whole devices (what multi-device requests usually ask for).
ROOM_TIERS = (
    *(RoomTier(dimension, level) for dimension in ("memory", "cores") for level in (20, 40, 60, 80, 100)),
    *(RoomTier("memory", 100, count) for count in (2, 4, 8)),
)


@attrs.frozen
class BackendSummary:
    """Per node and backend, what rules a node out cheaply before a full fit.

    Args:
        free_slot_devices: healthy devices with a free slot.
        max_free_mem: the most free MiB on one of them; -1 when there is none.
        max_free_cores: the most free cores on one of them; -1 when there is none.
        free_slots: free slots summed over healthy devices.
        free_mem: free MiB summed over healthy devices with a free slot.
        free_cores: free cores summed over healthy devices with a free slot.
        rooms: per healthy, non-MIG device with a free slot: free MiB, the largest memory percentage
            it can still give, free cores, whether a 100-core request may take it (idle, or not a
            100-core device), and whether its cores are all taken.
    """

    free_slot_devices: int = 0
    max_free_mem: int = -1
    max_free_cores: int = -1
    free_slots: int = 0
    free_mem: int = 0
    free_cores: int = 0
    rooms: tuple[tuple[int, int, int, bool, bool], ...] = ()
    memory_rooms: tuple[int, ...] = ()
    cores_rooms: tuple[int, ...] = ()

    def qualifies(self, tier: RoomTier) -> bool:
        """Whether ``tier.count`` devices can each still give ``tier.level`` in its dimension."""
        rooms = self.memory_rooms if tier.dimension == "memory" else self.cores_rooms
        return len(rooms) >= tier.count and rooms[tier.count - 1] >= tier.level

    @classmethod
    def of(cls, devices: Iterable[DeviceUsage]) -> BackendSummary:
        free_slot_devices = free_slots = free_mem_sum = free_cores_sum = 0
        max_mem = max_cores = -1
        rooms = []
        for device in devices:
            if not device.health or device.count <= device.used:
                continue
            free_slot_devices += 1
            free_slots += device.count - device.used
            free_mem = device.free_mem
            free_cores = device.free_cores
            free_mem_sum += free_mem
            free_cores_sum += free_cores
            max_mem = max(max_mem, free_mem)
            max_cores = max(max_cores, free_cores)
            if device.mode == allocation.MODE_MIG:
                continue
            if device.totalmem > 0:
                percent = min(100, ((free_mem + 1) * 100 - 1) // device.totalmem) if free_mem >= 0 else -1
            else:
                percent = 100
            rooms.append(
                (
                    free_mem,
                    percent,
                    free_cores,
                    device.used == 0 or device.totalcore != _FULL_CORES,
                    device.totalcore != 0 and device.usedcores >= device.totalcore,
                )
            )
        return cls(
            free_slot_devices,
            max_mem,
            max_cores,
            free_slots,
            free_mem_sum,
            free_cores_sum,
            tuple(rooms),
            memory_rooms=tuple(sorted((room[1] for room in rooms), reverse=True)),
            cores_rooms=tuple(sorted((min(_FULL_CORES, room[2]) for room in rooms), reverse=True)),
        )

    def may_fit(self, request: DeviceRequest, *, strict: bool) -> bool:
        """Whether the request might fit; ``False`` is certain, ``True`` needs the real fit.

        ``strict`` applies, device by device, the memory, cores, exclusive-card and exhausted-cores
        checks of the shared fit; without it only devices with a free slot are counted (a backend
        with its own fit may book differently). Type, UUID, cordon and NUMA rules are left to the fit.
        """
        nums = request.nums
        if nums <= 0:
            return True
        if self.free_slot_devices < nums:
            return False
        if not strict:
            return True
        memory = request.memreq
        percent = (
            request.mem_percentage_req
            if memory <= 0 and request.mem_percentage_req != MEM_PERCENTAGE_UNSET
            else -1
        )
        cores = min(request.coresreq, _FULL_CORES)
        if memory > self.max_free_mem or cores > self.max_free_cores:
            return False
        exclusive = cores == _FULL_CORES
        found = 0
        for free_mem, free_percent, free_cores, shareable, exhausted in self.rooms:
            if free_mem < memory or free_percent < percent or free_cores < cores:
                continue
            if (exclusive and not shareable) or (cores == 0 and exhausted):
                continue
            found += 1
            if found >= nums:
                return True
        return False

    def better_than(self, other: BackendSummary) -> bool:
        """Whether capacity was freed: more free slots, memory or cores, or a roomier device."""
        return (
            self.free_slots > other.free_slots
            or self.free_mem > other.free_mem
            or self.free_cores > other.free_cores
            or self.free_slot_devices > other.free_slot_devices
            or self.max_free_mem > other.max_free_mem
            or self.max_free_cores > other.max_free_cores
        )
