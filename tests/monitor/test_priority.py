"""Priority coordination: the planner's rules, then real shim processes being blocked and released."""

from __future__ import annotations

import time
from pathlib import Path

from hami_core.monitor.priority import PriorityState
from hami_core.monitor.priority import PriorityWrite
from hami_core.monitor.priority import plan
from hami_core.monitor.regions import read_region
from hami_core.monitor.service import Monitor
from tests.monitor.conftest import ShimProcess
from tests.monitor.conftest import spawn

GPU0, GPU1 = "GPU-a", "GPU-b"


def state(
    key: str, priority: int, recent: int, devices: tuple[str, ...] = (GPU0,), switch: int = 1
) -> PriorityState:
    return PriorityState(key, devices, priority, recent, switch)


def test_active_high_priority_blocks_low_on_the_same_device_only() -> None:
    writes = plan([state("high", 0, 2), state("low", 1, 2), state("other", 1, 2, (GPU1,))])
    assert writes == [
        PriorityWrite("high", recent_kernel=1, utilization_switch=0),
        PriorityWrite("low", recent_kernel=-1),
        PriorityWrite("other", recent_kernel=1, utilization_switch=0),
    ]


def test_idle_high_priority_releases_low() -> None:
    # high launched nothing since the last tick (1 counts down to 0): low is released.
    assert plan([state("high", 0, 1, switch=0), state("low", 1, -1)]) == [
        PriorityWrite("high", recent_kernel=0),
        PriorityWrite("low", recent_kernel=0, utilization_switch=0),
    ]


def test_equal_priorities_never_block_each_other() -> None:
    writes = plan([state("a", 1, 2, switch=0), state("b", 1, 2, switch=0)])
    assert all(write.recent_kernel == 1 for write in writes)


def test_steady_state_writes_nothing() -> None:
    assert plan([state("a", 0, 0, switch=0), state("b", 1, 0, switch=0)]) == []


def test_multi_device_container_is_blocked_by_any_of_its_devices() -> None:
    writes = plan([state("high", 0, 2, (GPU1,)), state("low", 1, 0, (GPU0, GPU1))])
    assert PriorityWrite("low", recent_kernel=-1) in writes


def rate(process: ShimProcess, seconds: float) -> float:
    before = int(process.do("count"))
    time.sleep(seconds)
    return (int(process.do("count")) - before) / seconds


def test_low_priority_launch_rate_drops_while_high_priority_runs(
    tmp_path: Path, shim_processes: list[ShimProcess]
) -> None:
    """Two containers on the fake GPU: the monitor blocks the low-priority one's launches while the
    high-priority one launches, and releases them once it has been idle for a tick."""
    uid_high, uid_low = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
    caches = {}
    for uid in (uid_high, uid_low):
        directory = tmp_path / "containers" / f"{uid}_main"
        directory.mkdir(parents=True)
        caches[uid] = directory / "r.cache"
    high = spawn(shim_processes, caches[uid_high], CUDA_TASK_PRIORITY="0")
    low = spawn(shim_processes, caches[uid_low], CUDA_TASK_PRIORITY="1")
    high.do("alloc 1")
    low.do("alloc 1")
    pods = [
        {"metadata": {"uid": uid_high, "name": "high", "namespace": "default"}},
        {"metadata": {"uid": uid_low, "name": "low", "namespace": "default"}},
    ]
    monitor = Monitor(tmp_path / "containers", lambda: pods)
    low.do("start")
    monitor.tick()  # a new region starts at recent_kernel 2, as if it had just launched ...
    monitor.tick()  # ... so it takes a second tick to count the high-priority one idle
    assert read_region(caches[uid_low]).recent_kernel >= 0
    alone = rate(low, 0.3)
    assert alone > 1000

    high.do("launch 1")  # the high-priority container is active ...
    monitor.tick()  # ... so this tick blocks the low-priority one
    assert read_region(caches[uid_low]).recent_kernel == -1
    rate(low, 0.05)  # a launch already past the gate may finish
    blocked = rate(low, 0.3)
    assert blocked < alone / 100
    high.do("launch 1")
    monitor.tick()  # still active: still blocked
    assert rate(low, 0.2) < alone / 100

    monitor.tick()  # high launched nothing since the last tick: released
    assert read_region(caches[uid_low]).recent_kernel >= 0
    rate(low, 0.05)
    released = rate(low, 0.3)
    assert released > alone / 20  # rates on a shared build machine vary several-fold
    low.do("stop")
    counters = read_region(caches[uid_low]).counters
    assert counters is not None
    assert counters.blocked_ns > 300_000_000
