"""Finding and reading the shared-region files on a node, and the monitor's two writes.

HAMi's device plugin mounts ``<HOOK_PATH>/containers/<podUID>_<container>`` into each container
and points ``CUDA_DEVICE_MEMORY_SHARED_CACHE`` at a ``*.cache`` file in it (``specs/shim.md`` 3.4);
the root here is that ``containers`` directory. Reading takes no lock: ``pread`` copies the parts
in use, and only slots caught mid-update (odd ``seqlock``) are copied again, so no shim ever waits
for the monitor.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import attrs

from hami_core.monitor import layout
from hami_core.monitor.layout import RegionError
from hami_core.monitor.layout import RegionReading

#: How many times a torn slot is copied again before the reading is taken as it is.
_TORN_RETRIES = 20


@attrs.frozen
class RegionFile:
    """A region file and the container it belongs to, from its directory's name."""

    path: Path
    pod_uid: str
    container: str

    @property
    def directory(self) -> Path:
        return self.path.parent


def container_dirs(root: Path) -> Iterator[tuple[Path, str, str]]:
    """``(directory, pod UID, container)`` for every ``<root>/<podUID>_<container>``."""
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        uid, sep, container = entry.name.partition("_")
        if sep and uid and container and entry.is_dir():
            yield entry, uid, container


def find_regions(root: Path) -> list[RegionFile]:
    """Each container directory's first ``*.cache`` file (HAMi's monitor takes the first one too)."""
    found = []
    for directory, uid, container in container_dirs(root):
        caches = sorted(p for p in directory.glob("*.cache") if p.is_file())
        if caches:
            found.append(RegionFile(caches[0], uid, container))
    return found


def read_region(path: Path) -> RegionReading:
    """Copy and decode the region at ``path`` without locking it.

    Raises:
        RegionError: the file is truncated, corrupt or of a foreign version.
        OSError: the file cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # Never more than the largest layout: a huge foreign file costs no more than a region.
        size = min(os.fstat(fd).st_size, layout.SHIM_FILE_SIZE)
        if size < layout.HAMI_CORE_SIZE:
            return layout.decode(os.pread(fd, size, 0))  # raises: too short for any layout
        # Only what is read: the header, the tail (and extension), and the slots in use.
        data = bytearray(size)
        data[: layout.PROCS_AT] = os.pread(fd, layout.PROCS_AT, 0)
        data[layout.PROC_NUM_AT :] = os.pread(fd, size - layout.PROC_NUM_AT, layout.PROC_NUM_AT)
        used = max(0, min(layout.proc_num(data), layout.MAX_PROCS)) * layout.SLOT_SIZE
        data[layout.PROCS_AT : layout.PROCS_AT + used] = os.pread(fd, used, layout.PROCS_AT)
        for _ in range(_TORN_RETRIES):
            torn = layout.torn_slots(data)
            if not torn:
                break
            for index in torn:
                offset, length = layout.slot_range(index)
                data[offset : offset + length] = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    return layout.decode(data)


class RegionWriter:
    """The monitor's writes into one region: ``recent_kernel`` and ``utilization_switch``.

    Each is one aligned 4-byte store into the shared mapping, the same word the shim reads on
    every launch. Open only files :func:`read_region` accepted.
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size < layout.HAMI_CORE_SIZE:
                raise RegionError(f"{path}: truncated")
            self._map = mmap.mmap(
                fd, layout.HAMI_CORE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        finally:
            os.close(fd)
        self._recent = ctypes.c_int32.from_buffer(self._map, layout.RECENT_KERNEL_AT)
        self._switch = ctypes.c_int32.from_buffer(self._map, layout.UTILIZATION_SWITCH_AT)

    @property
    def recent_kernel(self) -> int:
        return int(self._recent.value)

    @recent_kernel.setter
    def recent_kernel(self, value: int) -> None:
        self._recent.value = value

    @property
    def utilization_switch(self) -> int:
        return int(self._switch.value)

    @utilization_switch.setter
    def utilization_switch(self, value: int) -> None:
        self._switch.value = value

    def close(self) -> None:
        del self._recent, self._switch
        self._map.close()

    def __enter__(self) -> RegionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
