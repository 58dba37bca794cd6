"""Discovery through nvidia-ml-py on the fake NVML, and what the plugin registers from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hami_backend_nvidia import codec as nvidia_codec
from hami_backend_nvidia import discovery
from hami_backend_nvidia import resources
from hami_backend_nvidia.backend import NvidiaBackend
from hami_backend_nvidia.inventory import Gpu
from hami_backend_nvidia.inventory import model_type
from hami_backend_nvidia.inventory import register_devices
from hami_backend_nvidia.settings import NodeSettings
from hami_backend_nvidia.settings import NvidiaSettings
from hami_backend_nvidia.topology import pair_scores

from hami_core.sdk import BackendError
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from plugins.nvidia.tests.conftest import UseNvml

#: The two V100s of HAMi's protocol document, as the Go plugin registers them (hami-wire.md 1.4.1
#: example 7: split 10, scaling 1, NUMA 0 omitted, mode written, index 0 omitted).
V100_REGISTER = (
    '[{"id":"GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec","count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true},'
    '{"id":"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448","index":1,"count":10,"devmem":32768,"devcore":100,'
    '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
)
V100_FAKE = {
    "devices": [
        {
            "uuid": "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec",
            "name": "Tesla V100-PCIE-32GB",
            "memory_mib": 32768,
        },
        {
            "uuid": "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448",
            "name": "Tesla V100-PCIE-32GB",
            "memory_mib": 32768,
        },
    ]
}


@pytest.mark.parametrize(
    ("name", "registered"),
    [
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"),
        ("Tesla T4", "NVIDIA-Tesla T4"),
        ("Tesla P4", "NVIDIA-Tesla P4"),
        ("NVIDIA-H100", "NVIDIA-H100"),
    ],
)
def test_model_names_get_hamis_nvidia_prefix(name: str, registered: str) -> None:
    assert model_type(name) == registered


def test_scan_reads_every_preset(
    use_nvml: UseNvml, preset_name: str, load_preset: Callable[[str], dict]
) -> None:  # type: ignore[type-arg]
    use_nvml(preset_name)
    gpus = discovery.scan()
    expected = load_preset(preset_name)["devices"]
    assert [(gpu.uuid, gpu.name, gpu.memory_mib, gpu.numa, gpu.mig_enabled) for gpu in gpus] == [
        (d["uuid"], d["name"], d["memory_mib"], d["numa"], d.get("mig_mode", False)) for d in expected
    ]
    assert [gpu.index for gpu in gpus] == list(range(len(expected)))


def test_unknown_memory_and_numa(use_nvml: UseNvml) -> None:
    use_nvml({"devices": [{"uuid": "GPU-u", "name": "NVIDIA GH200", "memory_mib": None, "numa": None}]})
    assert discovery.scan() == [Gpu(0, "GPU-u", "NVIDIA GH200", None, 0, False, "00000000:10:00.0")]


def test_without_nvml_discovery_is_a_backend_error(
    use_nvml: UseNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_nvml("t4-4")
    monkeypatch.delenv("FAKE_NVML_CONFIG")
    with pytest.raises(BackendError, match="NVML is not available"):
        discovery.scan()


class TestRegistration:
    GPUS = (
        Gpu(0, "GPU-0", "Tesla T4", 15360, numa=1),
        Gpu(1, "GPU-1", "Tesla T4", None),
        Gpu(2, "GPU-2", "NVIDIA A100-SXM4-80GB", 81920),
    )

    def test_devices_follow_the_node_settings(self) -> None:
        devices = register_devices(
            self.GPUS, NodeSettings(split_count=4, memory_scaling=1.5, core_scaling=0.5)
        )
        assert [(d.id, d.count, d.devmem, d.devcore, d.type, d.numa, d.mode) for d in devices] == [
            ("GPU-0", 4, 23040, 50, "NVIDIA-Tesla T4", 1, "hami-core"),
            ("GPU-2", 4, 122880, 50, "NVIDIA A100-SXM4-80GB", 0, "hami-core"),
        ]

    def test_preconfigured_memory_stands_in_for_unknown_memory(self) -> None:
        devices = register_devices(self.GPUS, NodeSettings(preconfigured_memory=8192))
        assert [d.devmem for d in devices] == [15360, 8192, 81920]

    def test_filtered_gpus_are_not_registered(self) -> None:
        node = NodeSettings(
            filter_uuids=frozenset({"GPU-0"}), filter_indexes=frozenset({2}), preconfigured_memory=1
        )
        assert [d.id for d in register_devices(self.GPUS, node)] == ["GPU-1"]

    def test_mig_mode_registers_whole_cores_and_unscaled_memory(self) -> None:
        devices = register_devices(
            self.GPUS[2:], NodeSettings(mode="mig", memory_scaling=2.0, core_scaling=2.0)
        )
        assert [(d.devmem, d.devcore, d.mode) for d in devices] == [(81920, 100, "mig")]


def test_our_register_annotation_is_byte_for_byte_hamis(use_nvml: UseNvml) -> None:
    use_nvml(V100_FAKE)
    backend = NvidiaBackend(NvidiaSettings(health_checks=False))
    assert backend.encode_node_devices(backend.discover("node-1")) == V100_REGISTER


def test_pair_scores_of_the_a100_preset(use_nvml: UseNvml, load_preset: Callable[[str], dict]) -> None:  # type: ignore[type-arg]
    use_nvml("a100-8-nvlink")
    backend = NvidiaBackend(NvidiaSettings(topology_score=True, health_checks=False))
    devices = backend.discover("node-1")
    value = backend.extra_node_annotations(devices)[resources.NODE_SCORE]
    scores = nvidia_codec.decode_pair_scores(value)
    uuids = [d["uuid"] for d in load_preset("a100-8-nvlink")["devices"]]
    assert scores[uuids[0]][uuids[1]] == 20 + 4 * 100  # same CPU + four NVLinks
    assert scores[uuids[0]][uuids[4]] == 10  # across CPUs, no NVLink
    assert uuids[0] not in scores[uuids[0]]
    assert value == nvidia_codec.encode_pair_scores(scores)


def test_pair_scores_are_off_unless_asked(use_nvml: UseNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    use_nvml("a100-8-nvlink")
    backend = NvidiaBackend(NvidiaSettings(health_checks=False))
    assert backend.extra_node_annotations(backend.discover("n")) == {}
    monkeypatch.setenv("ENABLE_TOPOLOGY_SCORE", "true")
    assert resources.NODE_SCORE in backend.extra_node_annotations(backend.discover("n"))


def test_asymmetric_links_score_zero() -> None:
    scored = pair_scores(
        ["a", "b", "c"], [[0, 40, 50], [40, 0, 50], [50, 50, 0]], [[0, 2, 0], [1, 0, 0], [0, 0, 0]]
    )
    assert scored.scores == {"a": {"b": 0, "c": 10}, "b": {"a": 0, "c": 10}, "c": {"a": 10, "b": 10}}
    assert scored.asymmetric == (("a", "b"),)


def test_asymmetric_nvlink_matrix_in_the_fake(use_nvml: UseNvml, tmp_path: Path) -> None:
    devices = [{"uuid": f"GPU-{i}", "name": "NVIDIA A100-SXM4-80GB", "memory_mib": 1} for i in range(2)]
    use_nvml({"devices": devices, "nvlink": [[0, 2], [1, 0]]})
    gpus = discovery.scan()
    levels, nvlinks = discovery.links(gpus)
    assert nvlinks == [[0, 2], [1, 0]]
    assert pair_scores([g.uuid for g in gpus], levels, nvlinks).asymmetric == (("GPU-0", "GPU-1"),)


def test_the_mig_preset_on_a_mig_node_registers_mig_devices_that_the_fit_refuses_for_now(
    use_nvml: UseNvml,
) -> None:
    """MIG placement is not implemented: a ``mig`` node's GPUs are registered but not placed on."""
    use_nvml("h100-mig")
    settings = NvidiaSettings(health_checks=False, node_defaults=NodeSettings(mode="mig"))
    backend = NvidiaBackend(settings)
    (device,) = backend.discover("node-1")
    assert (device.type, device.mode, device.devcore, device.devmem) == (
        "NVIDIA H100 80GB HBM3",
        "mig",
        100,
        81559,
    )
    request = DeviceRequest(nums=1, type="NVIDIA", memreq=1000)
    result = backend.fit(request, [DeviceUsage.from_info(device)], FitContext())
    assert (result.ok, dict(result.reasons)) == (False, {"CardMigTopologyInfeasible": 1})


def test_numa_falls_back_to_sysfs_when_nvml_cannot_tell(
    use_nvml: UseNvml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_nvml(
        {
            "devices": [
                {
                    "uuid": "GPU-s",
                    "name": "Tesla T4",
                    "memory_mib": 1,
                    "numa": None,
                    "pci_bus_id": "00000000:3B:00.0",
                }
            ]
        }
    )
    (tmp_path / "0000:3b:00.0").mkdir()
    (tmp_path / "0000:3b:00.0" / "numa_node").write_text("1\n")
    monkeypatch.setattr(discovery, "_SYSFS_PCI", tmp_path)
    assert [gpu.numa for gpu in discovery.scan()] == [1]
    (tmp_path / "0000:3b:00.0" / "numa_node").write_text("-1\n")
    assert [gpu.numa for gpu in discovery.scan()] == [0]
