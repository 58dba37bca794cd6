"""Host GPU figures from NVML: the real binding (nvidia-ml-py) over the NVIDIA backend's fake
``libnvidia-ml.so.1`` with its four-T4 preset, in a process of its own (the library path is read
at process start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NVML = ROOT / "native" / "fakes" / "nvml"
PRESET = NVML / "presets" / "t4-4.json"
PROBE = """
import json
from hami_core.monitor.host import nvml_host
from hami_core.monitor.metrics import families
from hami_core.monitor.snapshot import Snapshot
host = nvml_host()
devices = host()
host.close()
samples = [
    (s.name, s.labels, s.value)
    for f in families(Snapshot(host=tuple(devices)), "node-a")
    for s in f.samples
    if s.name.startswith("hami_host_")
]
print(json.dumps(samples))
"""


def test_host_metrics_from_the_fake_nvml() -> None:
    subprocess.run(["make", "-s", "-C", str(NVML)], check=True, stdout=subprocess.DEVNULL)
    env = {**os.environ, "LD_LIBRARY_PATH": str(NVML / "build"), "FAKE_NVML_CONFIG": str(PRESET)}
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    samples = json.loads(run.stdout)
    uuids = [device["uuid"] for device in json.loads(PRESET.read_text())["devices"]]
    memory = [(labels, value) for name, labels, value in samples if name == "hami_host_gpu_memory_used_bytes"]
    assert [labels["device_uuid"] for labels, _ in memory] == uuids
    assert [labels["device_index"] for labels, _ in memory] == ["0", "1", "2", "3"]
    # NVML's name as it is: the core spells no vendor (HAMi prefixes "NVIDIA-"; docs/compatibility.md).
    assert {labels["device_type"] for labels, _ in memory} == {"Tesla T4"}
    assert {labels["node"] for labels, _ in memory} == {"node-a"}
    assert {value for _, value in memory} == {0.0}  # the fake reports nothing used
    controller = [
        labels for name, labels, _ in samples if name == "hami_host_gpu_memory_controller_utilization_ratio"
    ]
    assert len(controller) == 4
    assert all("node" not in labels for labels in controller)


def test_without_a_driver_the_monitor_says_why(tmp_path: Path) -> None:
    # The fake answers NVML_ERROR_DRIVER_NOT_LOADED without its config file, as NVML does without a driver.
    subprocess.run(["make", "-s", "-C", str(NVML)], check=True, stdout=subprocess.DEVNULL)
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": str(NVML / "build"),
        "FAKE_NVML_CONFIG": str(tmp_path / "none.json"),
    }
    probe = "from hami_core.monitor.host import nvml_host; print(nvml_host())"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "None"
    assert "NVML unavailable" in run.stderr
    assert "no hami_host_gpu_* metrics" in run.stderr
