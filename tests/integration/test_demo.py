"""``hami demo`` end to end: webhook over TLS, kube-scheduler stand-in, extender, kubelets, device plugins.

The demo runs as a user runs it (``python -m hami_core demo --json``, which starts the scheduler and
one device plugin per node as their own processes) and is checked on its structured output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "hami_core", "demo", "--json", "--timeout", "120"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return dict(json.loads(run.stdout))


def _pod(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(pod for pod in result["pods"] if pod["name"] == name)


def _shares(pod: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(d["uuid"], d["memory_mib"], d["cores"]) for c in pod["containers"] for d in c["devices"]]


def test_every_device_pod_that_fits_runs_with_its_allocation_finished(result: dict[str, Any]) -> None:
    for name in (
        "share-by-memory",
        "share-by-percentage",
        "two-devices",
        "memory-only",
        "init-and-sidecar",
        "whole-device",
    ):
        pod = _pod(result, name)
        assert pod["phase"] == "Running", pod
        assert pod["scheduler"] == "hami-scheduler"
        assert pod["bind_phase"] == "success"
        assert pod["node"] in result["nodes"]


def test_no_device_is_booked_beyond_its_memory_cores_or_slots(result: dict[str, Any]) -> None:
    assert result["devices"], "the demo fleet registered devices"
    assert not [d for d in result["devices"] if d["overcommitted"]]
    assert not result["problems"]


def test_shares_match_the_requests(result: dict[str, Any]) -> None:
    (uuid, memory, cores) = _shares(_pod(result, "share-by-memory"))[0]
    assert (memory, cores) == (4096, 30)
    env = _pod(result, "share-by-memory")["containers"][0]["env"]
    assert env["CUDA_DEVICE_MEMORY_LIMIT_0"] == "4096m"
    assert env["CUDA_DEVICE_SM_LIMIT"] == "30"
    assert uuid in env["MOCK_VISIBLE_DEVICES"]
    two = _shares(_pod(result, "two-devices"))
    assert len(two) == 2
    assert len({uuid for uuid, _, _ in two}) == 2
    assert all(memory == 8192 for _, memory, _ in two)
    assert [memory for _, memory, _ in _shares(_pod(result, "memory-only"))] == [2048]


def test_percentage_and_whole_device_requests_resolve_against_the_chosen_device(
    result: dict[str, Any],
) -> None:
    sizes = {d["uuid"]: d["memory_mib"] for d in result["devices"]}
    (uuid, memory, _) = _shares(_pod(result, "share-by-percentage"))[0]
    assert memory == sizes[uuid] // 2
    (uuid, memory, _) = _shares(_pod(result, "whole-device"))[0]
    assert memory == sizes[uuid]


def test_init_and_app_containers_get_their_own_entries(result: dict[str, Any]) -> None:
    containers = {c["name"]: c for c in _pod(result, "init-and-sidecar")["containers"]}
    assert [(d["memory_mib"], d["cores"]) for d in containers["warmup"]["devices"]] == [(1024, 0)]
    assert [(d["memory_mib"], d["cores"]) for d in containers["trainer"]["devices"]] == [(6144, 50)]
    assert containers["logger"]["devices"] == []


def test_pod_without_devices_is_left_to_the_default_scheduler(result: dict[str, Any]) -> None:
    pod = _pod(result, "cpu-only")
    assert (pod["phase"], pod["scheduler"]) == ("Running", "default-scheduler")
    assert _shares(pod) == []


def test_impossible_request_is_admitted_with_a_warning_and_left_pending_with_the_reason(
    result: dict[str, Any],
) -> None:
    assert _pod(result, "too-big")["phase"] == "Pending"
    assert result["warnings"]["too-big"], "admission warned about the impossible request"
    assert "CardInsufficientMemory" in result["unschedulable"]["too-big"]
    assert set(result["unschedulable"]) == {"too-big"}


# --- the NVIDIA nodes on the fake NVML (plugins/nvidia, native/fakes/nvml) ---------------------------

NVIDIA_EXAMPLES = (
    "nvidia-type-select",
    "nvidia-uuid-select",
    "nvidia-numa-bind",
    "nvidia-topology-pair",
    "nvidia-exclusive",
)


def _a100_layout() -> dict[str, tuple[int, int]]:
    """Per A100 UUID of the fake preset: (NUMA node, NVLink island)."""
    from pathlib import Path

    preset = Path(__file__).resolve().parents[2] / "native/fakes/nvml/presets/a100-8-nvlink.json"
    devices = json.loads(preset.read_text())["devices"]
    return {device["uuid"]: (device["numa"], index // 4) for index, device in enumerate(devices)}


def test_nvidia_examples_run_on_the_nvidia_nodes_with_hamis_env(result: dict[str, Any]) -> None:
    assert {"gpu-a100", "gpu-t4"} <= set(result["nodes"])
    for name in NVIDIA_EXAMPLES:
        pod = _pod(result, name)
        assert (pod["phase"], pod["bind_phase"], pod["scheduler"]) == (
            "Running",
            "success",
            "hami-scheduler",
        ), pod
        (container,) = pod["containers"]
        env = container["env"]
        uuids = [device["uuid"] for device in container["devices"]]
        assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(uuids)
        for index, device in enumerate(container["devices"]):
            assert env[f"CUDA_DEVICE_MEMORY_LIMIT_{index}"] == f"{device['memory_mib']}m"
        assert "/hook/" in env["CUDA_DEVICE_MEMORY_SHARED_CACHE"]


def test_nvidia_type_and_uuid_selection(result: dict[str, Any]) -> None:
    assert _pod(result, "nvidia-type-select")["node"] == "gpu-t4"
    assert _shares(_pod(result, "nvidia-type-select")) == [
        (_shares(_pod(result, "nvidia-type-select"))[0][0], 4096, 25)
    ]
    (uuid, _, _) = _shares(_pod(result, "nvidia-uuid-select"))[0]
    assert uuid == "GPU-a2ecdd44-f1c9-5d7a-b34f-8998f57ef28d"


def test_nvidia_numa_binding_and_topology_aware_pair(result: dict[str, Any]) -> None:
    layout = _a100_layout()
    numa = {layout[uuid][0] for uuid, _, _ in _shares(_pod(result, "nvidia-numa-bind"))}
    assert len(numa) == 1
    pair = [uuid for uuid, _, _ in _shares(_pod(result, "nvidia-topology-pair"))]
    assert len(pair) == 2
    assert layout[pair[0]][1] == layout[pair[1]][1], "the pair shares an NVLink island"


def test_nvidia_exclusive_card_is_held_alone(result: dict[str, Any]) -> None:
    ((uuid, memory, cores),) = _shares(_pod(result, "nvidia-exclusive"))
    assert (memory, cores) == (81920, 100)
    (device,) = [d for d in result["devices"] if d["uuid"] == uuid]
    assert device["holders"] == ["default/nvidia-exclusive"]
