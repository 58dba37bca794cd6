"""The scheduler's Prometheus metrics, in its own ``CollectorRegistry`` (never the global one).

Device and quota gauges keep HAMi's names and labels (``specs/hami-wire.md`` 7.1, const label
``zone="vGPU"``) so existing dashboards keep working; they are read from the cache when scraped, so
keeping them costs nothing per event. New metrics close HAMi's observability gap (issues #2458,
#2612): filter and bind latency histograms, filter outcomes and per-node rejection reasons, node lock
wait time, leadership, prompt retries and per-device health.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from collections.abc import Iterator
from importlib import metadata

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from hami_core.scheduler.cache import ClusterCache

_MIB = 1024 * 1024
_ZONE = {"zone": "vGPU"}
#: Filter and bind latencies: sub-millisecond to the 30 s extender timeout.
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def _version() -> str:
    try:
        return metadata.version("hami-core")
    except metadata.PackageNotFoundError:
        return "unknown"


class DeviceCollector(Collector):
    """HAMi's per-device, per-pod and quota gauges, computed from the cache at scrape time."""

    def __init__(self, cache: ClusterCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        device = ["node", "device_uuid", "device_index", "device_type", "zone"]
        memory_limit = GaugeMetricFamily(
            "hami_gpu_memory_limit_bytes", "Device memory in bytes", labels=device
        )
        core_limit = GaugeMetricFamily(
            "hami_gpu_core_limit_ratio", "Device compute in percent units", labels=device
        )
        memory_allocated = GaugeMetricFamily(
            "hami_gpu_memory_allocated_bytes",
            "Device memory allocated to pods, in bytes",
            labels=["node", "device_uuid", "device_index", "device_cores", "device_type", "zone"],
        )
        shared = GaugeMetricFamily("hami_gpu_shared_count", "Containers sharing the device", labels=device)
        core_allocated = GaugeMetricFamily(
            "hami_gpu_core_allocated_ratio",
            "Device compute allocated to pods, in percent units",
            labels=device,
        )
        overview = GaugeMetricFamily(
            "hami_node_gpu_overview",
            "Device memory allocated, in bytes, with the device's limits as labels",
            labels=[
                "node",
                "device_uuid",
                "device_index",
                "device_cores",
                "device_memory_limit",
                "device_type",
                "zone",
            ],
        )
        memory_ratio = GaugeMetricFamily(
            "hami_node_gpu_memory_allocated_ratio", "Allocated share of the device memory", labels=device
        )
        slots = GaugeMetricFamily(
            "hami_scheduler_device_slots",
            "Containers a device may be shared by (its split count)",
            labels=device[:-1],
        )
        healthy = GaugeMetricFamily(
            "hami_scheduler_device_healthy",
            "1 when the device is registered healthy, 0 otherwise",
            labels=["node", "backend", "device_uuid", "device_index", "device_type"],
        )
        for view in self._cache.views():
            for backend, devices in view.devices.items():
                for d in devices:
                    base = [view.name, d.id, str(d.index), d.type]
                    memory_limit.add_metric([*base, "vGPU"], d.totalmem * _MIB)
                    core_limit.add_metric([*base, "vGPU"], d.totalcore)
                    memory_allocated.add_metric(
                        [view.name, d.id, str(d.index), str(d.totalcore), d.type, "vGPU"], d.usedmem * _MIB
                    )
                    shared.add_metric([*base, "vGPU"], d.used)
                    core_allocated.add_metric([*base, "vGPU"], d.usedcores)
                    overview.add_metric(
                        [view.name, d.id, str(d.index), str(d.totalcore), str(d.totalmem), d.type, "vGPU"],
                        d.usedmem * _MIB,
                    )
                    if d.totalmem > 0:
                        memory_ratio.add_metric([*base, "vGPU"], d.usedmem / d.totalmem)
                    slots.add_metric(base, d.count)
                    healthy.add_metric(
                        [view.name, backend, d.id, str(d.index), d.type], 1.0 if d.health else 0.0
                    )
        yield from (
            memory_limit,
            core_limit,
            memory_allocated,
            shared,
            core_allocated,
            overview,
            memory_ratio,
        )
        yield from (slots, healthy)
        yield from self._pods()
        yield from self._quotas()

    def _pods(self) -> Iterator[Metric]:
        labels = ["namespace", "node", "pod", "container_index", "device_uuid", "zone"]
        memory = GaugeMetricFamily(
            "hami_vgpu_memory_allocated_bytes", "Device memory a pod holds, in bytes", labels=labels
        )
        cores = GaugeMetricFamily(
            "hami_vgpu_core_allocated_ratio", "Device compute a pod holds", labels=labels
        )
        for held in self._cache.allocations():
            for bookings in held.bookings.values():
                for booking in bookings:
                    values = [held.namespace, held.node, held.name, "0", booking.device.uuid, "vGPU"]
                    memory.add_metric(values, booking.device.usedmem * _MIB)
                    cores.add_metric(values, booking.device.usedcores)
        yield from (memory, cores)

    def _quotas(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "hami_resource_quota_used",
            "Device quota used in the namespace",
            labels=["namespace", "quota_name", "limit", "zone"],
        )
        limit = GaugeMetricFamily(
            "hami_resource_quota_limit",
            "Device quota limit of the namespace",
            labels=["namespace", "quota_name", "zone"],
        )
        for entry in self._cache.quotas.entries:
            usage = self._cache.namespace_usage(entry.namespace, entry.backend)
            value = usage.memory if entry.kind == "memory" else usage.cores
            used.add_metric([entry.namespace, entry.quota, entry.resource, "vGPU"], value)
            limit.add_metric([entry.namespace, entry.quota, "vGPU"], entry.limit)
        yield from (used, limit)


class SchedulerMetrics:
    """Every scheduler metric, registered in a fresh registry.

    Args:
        cache: read by the device gauges at scrape time; ``None`` leaves them out.
        is_leader: read by the leadership gauge at scrape time.
    """

    def __init__(
        self, cache: ClusterCache | None = None, *, is_leader: Callable[[], bool] = lambda: True
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        build = Gauge(
            "hami_build_info",
            "Build information",
            ["version", "revision", "build_date", "go_version", "compiler", "platform"],
            registry=self.registry,
        )
        build.labels(
            _version(),
            "",
            "",
            f"python{platform.python_version()}",
            platform.python_implementation().lower(),
            f"{platform.system().lower()}/{platform.machine()}",
        ).set(1)
        self.filter_duration = Histogram(
            "hami_scheduler_filter_duration_seconds",
            "Time to answer one extender filter call",
            ["result"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.filter_phase = Histogram(
            "hami_scheduler_filter_phase_duration_seconds",
            "Time one filter call spent per phase: body decode, choose, commit, reply encode",
            ["phase"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._phases: dict[str, Histogram] = {}
        self.filter_results = Counter(
            "hami_scheduler_filter", "Filter calls by result", ["result"], registry=self.registry
        )
        self.node_rejections = Counter(
            "hami_scheduler_filter_node_rejections",
            "Nodes a filter call rejected, by HAMi reason key",
            ["reason"],
            registry=self.registry,
        )
        self.nodes_evaluated = Histogram(
            "hami_scheduler_filter_nodes_evaluated",
            "Nodes fitted per filter call",
            buckets=(0, 1, 2, 4, 8, 16, 64, 256, 1024, 4096, 16384),
            registry=self.registry,
        )
        self.bind_duration = Histogram(
            "hami_scheduler_bind_duration_seconds",
            "Time to answer one extender bind call",
            ["result"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bind_refused = Counter(
            "hami_scheduler_bind_refused",
            "Bind calls refused because they were not for what the filter placed, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.cache_warnings = Counter(
            "hami_scheduler_cache_warnings",
            "Annotation items the cache skipped (unreadable allocations or registrations, devices "
            "rejected by the register bounds), by object kind and event reason",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.lock_wait = Histogram(
            "hami_scheduler_node_lock_wait_seconds",
            "Time a bind waited for the node lock",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "hami_scheduler_retry_requests",
            "Pending pods asked to be retried because device capacity was freed",
            registry=self.registry,
        )
        leader = Gauge("hami_scheduler_leader", "1 while this replica is the leader", registry=self.registry)
        leader.set_function(lambda: 1.0 if is_leader() else 0.0)
        if cache is not None:
            self.registry.register(DeviceCollector(cache))

    def observe_phase(self, phase: str, seconds: float) -> None:
        """Record ``seconds`` spent in one phase of a filter call."""
        child = self._phases.get(phase)
        if child is None:
            child = self._phases[phase] = self.filter_phase.labels(phase)
        child.observe(seconds)
