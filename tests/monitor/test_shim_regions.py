"""The reader on regions the real shim wrote from processes over the fake driver."""

from __future__ import annotations

import struct
from pathlib import Path

from hami_core.monitor import layout
from hami_core.monitor.regions import read_region
from tests.monitor.conftest import ShimProcess
from tests.monitor.conftest import spawn

MIB = 1 << 20
CONTEXT = 256 * MIB  # HAMI_PRIMARY_CONTEXT_CHARGE
FAKE_UUID = "GPU-fa000000-0000-0000-0000-000000000000"


def test_usage_limits_and_exit(tmp_path: Path, shim_processes: list[ShimProcess]) -> None:
    cache = tmp_path / "r.cache"
    env = {"CUDA_DEVICE_MEMORY_LIMIT_0": "2g", "CUDA_DEVICE_SM_LIMIT": "40", "CUDA_TASK_PRIORITY": "0"}
    a = spawn(shim_processes, cache, **env)
    b = spawn(shim_processes, cache, **env)
    assert a.do("alloc 300") == "0"
    assert b.do("alloc 200") == "0"
    reading = read_region(cache)
    assert cache.stat().st_size == layout.SHIM_FILE_SIZE
    assert reading.layout == "hami-shim-1"
    assert reading.device_uuids == (FAKE_UUID,)
    assert reading.memory_limits[0] == 2048 * MIB
    assert reading.sm_limits[0] == 40
    assert reading.priority == 0
    assert len(reading.live_slots) == 2
    assert reading.memory(0).data == 500 * MIB
    assert reading.memory(0).context == 2 * CONTEXT
    assert reading.memory(0).total == 500 * MIB + 2 * CONTEXT
    assert reading.last_kernel_time > 0
    b.exit()
    reading = read_region(cache)
    assert reading.memory(0).total == 300 * MIB + CONTEXT
    a.exit()
    assert read_region(cache).memory(0).total == 0


def test_out_of_memory_answers_are_counted(tmp_path: Path, shim_processes: list[ShimProcess]) -> None:
    cache = tmp_path / "r.cache"
    p = spawn(shim_processes, cache, CUDA_DEVICE_MEMORY_LIMIT="1g")
    assert p.do("alloc 512") == "0"
    assert p.do("alloc 512") == "2"  # CUDA_ERROR_OUT_OF_MEMORY
    assert p.do("alloc 600") == "2"
    reading = read_region(cache)
    assert reading.counters is not None
    assert reading.counters.oom_count[0] == 2
    assert reading.memory(0).data == 512 * MIB


def test_throttled_time_is_recorded(tmp_path: Path, shim_processes: list[ShimProcess]) -> None:
    cache = tmp_path / "r.cache"
    # 1 ms of GPU time per launch under a 20 % limit: once the cost is learned (a few dozen
    # launches), each launch waits about 4 ms.
    p = spawn(shim_processes, cache, CUDA_DEVICE_SM_LIMIT="20", SHIM_PROCESS_KERNEL="k_1000000")
    p.do("launch 120")
    reading = read_region(cache)
    assert reading.counters is not None
    assert reading.counters.throttled_ns[0] > 50_000_000
    assert reading.counters.blocked_ns == 0


def test_torn_slot_is_copied_again(tmp_path: Path, shim_processes: list[ShimProcess]) -> None:
    """A slot whose seqlock is odd is being written: ``torn_slots`` names it for another copy; one
    that stays odd (a writer that died mid-update) still gives a reading after the retries."""
    cache = tmp_path / "r.cache"
    p = spawn(shim_processes, cache)
    assert p.do("alloc 10") == "0"
    data = bytearray(cache.read_bytes())
    at = layout.PROCS_AT + layout.SLOT_SEQLOCK_AT
    seq = struct.unpack_from("<Q", data, at)[0]
    assert seq % 2 == 0
    assert seq > 0
    struct.pack_into("<Q", data, at, seq + 1)
    assert layout.torn_slots(bytes(data)) == [0]
    frozen = tmp_path / "frozen.cache"
    frozen.write_bytes(bytes(data))
    assert read_region(frozen).memory(0).data == 10 * MIB
