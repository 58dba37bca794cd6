"""The monitor's loop: scan the node's regions, map them to pods, coordinate priorities, reap the
directories of deleted pods. Each step is a method so tests drive ticks themselves (no timers).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hami_core.monitor import priority
from hami_core.monitor.cleanup import Reaper
from hami_core.monitor.layout import RegionError
from hami_core.monitor.layout import RegionReading
from hami_core.monitor.pods import PodRef
from hami_core.monitor.pods import index_pods
from hami_core.monitor.regions import RegionFile
from hami_core.monitor.regions import RegionWriter
from hami_core.monitor.regions import container_dirs
from hami_core.monitor.regions import find_regions
from hami_core.monitor.regions import read_region
from hami_core.monitor.snapshot import ContainerSample
from hami_core.monitor.snapshot import HostDevice
from hami_core.monitor.snapshot import RegionProblem
from hami_core.monitor.snapshot import Snapshot

log = logging.getLogger(__name__)

#: Lists the node's pods as API objects; raises OSError or HamiError when the source is down.
PodSource = Callable[[], Iterable[Mapping[str, Any]]]
HostSource = Callable[[], Iterable[HostDevice]]


def _problem_kind(err: Exception) -> str:
    text = str(err)
    if isinstance(err, OSError):
        return "unreadable"
    if text.startswith("truncated"):
        return "truncated"
    if "version" in text:
        return "foreign_version"
    return "corrupt"


class Monitor:
    """One node's monitor state; :meth:`tick` is one round of its loop."""

    def __init__(
        self,
        root: Path,
        pods: PodSource,
        *,
        host: HostSource | None = None,
        grace: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self._pods = pods
        self._host = host
        self._clock = clock
        self._reaper = Reaper(grace)
        self._index: dict[str, PodRef] | None = None
        self._reported: set[tuple[Path, str]] = set()
        self._lock = threading.Lock()
        self._latest = Snapshot()

    def latest(self) -> Snapshot:
        with self._lock:
            return self._latest

    def _refresh_pods(self) -> bool:
        try:
            self._index = index_pods(self._pods())
        except Exception as err:  # any source failure keeps the last listing (and reaps nothing)
            log.warning("cannot list the node's pods: %s", err)
            return False
        return True

    def _read_all(self) -> tuple[list[tuple[RegionFile, RegionReading]], list[RegionProblem]]:
        readings, problems = [], []
        for region in find_regions(self.root):
            try:
                readings.append((region, read_region(region.path)))
            except (RegionError, OSError) as err:
                problem = RegionProblem(region.path, _problem_kind(err), str(err))
                problems.append(problem)
                if (region.path, problem.message) not in self._reported:
                    log.warning("skipping region %s (%s): %s", region.path, problem.kind, problem.message)
                    self._reported.add((region.path, problem.message))
        return readings, problems

    def scan(self) -> tuple[Snapshot, list[tuple[RegionFile, RegionReading]]]:
        """Read every region and map it to its pod; regions of unknown pods are left out of the
        snapshot (they still take part in priority coordination)."""
        listed = self._refresh_pods()
        readings, problems = self._read_all()
        index = self._index or {}
        samples = tuple(
            ContainerSample(index[region.pod_uid], region.pod_uid, region.container, region.path, reading)
            for region, reading in readings
            if region.pod_uid in index
        )
        host: tuple[HostDevice, ...] = ()
        if self._host is not None:
            try:
                host = tuple(self._host())
            except Exception as err:  # the host library failing must not stop container metrics
                log.warning("cannot read the host GPUs: %s", err)
        snapshot = Snapshot(samples, tuple(problems), host, self._clock())
        with self._lock:
            self._latest = snapshot
        if listed:
            self._reap(index)
        return snapshot, readings

    def coordinate(
        self, readings: Iterable[tuple[RegionFile, RegionReading]]
    ) -> list[priority.PriorityWrite]:
        """One priority tick over ``readings``; returns the writes made."""
        by_key = {str(region.path): region for region, _ in readings}
        states = [
            priority.PriorityState(
                key=str(region.path),
                devices=tuple(uuid for uuid in reading.device_uuids if uuid),
                priority=reading.priority,
                recent_kernel=reading.recent_kernel,
                utilization_switch=reading.utilization_switch,
            )
            for region, reading in readings
        ]
        writes = priority.plan(states)
        for write in writes:
            try:
                with RegionWriter(by_key[write.key].path) as region:
                    if write.recent_kernel is not None:
                        if write.recent_kernel < 0 <= region.recent_kernel:
                            log.info("blocking %s while a more important container runs", write.key)
                        elif write.recent_kernel >= 0 > region.recent_kernel:
                            log.info("unblocking %s", write.key)
                        region.recent_kernel = write.recent_kernel
                    if write.utilization_switch is not None:
                        region.utilization_switch = write.utilization_switch
            except (OSError, RegionError, ValueError) as err:
                log.warning("cannot update region %s: %s", write.key, err)
        return writes

    def _reap(self, index: Mapping[str, PodRef]) -> None:
        orphans = [directory for directory, uid, _ in container_dirs(self.root) if uid not in index]
        for directory in self._reaper.due(orphans, self._clock()):
            log.info("removing %s: its pod is gone", directory)
            shutil.rmtree(directory, ignore_errors=True)
            self._reaper.forget(directory)

    def tick(self) -> Snapshot:
        snapshot, readings = self.scan()
        self.coordinate(readings)
        return snapshot

    def tick_step(self) -> None:
        """:meth:`tick` as a :class:`~hami_core.looping.Loop` step (waits the loop's interval)."""
        self.tick()
