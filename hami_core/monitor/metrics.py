"""The monitor's Prometheus metrics: HAMi's names and labels (``specs/hami-wire.md`` 7.2), plus what
HAMi lacks: the container's compute limit, throttled and priority-blocked time, out-of-memory
answers, its priority state, and the region files that could not be read.

Every family is built from the latest :class:`~hami_core.monitor.snapshot.Snapshot` at scrape
time, so a container whose region is gone vanishes from the next scrape. Every sample carries
HAMi's constant label ``zone="vGPU"``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from hami_core.monitor.snapshot import Snapshot

ZONE = ("zone", "vGPU")
HOST_LABELS = ("node", "device_index", "device_uuid", "device_type")
HOST_MC_LABELS = ("device_index", "device_uuid", "device_type")
CONTAINER_LABELS = ("namespace", "pod", "container", "vdevice_index", "device_uuid")
#: HAMi takes the first 40 characters of a region's UUID (``GPU-`` and 36).
UUID_CHARS = 40

#: name -> (help, labels) of every family the monitor exports; a test compares HAMi's with spec 7.2.
HAMI_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hami_host_gpu_memory_used_bytes": ("GPU device memory usage on the host, in bytes", HOST_LABELS),
    "hami_host_gpu_utilization_ratio": ("GPU core utilization on the host, 0-100", HOST_LABELS),
    "hami_host_gpu_memory_controller_utilization_ratio": (
        "GPU memory-controller utilization on the host, 0-100",
        HOST_MC_LABELS,
    ),
    "hami_vgpu_memory_used_bytes": ("Device memory a container uses, in bytes", CONTAINER_LABELS),
    "hami_vgpu_memory_limit_bytes": ("Device memory limit of a container, in bytes", CONTAINER_LABELS),
    "hami_container_device_memory_bytes": ("Device memory a container uses, in bytes", CONTAINER_LABELS),
    "hami_container_device_utilization_ratio": ("SM utilization of a container, 0-100", CONTAINER_LABELS),
    "hami_container_last_kernel_elapsed_seconds": (
        "Seconds since the container last launched a kernel",
        CONTAINER_LABELS,
    ),
    "hami_vgpu_memory_context_bytes": ("Context memory of a container, in bytes", CONTAINER_LABELS),
    "hami_vgpu_memory_module_bytes": ("Module memory of a container, in bytes", CONTAINER_LABELS),
    "hami_vgpu_memory_buffer_bytes": ("Buffer memory of a container, in bytes", CONTAINER_LABELS),
}
#: Families HAMi's monitor does not have.
EXTRA_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hami_container_core_limit_ratio": (
        "Compute limit of a container, percent (100: none)",
        CONTAINER_LABELS,
    ),
    "hami_container_throttled_seconds": (
        "Time the container's launches waited for compute budget",
        CONTAINER_LABELS,
    ),
    "hami_container_oom": ("Allocations answered out-of-memory by the shim", CONTAINER_LABELS),
    "hami_container_priority_blocked_seconds": (
        "Time the container's launches waited while a more important container ran",
        ("namespace", "pod", "container"),
    ),
    "hami_container_priority": (
        "The container's task priority (0 high, 1 low)",
        ("namespace", "pod", "container"),
    ),
    "hami_container_priority_blocked": (
        "1 while the monitor blocks the container's launches",
        ("namespace", "pod", "container"),
    ),
    "hami_monitor_region_errors": ("Region files skipped in the last scan", ("kind",)),
}
_COUNTERS = {
    "hami_container_throttled_seconds",
    "hami_container_oom",
    "hami_container_priority_blocked_seconds",
}


def _family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    help_text, labels = HAMI_FAMILIES.get(name) or EXTRA_FAMILIES[name]
    kind = CounterMetricFamily if name in _COUNTERS else GaugeMetricFamily
    return kind(name, help_text, labels=[*labels, ZONE[0]])


def families(snapshot: Snapshot, node: str) -> list[Metric]:
    """Every metric family for ``snapshot`` (taken on ``node``)."""
    out = {name: _family(name) for name in [*HAMI_FAMILIES, *EXTRA_FAMILIES]}

    def add(name: str, labels: list[str], value: float) -> None:
        out[name].add_metric([*labels, ZONE[1]], value)

    for device in snapshot.host:
        host = [node, str(device.index), device.uuid, device.type]
        add("hami_host_gpu_memory_used_bytes", host, device.memory_used_bytes)
        add("hami_host_gpu_utilization_ratio", host, device.utilization)
        add("hami_host_gpu_memory_controller_utilization_ratio", host[1:], device.memory_utilization)
    for sample in snapshot.containers:
        reading = sample.reading
        who = [sample.pod.namespace, sample.pod.name, sample.container]
        elapsed = max(0.0, snapshot.taken_at - reading.last_kernel_time) if reading.last_kernel_time else 0.0
        for index, uuid in enumerate(reading.device_uuids):
            if not uuid:
                continue
            labels = [*who, str(index), uuid[:UUID_CHARS]]
            memory = reading.memory(index)
            add("hami_vgpu_memory_used_bytes", labels, memory.total)
            add("hami_vgpu_memory_limit_bytes", labels, reading.memory_limits[index])
            add("hami_container_device_memory_bytes", labels, memory.total)
            add("hami_container_device_utilization_ratio", labels, reading.sm_util(index))
            add("hami_container_last_kernel_elapsed_seconds", labels, elapsed)
            add("hami_vgpu_memory_context_bytes", labels, memory.context)
            add("hami_vgpu_memory_module_bytes", labels, memory.module)
            add("hami_vgpu_memory_buffer_bytes", labels, memory.data)
            limit = reading.sm_limits[index]
            add("hami_container_core_limit_ratio", labels, limit if 0 < limit <= 100 else 100)
            if reading.counters is not None:
                add("hami_container_throttled_seconds", labels, reading.counters.throttled_ns[index] / 1e9)
                add("hami_container_oom", labels, reading.counters.oom_count[index])
        if reading.counters is not None:
            add("hami_container_priority_blocked_seconds", who, reading.counters.blocked_ns / 1e9)
        add("hami_container_priority", who, reading.priority)
        add("hami_container_priority_blocked", who, 1 if reading.recent_kernel < 0 else 0)
    kinds: dict[str, int] = {}
    for problem in snapshot.problems:
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
    for kind, count in sorted(kinds.items()):
        add("hami_monitor_region_errors", [kind], count)
    return list(out.values())


class MonitorCollector(Collector):
    """Serves :func:`families` of whatever snapshot ``latest`` returns at scrape time."""

    def __init__(self, latest: Callable[[], Snapshot], node: str) -> None:
        self._latest = latest
        self._node = node

    def collect(self) -> Iterator[Metric]:
        yield from families(self._latest(), self._node)
