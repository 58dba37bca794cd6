"""What one scan of a node found: each container's region reading, the files it could not read,
and the host GPUs' own figures. Value types shared by the scanner, the metrics and priority."""

from __future__ import annotations

from pathlib import Path

import attrs

from hami_core.monitor.layout import RegionReading
from hami_core.monitor.pods import PodRef


@attrs.frozen
class ContainerSample:
    """One container's region, with the pod it belongs to."""

    pod: PodRef
    pod_uid: str
    container: str
    path: Path
    reading: RegionReading


@attrs.frozen
class RegionProblem:
    """A region file that was skipped, and why."""

    path: Path
    kind: str
    message: str


@attrs.frozen
class HostDevice:
    """A physical GPU as the host's management library sees it."""

    index: int
    uuid: str
    type: str
    memory_used_bytes: int
    utilization: int
    memory_utilization: int


@attrs.frozen
class Snapshot:
    containers: tuple[ContainerSample, ...] = ()
    problems: tuple[RegionProblem, ...] = ()
    host: tuple[HostDevice, ...] = ()
    taken_at: float = 0.0
