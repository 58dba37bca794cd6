"""A node whose kubelet has none of a backend's devices to give takes none of its pods, at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hami_core.kube.objects import Node
from hami_core.scheduler.binding import BindError
from hami_core.scheduler.cache import ClusterCache
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node


def node(allocatable: int) -> Node:
    return registered_node("n", gpus("GPU", 2), allocatable=allocatable)


def device_ids(cache: ClusterCache) -> list[str]:
    view = cache.view("n")
    return [device.id for device in view.all_devices()] if view is not None else []


def test_an_allocatable_count_of_zero_drops_the_node_at_once_and_its_return_brings_it_back() -> None:
    made = harness()
    cache = made.cache
    cache.apply_node("ADDED", node(20), NOW)
    assert device_ids(cache) == ["GPU-0", "GPU-1"]
    # The handshake is fresh (within HAMi's 60 s grace): only the kubelet's count tells.
    cache.apply_node("MODIFIED", node(0), NOW + timedelta(seconds=1))
    assert device_ids(cache) == []
    changes = cache.apply_node("MODIFIED", node(20), NOW + timedelta(seconds=2))
    assert device_ids(cache) == ["GPU-0", "GPU-1"]
    assert "n" in changes.freed_nodes  # pods rejected meanwhile are retried


def test_a_node_registered_with_a_zero_count_takes_no_pod() -> None:
    made = harness()
    made.add_node(node(0))
    pod = made.add_pod(gpu_pod("p", memory=100))
    assert made.filter(pod).result == "unschedulable"


def test_a_stale_handshake_with_a_count_keeps_the_node_and_without_one_drops_it() -> None:
    made = harness()
    cache = made.cache
    later = NOW + timedelta(seconds=120)
    cache.apply_node("ADDED", node(20), later)
    assert device_ids(cache) == ["GPU-0", "GPU-1"]
    without = registered_node("n", gpus("GPU", 2))
    without["status"]["allocatable"] = {}  # type: ignore[typeddict-item]
    cache.apply_node("MODIFIED", without, later)
    assert device_ids(cache) == []


def test_a_pod_placed_before_the_node_lost_its_devices_is_refused_at_bind() -> None:
    made = harness()
    made.add_node(node(20))
    pod = made.add_pod(gpu_pod("p", memory=100))
    assert made.filter(pod).result == "scheduled"
    made.kube.patch_node_status("n", {"status": {"allocatable": {"nvidia.com/gpu": "0"}}})
    made.sync()
    with pytest.raises(BindError, match="no healthy nvidia devices") as caught:
        made.binding.bind("default", "p", pod["metadata"]["uid"], "n")
    assert caught.value.reason == "node-unhealthy"
