"""Decoding a shared-region file: HAMi-core's v1 layout and this project's shim (v1.2 + extension).

Pure: takes the file's bytes, returns a :class:`RegionReading` or raises :class:`RegionError`.
Offsets are ``specs/shim.md`` section 3.2 and ``native/include/hami_shim.h`` (a test compares them
with regions the real shim wrote). A slot whose ``seqlock`` is odd was being written while the
bytes were copied; :func:`torn_slots` names them so the reader can copy those slots again.
"""

from __future__ import annotations

import struct
from typing import TypeAlias

import attrs

MAGIC = 19920718
MAX_DEVICES = 16
MAX_PROCS = 1024
UUID_LEN = 96
#: ``sizeof(shared_region_t)`` of HAMi-core v1.1 / v1.2 (HAMi-core's file is one byte longer).
HAMI_CORE_SIZE = 2_008_952
#: Size of this shim's extension after the HAMi-core layout and its tag.
EXT_SIZE = 720
EXT_TAG = b"HAMISHM1"
SHIM_FILE_SIZE = HAMI_CORE_SIZE + EXT_SIZE

UUIDS_AT = 64
LIMIT_AT = 1600
SM_LIMIT_AT = 1728
PROCS_AT = 1856
SLOT_SIZE = 1960
PROC_NUM_AT = 2_008_896
UTILIZATION_SWITCH_AT = 2_008_900
RECENT_KERNEL_AT = 2_008_904
PRIORITY_AT = 2_008_908
LAST_KERNEL_TIME_AT = 2_008_912
# Inside a slot.
SLOT_USED_AT = 8
DEVICE_MEMORY_SIZE = 64
SLOT_UTIL_AT = 1160
DEVICE_UTIL_SIZE = 48
SLOT_STATUS_AT = 1928
SLOT_SEQLOCK_AT = 1936
# Inside the extension (offsets from its start).
EXT_VERSION_AT = 8
EXT_THROTTLED_AT = 472
EXT_BLOCKED_AT = 600
EXT_OOM_AT = 608

_U64X16 = struct.Struct("<16Q")
_U32X16 = struct.Struct("<16I")
_HEADER = struct.Struct("<iIIi")
_TAIL = struct.Struct("<iiiiQ")
# Per slot: 16 device_memory_t (context, module, data, offset, total, 3 unused) and the sm_util of
# 16 device_util_t (dec, enc, sm, 3 unused).
_SLOT_MEMORY = struct.Struct("<" + "5Q24x" * MAX_DEVICES)
_SLOT_SM_UTIL = struct.Struct("<" + "16xQ24x" * MAX_DEVICES)


#: A region file's bytes (a partial copy keeps unread parts zero).
Buffer: TypeAlias = bytes | bytearray


def proc_num(data: Buffer) -> int:
    """The region's process count field (not yet checked)."""
    return int(struct.unpack_from("<i", data, PROC_NUM_AT)[0])


class RegionError(ValueError):
    """A file that is not a region this reader trusts: truncated, corrupt or of a foreign version."""


@attrs.frozen
class DeviceMemory:
    """Bytes charged on one device: HAMi-core's ``device_memory_t`` fields."""

    context: int = 0
    module: int = 0
    data: int = 0
    total: int = 0

    def __add__(self, other: DeviceMemory) -> DeviceMemory:
        return DeviceMemory(
            self.context + other.context,
            self.module + other.module,
            self.data + other.data,
            self.total + other.total,
        )


@attrs.frozen
class ProcessSlot:
    """One process of the container (``pid`` 0: exited or free)."""

    pid: int
    status: int
    memory: tuple[DeviceMemory, ...]
    sm_util: tuple[int, ...]


@attrs.frozen
class ShimCounters:
    """What only this project's shim records (its extension): per-device compute throttling, the
    time the monitor's priority block held launches, and out-of-memory answers."""

    generation: int
    throttled_ns: tuple[int, ...]
    blocked_ns: int
    oom_count: tuple[int, ...]


@attrs.frozen
class RegionReading:
    """One container's region as read at one moment."""

    layout: str
    version: tuple[int, int]
    device_uuids: tuple[str, ...]
    memory_limits: tuple[int, ...]
    sm_limits: tuple[int, ...]
    slots: tuple[ProcessSlot, ...]
    utilization_switch: int
    recent_kernel: int
    priority: int
    last_kernel_time: int
    counters: ShimCounters | None = None

    @property
    def live_slots(self) -> tuple[ProcessSlot, ...]:
        """Slots of processes still registered (an exited process leaves ``pid`` 0)."""
        return tuple(slot for slot in self.slots if slot.pid != 0)

    def memory(self, device: int) -> DeviceMemory:
        """The container's usage on ``device``: the sum over live processes.

        HAMi's monitor sums every slot below ``proc_num``, so it keeps reporting processes that
        have exited until another process compacts the table; exited slots count zero here.
        """
        total = DeviceMemory()
        for slot in self.live_slots:
            total += slot.memory[device]
        return total

    def sm_util(self, device: int) -> int:
        return sum(slot.sm_util[device] for slot in self.live_slots)


