"""Metrics: HAMi's device gauges from the cache, the new latency and outcome metrics, own registry."""

from __future__ import annotations

from prometheus_client import generate_latest

from hami_core.pods import PodView
from hami_core.scheduler.metrics import SchedulerMetrics
from hami_core.scheduler.quota import limits_from_quotas
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node


def test_hamis_device_gauges_report_limits_and_what_pods_hold() -> None:
    made = harness()
    made.add_node(registered_node("n", gpus("GPU", 1)))
    made.filtering.filter(PodView.from_object(made.add_pod(gpu_pod("p", memory=3000, cores=30))), ["n"])
    made.sync()
    registry = SchedulerMetrics(made.cache).registry
    device = {
        "node": "n",
        "device_uuid": "GPU-0",
        "device_index": "0",
        "device_type": "NVIDIA-Tesla V100",
        "zone": "vGPU",
    }
    assert registry.get_sample_value("hami_gpu_memory_limit_bytes", device) == 8000 * 2**20
    assert registry.get_sample_value("hami_gpu_core_limit_ratio", device) == 100
    assert registry.get_sample_value("hami_gpu_shared_count", device) == 1
    assert registry.get_sample_value("hami_gpu_core_allocated_ratio", device) == 30
    assert (
        registry.get_sample_value("hami_gpu_memory_allocated_bytes", {**device, "device_cores": "100"})
        == 3000 * 2**20
    )
    assert registry.get_sample_value("hami_node_gpu_memory_allocated_ratio", device) == 3000 / 8000
    pod = {
        "namespace": "default",
        "node": "n",
        "pod": "p",
        "container_index": "0",
        "device_uuid": "GPU-0",
        "zone": "vGPU",
    }
    assert registry.get_sample_value("hami_vgpu_memory_allocated_bytes", pod) == 3000 * 2**20
    health = {
        "node": "n",
        "backend": "nvidia",
        "device_uuid": "GPU-0",
        "device_index": "0",
        "device_type": "NVIDIA-Tesla V100",
    }
    assert registry.get_sample_value("hami_scheduler_device_healthy", health) == 1
    assert (
        registry.get_sample_value(
            "hami_scheduler_device_slots", {k: v for k, v in device.items() if k != "zone"}
        )
        == 10
    )


def test_quota_gauges_report_use_and_limit() -> None:
    made = harness()
    made.add_node(registered_node("n", gpus("GPU", 1)))
    quota = {"metadata": {"name": "q", "namespace": "default"}, "spec": {"hard": {f"limits.{MEM}": "8000"}}}
    made.cache.set_quotas(limits_from_quotas([quota], [NvidiaLikeBackend()]))  # type: ignore[list-item]
    made.filtering.filter(PodView.from_object(made.add_pod(gpu_pod("p", memory=3000))), ["n"])
    made.sync()
    registry = SchedulerMetrics(made.cache).registry
    used = {"namespace": "default", "quota_name": "q", "limit": f"limits.{MEM}", "zone": "vGPU"}
    assert registry.get_sample_value("hami_resource_quota_used", used) == 3000
    assert (
        registry.get_sample_value(
            "hami_resource_quota_limit", {"namespace": "default", "quota_name": "q", "zone": "vGPU"}
        )
        == 8000
    )


def test_every_instance_has_its_own_registry() -> None:
    first, second = SchedulerMetrics(), SchedulerMetrics(is_leader=lambda: False)
    first.filter_results.labels("scheduled").inc()
    first.filter_duration.labels("scheduled").observe(0.002)
    first.bind_duration.labels("bound").observe(0.002)
    assert second.registry.get_sample_value("hami_scheduler_filter_total", {"result": "scheduled"}) is None
    assert first.registry.get_sample_value("hami_scheduler_leader") == 1
    assert second.registry.get_sample_value("hami_scheduler_leader") == 0
    text = generate_latest(first.registry).decode()
    for name in (
        "hami_build_info",
        "hami_scheduler_filter_duration_seconds_bucket",
        "hami_scheduler_bind_duration_seconds",
        "hami_scheduler_node_lock_wait_seconds",
        "hami_scheduler_retry_requests_total",
        "hami_scheduler_filter_nodes_evaluated",
    ):
        assert name in text
