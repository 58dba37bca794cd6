"""Namespace quotas on device memory and cores (specs/hami-wire.md 3.10; HAMi #893, #1393)."""

from __future__ import annotations

from hami_core.allocation import DeviceBooking
from hami_core.backend import RequestRules
from hami_core.devices import ContainerDevice
from hami_core.kube.objects import ResourceQuota
from hami_core.scheduler.quota import ResourceLimit
from hami_core.scheduler.quota import Usage
from hami_core.scheduler.quota import limits_from_quotas
from hami_core.scheduler.quota import pod_usage
from tests.scheduler.fakes import CORES
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import NvidiaLikeBackend


class FactorBackend(NvidiaLikeBackend):
    @property
    def request_rules(self) -> RequestRules:
        return RequestRules(memory_factor=256)


def quota(name: str, hard: dict[str, str], namespace: str = "team") -> ResourceQuota:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"hard": hard}}


def test_memory_and_core_limits_are_read_and_the_tightest_wins() -> None:
    limits = limits_from_quotas(
        [
            quota("wide", {f"limits.{MEM}": "20000", f"limits.{CORES}": "300", "limits.cpu": "4"}),
            quota("narrow", {f"limits.{MEM}": "8000"}),
        ],
        [NvidiaLikeBackend()],
    )
    assert limits.limit("team", "nvidia") == ResourceLimit(memory=8000, cores=300)
    assert limits.limit("other", "nvidia") is None
    assert [(e.quota, e.resource, e.limit) for e in limits.entries] == [
        ("wide", f"limits.{CORES}", 300),
        ("wide", f"limits.{MEM}", 20000),
        ("narrow", f"limits.{MEM}", 8000),
    ]


def test_memory_limits_are_in_the_resources_unit() -> None:
    limits = limits_from_quotas([quota("q", {f"limits.{MEM}": "4"})], [FactorBackend()])
    assert limits.limit("team", "nvidia") == ResourceLimit(memory=1024)


def test_an_unreadable_quantity_is_ignored() -> None:
    limits = limits_from_quotas([quota("q", {f"limits.{MEM}": "lots"})], [NvidiaLikeBackend()])
    assert limits.limit("team", "nvidia") is None


def test_a_limit_admits_use_up_to_it_and_zero_blocks_everything() -> None:
    limit = ResourceLimit(memory=8000, cores=0)
    assert limit.admits(Usage(4000, 0), Usage(4000, 0))
    assert not limit.admits(Usage(4000, 0), Usage(4001, 0))
    assert not limit.admits(Usage(), Usage(0, 1))


def test_a_multi_device_pod_uses_every_devices_share() -> None:
    shares = tuple(
        DeviceBooking(ContainerDevice(uuid, "NVIDIA", 4096, 25), slots=1) for uuid in ("GPU-0", "GPU-1")
    )
    assert pod_usage({"nvidia": shares}) == {"nvidia": Usage(8192, 50)}