def _uuid(raw: bytes | bytearray) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def _slot(data: Buffer, index: int) -> ProcessSlot:
    base = PROCS_AT + index * SLOT_SIZE
    pid = struct.unpack_from("<i", data, base)[0]
    raw = _SLOT_MEMORY.unpack_from(data, base + SLOT_USED_AT)
    memory = tuple(
        DeviceMemory(raw[i], raw[i + 1], raw[i + 2], raw[i + 4]) for i in range(0, 5 * MAX_DEVICES, 5)
    )
    utils = _SLOT_SM_UTIL.unpack_from(data, base + SLOT_UTIL_AT)
    status = struct.unpack_from("<i", data, base + SLOT_STATUS_AT)[0]
    return ProcessSlot(pid=pid, status=status, memory=memory, sm_util=utils)


def slot_seqlock(data: Buffer, index: int) -> int:
    """The writer counter of slot ``index`` (odd while its process updates its usage)."""
    return int(struct.unpack_from("<Q", data, PROCS_AT + index * SLOT_SIZE + SLOT_SEQLOCK_AT)[0])


def slot_range(index: int) -> tuple[int, int]:
    """Byte offset and length of slot ``index`` in the file."""
    return PROCS_AT + index * SLOT_SIZE, SLOT_SIZE


def _layout(data: Buffer) -> str:
    size = len(data)
    if size < _HEADER.size:
        raise RegionError(f"truncated: {size} bytes")
    flag, major, minor, _ = _HEADER.unpack_from(data, 0)
    if flag != MAGIC:
        raise RegionError(f"no valid header (flag {flag}, want {MAGIC})")
    if size == SHIM_FILE_SIZE and data[HAMI_CORE_SIZE : HAMI_CORE_SIZE + 8] == EXT_TAG:
        ext_version = struct.unpack_from("<I", data, HAMI_CORE_SIZE + EXT_VERSION_AT)[0]
        if (major, minor, ext_version) != (1, 2, 1):
            raise RegionError(f"foreign shim version {major}.{minor} (extension {ext_version})")
        return "hami-shim-1"
    if major != 1 or minor not in (1, 2):
        raise RegionError(f"foreign layout version {major}.{minor} ({size} bytes)")
    if size < HAMI_CORE_SIZE:
        raise RegionError(f"truncated: {size} bytes, a v{major}.{minor} region holds {HAMI_CORE_SIZE}")
    return f"hami-core-{major}.{minor}"


def torn_slots(data: Buffer) -> list[int]:
    """Live slots whose usage was being written while ``data`` was copied (v1.2 and this shim only)."""
    layout = _layout(data)
    if layout == "hami-core-1.1":
        return []
    proc_num = struct.unpack_from("<i", data, PROC_NUM_AT)[0]
    return [i for i in range(max(0, min(proc_num, MAX_PROCS))) if slot_seqlock(data, i) % 2]


def decode(data: Buffer) -> RegionReading:
    """Decode a region file's bytes.

    Raises:
        RegionError: truncated, no valid magic, an unknown version or an impossible process count.
    """
    layout = _layout(data)
    _, major, minor, _ = _HEADER.unpack_from(data, 0)
    device_num = struct.unpack_from("<Q", data, 56)[0]
    if device_num > MAX_DEVICES:
        raise RegionError(f"corrupt device count {device_num}")
    proc_num, switch, recent, priority, last_kernel = _TAIL.unpack_from(data, PROC_NUM_AT)
    if not 0 <= proc_num <= MAX_PROCS:
        raise RegionError(f"corrupt process count {proc_num}")
    uuids = tuple(
        _uuid(data[UUIDS_AT + i * UUID_LEN : UUIDS_AT + (i + 1) * UUID_LEN]) for i in range(device_num)
    )
    counters = None
    if layout == "hami-shim-1":
        ext = HAMI_CORE_SIZE
        counters = ShimCounters(
            generation=struct.unpack_from("<Q", data, ext + 464)[0],
            throttled_ns=_U64X16.unpack_from(data, ext + EXT_THROTTLED_AT),
            blocked_ns=struct.unpack_from("<Q", data, ext + EXT_BLOCKED_AT)[0],
            oom_count=_U32X16.unpack_from(data, ext + EXT_OOM_AT),
        )
    return RegionReading(
        layout=layout,
        version=(major, minor),
        device_uuids=uuids,
        memory_limits=_U64X16.unpack_from(data, LIMIT_AT),
        sm_limits=_U64X16.unpack_from(data, SM_LIMIT_AT),
        slots=tuple(_slot(data, i) for i in range(proc_num)),
        utilization_switch=switch,
        recent_kernel=recent,
        priority=priority,
        last_kernel_time=last_kernel,
        counters=counters,
    )
