"""The exported names and labels against HAMi's monitor table, ``specs/hami-wire.md`` section 7.2
(copied below as the spec gives it), scraped from a real registry over real regions."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hami_core.monitor.metrics import EXTRA_FAMILIES
from hami_core.monitor.metrics import HAMI_FAMILIES
from hami_core.monitor.metrics import MonitorCollector
from hami_core.monitor.service import Monitor
from hami_core.monitor.snapshot import HostDevice

SPEC_7_2 = """
| `hami_host_gpu_memory_used_bytes` | node, device_index, device_uuid, device_type (`NVIDIA-<NVML name>`) |
| `hami_host_gpu_utilization_ratio` (0-100) | node, device_index, device_uuid, device_type |
| `hami_host_gpu_memory_controller_utilization_ratio` (0-100) | device_index, device_uuid, device_type |
| `hami_vgpu_memory_used_bytes` | namespace, pod, container, vdevice_index, device_uuid |
| `hami_vgpu_memory_limit_bytes` | namespace, pod, container, vdevice_index, device_uuid |
| `hami_container_device_memory_bytes` | namespace, pod, container, vdevice_index, device_uuid |
| `hami_container_device_utilization_ratio` | namespace, pod, container, vdevice_index, device_uuid |
| `hami_container_last_kernel_elapsed_seconds` | namespace, pod, container, vdevice_index, device_uuid |
| `hami_mig_device_info` | namespace, pod, container, vdevice_index, device_uuid, mig_uuid, profile, gpu_instance_id, compute_instance_id |
| `hami_vgpu_memory_context_bytes` / `hami_vgpu_memory_module_bytes` / `hami_vgpu_memory_buffer_bytes` | namespace, pod, container, vdevice_index, device_uuid |
"""
#: MIG devices are not shared through regions; the monitor has no MIG source (docs/compatibility.md).
NOT_EXPORTED = {"hami_mig_device_info"}
DATA = Path(__file__).with_name("data")
UID = "0b8e2c4a-1f0d-4a57-9c33-6a1d2e9f0c11"


def spec_table() -> dict[str, set[str]]:
    table = {}
    for row in SPEC_7_2.strip().splitlines():
        names_cell, labels_cell = row.strip("|").split("|")
        labels = {word.strip() for word in re.sub(r"\(.*?\)", "", labels_cell).split(",")}
        for name in re.findall(r"`(hami_[a-z_]+)`", names_cell):
            table[name] = labels
    return table


def scrape(tmp_path: Path) -> tuple[dict[str, list[dict[str, str]]], str]:
    """The samples' labels per name, and the exposition text, of one tick over a HAMi-core file."""
    directory = tmp_path / "containers" / f"{UID}_main"
    directory.mkdir(parents=True)
    (directory / "a.cache").write_bytes(gzip.decompress((DATA / "two-procs-300-200.cache.gz").read_bytes()))
    pods = [{"metadata": {"uid": UID, "namespace": "team", "name": "trainer"}}]
    host = [HostDevice(0, "GPU-5f1a4e02-7b3c-4d11-9a6e-210cfeed0001", "NVIDIA-H100", 3 << 30, 42, 7)]
    monitor = Monitor(tmp_path / "containers", lambda: pods, host=lambda: host, clock=lambda: 2_000_000_000.0)
    monitor.tick()
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitor.latest, "node-a"))
    text = generate_latest(registry).decode()
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name.removesuffix("_total"), []).append(sample.labels)
    return found, text


def test_hami_names_and_labels_match_spec_7_2(tmp_path: Path) -> None:
    spec = spec_table()
    assert len(spec) == 12
    declared = {name: set(labels) for name, (_, labels) in HAMI_FAMILIES.items()}
    assert declared == {name: labels for name, labels in spec.items() if name not in NOT_EXPORTED}
    scraped, _ = scrape(tmp_path)
    for name, labels in declared.items():
        assert scraped[name], name
        for sample_labels in scraped[name]:
            assert set(sample_labels) == labels | {"zone"}, name
            assert sample_labels["zone"] == "vGPU"


def test_values_from_hami_core_file(tmp_path: Path) -> None:
    scraped, text = scrape(tmp_path)
    assert (
        'hami_vgpu_memory_used_bytes{container="main",device_uuid="GPU-5f1a4e02-7b3c-4d11-9a6e-210cfeed0001",namespace="team",pod="trainer",vdevice_index="0",zone="vGPU"} 5.24288e+08'
        in text
    )
    assert (
        'hami_vgpu_memory_limit_bytes{container="main",device_uuid="GPU-5f1a4e02-7b3c-4d11-9a6e-210cfeed0001",namespace="team",pod="trainer",vdevice_index="0",zone="vGPU"} 1.073741824e+09'
        in text
    )
    assert (
        'hami_container_core_limit_ratio{container="main",device_uuid="GPU-5f1a4e02-7b3c-4d11-9a6e-210cfeed0001",namespace="team",pod="trainer",vdevice_index="0",zone="vGPU"} 30.0'
        in text
    )
    assert (
        'hami_host_gpu_memory_used_bytes{device_index="0",device_type="NVIDIA-H100",device_uuid="GPU-5f1a4e02-7b3c-4d11-9a6e-210cfeed0001",node="node-a",zone="vGPU"} 3.221225472e+09'
        in text
    )
    # HAMi-core's regions carry no shim counters: those families stay empty for them.
    assert "hami_container_oom" not in scraped
    assert set(EXTRA_FAMILIES).isdisjoint(HAMI_FAMILIES)
