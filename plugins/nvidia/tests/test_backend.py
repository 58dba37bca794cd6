"""NvidiaBackend: HAMi's names, request rules, admission, fit rules and Allocate (no NVML needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_backend_nvidia import codec as nvidia_codec
from hami_backend_nvidia import resources
from hami_backend_nvidia.backend import NvidiaBackend
from hami_backend_nvidia.settings import NodeSettings
from hami_backend_nvidia.settings import NvidiaSettings

from hami_core.sdk import MEM_PERCENTAGE_UNSET
from hami_core.sdk import BackendError
from hami_core.sdk import CodecError
from hami_core.sdk import ContainerDevice
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from hami_core.sdk import Mount
from hami_core.sdk import PodView
from hami_core.sdk import ResourceNames
from hami_core.testing import make_container
from hami_core.testing import make_pod

GPU = "nvidia.com/gpu"
MEM = "nvidia.com/gpumem"
PCT = "nvidia.com/gpumem-percentage"
CORES = "nvidia.com/gpucores"
PRIORITY = "nvidia.com/priority"


def _view(**kwargs: object) -> ContainerView:
    return ContainerView.from_object(make_container(**kwargs))  # type: ignore[arg-type]


def _pod(annotations: dict[str, str] | None = None) -> PodView:
    return PodView.from_object(make_pod(annotations=annotations))


def _request(nums: int, memreq: int, pct: int, cores: int) -> DeviceRequest:
    return DeviceRequest(nums=nums, type="NVIDIA", memreq=memreq, mem_percentage_req=pct, coresreq=cores)


def test_names_and_keys_are_hamis() -> None:
    backend = NvidiaBackend()
    assert (backend.name, backend.device_type) == ("nvidia", "NVIDIA")
    assert backend.resource_names.all() == (GPU, MEM, PCT, CORES, PRIORITY)
    assert (backend.keys.register, backend.keys.handshake) == (
        "hami.io/node-nvidia-register",
        "hami.io/node-handshake",
    )
    assert (backend.keys.to_allocate, backend.keys.allocated) == (
        "hami.io/vgpu-devices-to-allocate",
        "hami.io/vgpu-devices-allocated",
    )
    assert (resources.NODE_SCORE, resources.MIG_ALLOCATIONS) == (
        "hami.io/node-nvidia-score",
        "hami.io/vgpu-mig-allocations",
    )


class TestRequests:
    """HAMi's ``TestGenerateResourceRequests`` examples (hami-wire.md 2.3)."""

    @pytest.mark.parametrize(
        ("limits", "expected"),
        [
            pytest.param({GPU: 1}, _request(1, 0, 100, 0), id="gpu-only"),
            pytest.param({GPU: 2, MEM: 4096}, _request(2, 4096, MEM_PERCENTAGE_UNSET, 0), id="memory"),
            pytest.param({GPU: 1, PCT: 50}, _request(1, 0, 50, 0), id="percentage"),
            pytest.param({GPU: 1, PCT: 150}, _request(1, 0, 100, 0), id="percentage-150"),
            pytest.param({GPU: 1, PCT: 101}, _request(1, 0, 100, 0), id="percentage-101"),
            pytest.param({GPU: 1, PCT: 2**32 + 50}, _request(1, 0, 100, 0), id="percentage-huge"),
            pytest.param({GPU: 1, PCT: 0}, _request(1, 0, 100, 0), id="percentage-zero"),
            pytest.param({GPU: 1, PCT: -1}, _request(1, 0, 100, 0), id="percentage-negative"),
            pytest.param(
                {GPU: 1, MEM: 2000, PCT: 0}, _request(1, 2000, MEM_PERCENTAGE_UNSET, 0), id="mem-pct0"
            ),
            pytest.param({GPU: 1, CORES: 50}, _request(1, 0, 100, 50), id="cores"),
        ],
    )
    def test_hamis_examples(self, limits: dict[str, int], expected: DeviceRequest) -> None:
        assert NvidiaBackend().parse_request(_view(limits=limits)) == expected

    def test_memory_factor_and_default_memory(self) -> None:
        assert NvidiaBackend(NvidiaSettings(memory_factor=2)).parse_request(
            _view(limits={GPU: 1, MEM: 1024})
        ) == _request(1, 2048, MEM_PERCENTAGE_UNSET, 0)
        assert NvidiaBackend(NvidiaSettings(default_memory=512)).parse_request(
            _view(limits={GPU: 1})
        ) == _request(1, 512, MEM_PERCENTAGE_UNSET, 0)

    def test_a_quantity_with_a_suffix_is_an_error_not_a_silent_drop(self) -> None:
        with pytest.raises(BackendError, match=r"nvidia\.com/gpumem"):
            NvidiaBackend().parse_request(_view(limits={GPU: 1, MEM: "16Gi"}))

    def test_configured_resource_names_are_used(self) -> None:
        names = ResourceNames(count="example.com/vgpu", memory="example.com/vmem")
        backend = NvidiaBackend(NvidiaSettings(resource_names=names))
        assert backend.parse_request(
            _view(limits={"example.com/vgpu": 1, "example.com/vmem": 10})
        ) == _request(1, 10, MEM_PERCENTAGE_UNSET, 0)
        assert backend.parse_request(_view(limits={GPU: 1})) is None


def _limits_after(backend: NvidiaBackend, **kwargs: object) -> dict[str, object]:
    result = backend.mutate_container(_view(**kwargs), _pod())
    container = result.container
    assert container is not None
    found = container["resources"]["limits"]  # type: ignore[index]
    return dict(found)


def _env_after(backend: NvidiaBackend, **kwargs: object) -> dict[str, str]:
    result = backend.mutate_container(_view(**kwargs), _pod())
    if result.container is None:
        return {}
    return {item["name"]: item["value"] for item in result.container["env"]}  # type: ignore[index, attr-defined]


class TestAdmission:
    """HAMi's ``MutateAdmission`` (hami-wire.md 4) and its tests' examples."""

    @pytest.mark.parametrize(
        ("limits", "requests", "cores"),
        [
            pytest.param({GPU: 1}, None, "100", id="whole-card"),
            pytest.param({GPU: 1, PCT: 100}, None, "100", id="percentage-100"),
            pytest.param(None, {GPU: 1, PCT: 100}, "100", id="percentage-100-in-requests"),
            pytest.param({GPU: 1, PCT: 50}, None, None, id="percentage-50"),
            pytest.param({GPU: 1, MEM: 8192}, None, None, id="memory-is-shareable"),
            pytest.param({GPU: 1, CORES: 70}, None, "70", id="explicit-cores-kept"),
        ],
    )
    def test_exclusive_core_default(
        self, limits: dict[str, int] | None, requests: dict[str, int] | None, cores: str | None
    ) -> None:
        result = NvidiaBackend().mutate_container(_view(limits=limits, requests=requests), _pod())
        spec = result.container if result.container is not None else make_container(limits=limits)
        found = (spec.get("resources") or {}).get("limits") or {}  # type: ignore[attr-defined]
        assert found.get(CORES) == cores

    def test_memory_name_unset_makes_every_card_exclusive(self) -> None:
        names = ResourceNames(count=GPU, memory="", memory_percentage=PCT, cores=CORES)
        assert (
            _limits_after(NvidiaBackend(NvidiaSettings(resource_names=names)), limits={GPU: 1})[CORES]
            == "100"
        )

    @pytest.mark.parametrize("share", [CORES, MEM, PCT])
    def test_share_without_count_gets_default_gpu_num(self, share: str) -> None:
        result = NvidiaBackend().mutate_container(_view(limits={share: 1}), _pod())
        assert result.has_resource
        assert result.container is not None
        assert result.container["resources"]["limits"][GPU] == "1"  # type: ignore[index]

    def test_default_gpu_num_zero_adds_nothing(self) -> None:
        result = NvidiaBackend(NvidiaSettings(default_gpu_num=0)).mutate_container(
            _view(limits={MEM: 1}), _pod()
        )
        assert not result.has_resource

    def test_no_resources_is_not_a_gpu_container(self) -> None:
        result = NvidiaBackend().mutate_container(_view(limits={}), _pod())
        assert (result.has_resource, result.container) == (False, None)

    @pytest.mark.parametrize("value", ["101", "150", "-1", "50m", "50.5", "99.1"])
    def test_bad_percentage_is_refused(self, value: str) -> None:
        with pytest.raises(BackendError, match=r"nvidia\.com/gpumem-percentage"):
            NvidiaBackend().mutate_container(_view(limits={GPU: 1, PCT: value}), _pod())

    def test_bad_percentage_in_requests_is_refused_too(self) -> None:
        with pytest.raises(BackendError, match="must be an integer between 0 and 100"):
            NvidiaBackend().mutate_container(_view(limits={GPU: 1}, requests={PCT: 150}), _pod())

    def test_priority_becomes_cuda_task_priority(self) -> None:
        assert _env_after(NvidiaBackend(), limits={GPU: 1, PRIORITY: 0})["CUDA_TASK_PRIORITY"] == "0"

    def test_core_policy_goes_to_every_container(self) -> None:
        backend = NvidiaBackend(NvidiaSettings(gpu_core_policy="force"))
        assert _env_after(backend, limits={"cpu": 1})["GPU_CORE_UTILIZATION_POLICY"] == "force"

    def test_overwrite_env_hides_gpus_from_containers_without_them(self) -> None:
        backend = NvidiaBackend(NvidiaSettings(overwrite_env=True))
        assert _env_after(backend, limits={"cpu": 1}) == {"NVIDIA_VISIBLE_DEVICES": "none"}
        assert "NVIDIA_VISIBLE_DEVICES" not in _env_after(backend, limits={GPU: 1})

    def test_runtime_class_is_proposed_for_gpu_containers_only(self) -> None:
        backend = NvidiaBackend(NvidiaSettings(runtime_class_name="nvidia"))
        assert backend.mutate_container(_view(limits={GPU: 1}), _pod()).runtime_class_name == "nvidia"
        assert backend.mutate_container(_view(limits={"cpu": 1}), _pod()).runtime_class_name == ""

    def test_the_input_container_is_left_untouched(self) -> None:
        raw = make_container(limits={GPU: 1}, env={"A": "b"})
        view = ContainerView.from_object(raw)
        NvidiaBackend().mutate_container(view, _pod())
        assert raw == make_container(limits={GPU: 1}, env={"A": "b"})


class TestFilters:
    """HAMi's ``CheckType`` and ``CheckUUID`` (hami-wire.md 3.4), with its ``Test_checkType`` cases."""

    @pytest.mark.parametrize(
        ("use", "nouse", "model", "allowed"),
        [
            ("A10", None, "NVIDIA A100", True),
            ("A10", "A100", "NVIDIA A100", False),
            ("A10", "A100", "NVIDIA A10", True),
            ("a100", None, "NVIDIA A100-SXM4-80GB", True),
            (",,T4,", None, "NVIDIA-Tesla T4", True),
            ("", "", "NVIDIA-Tesla T4", True),
            (None, "t4", "NVIDIA-Tesla T4", False),
        ],
    )
    def test_type(self, use: str | None, nouse: str | None, model: str, allowed: bool) -> None:
        pod = {
            key: value
            for key, value in ((resources.USE_GPUTYPE, use), (resources.NOUSE_GPUTYPE, nouse))
            if value is not None
        }
        rules = NvidiaBackend().fit_rules(FitContext(pod_annotations=pod))
        assert rules.type_ok(DeviceUsage(id="GPU-a", type=model, mode="hami-core")) is allowed

    @pytest.mark.parametrize(
        ("use", "nouse", "allowed"),
        [
            ("GPU-a, GPU-b", None, True),
            ("GPU-b", None, False),
            ("  ", None, True),
            (None, "GPU-a", False),
            ("GPU-a", "GPU-a", False),
            ("gpu-a", None, False),
        ],
    )
    def test_uuid(self, use: str | None, nouse: str | None, allowed: bool) -> None:
        pod = {
            key: value
            for key, value in ((resources.USE_GPUUUID, use), (resources.NOUSE_GPUUUID, nouse))
            if value is not None
        }
        assert NvidiaBackend().fit_rules(FitContext(pod_annotations=pod)).uuid_ok("GPU-a") is allowed


def _gpu(
    index: int, *, numa: int = 0, model: str = "NVIDIA A100-SXM4-80GB", mode: str = "hami-core"
) -> DeviceUsage:
    return DeviceUsage(
        id=f"GPU-{index}",
        index=index,
        count=10,
        totalmem=81920,
        totalcore=100,
        type=model,
        numa=numa,
        mode=mode,
    )


def _fit(
    request: DeviceRequest,
    devices: list[DeviceUsage],
    pod: dict[str, str] | None = None,
    node: dict[str, str] | None = None,
    policy: str = "spread",
) -> list[str] | dict[str, int]:
    context = FitContext(pod_annotations=pod or {}, node_annotations=node or {}, device_policy=policy)
    result = NvidiaBackend().fit(request, devices, context)
    return [device.uuid for device in result.devices] if result.ok else dict(result.reasons)


class TestFit:
    def test_use_and_nouse_gputype(self) -> None:
        devices = [_gpu(0, model="NVIDIA-Tesla T4"), _gpu(1)]
        assert _fit(_request(1, 100, MEM_PERCENTAGE_UNSET, 0), devices, {resources.USE_GPUTYPE: "T4"}) == [
            "GPU-0"
        ]
        assert _fit(
            _request(1, 100, MEM_PERCENTAGE_UNSET, 0), devices, {resources.NOUSE_GPUTYPE: "a100"}
        ) == ["GPU-0"]
        assert _fit(_request(1, 100, MEM_PERCENTAGE_UNSET, 0), devices, {resources.USE_GPUTYPE: "H100"}) == {
            "CardTypeMismatch": 2
        }

    def test_use_and_nouse_gpuuuid(self) -> None:
        devices = [_gpu(0), _gpu(1), _gpu(2)]
        assert _fit(_request(1, 1, MEM_PERCENTAGE_UNSET, 0), devices, {resources.USE_GPUUUID: "GPU-1"}) == [
            "GPU-1"
        ]
        assert _fit(_request(2, 1, MEM_PERCENTAGE_UNSET, 0), devices, {resources.NOUSE_GPUUUID: "GPU-2"}) == [
            "GPU-1",
            "GPU-0",
        ]

    def test_vgpu_mode_must_contain_the_device_mode(self) -> None:
        devices = [_gpu(0, mode="mps"), _gpu(1)]
        assert _fit(_request(1, 1, MEM_PERCENTAGE_UNSET, 0), devices, {resources.VGPU_MODE: "mps"}) == [
            "GPU-0"
        ]
        assert _fit(_request(1, 1, MEM_PERCENTAGE_UNSET, 0), devices, {resources.VGPU_MODE: "hami-core"}) == [
            "GPU-1"
        ]

    def test_numa_bind_keeps_a_container_on_one_numa_node(self) -> None:
        devices = [_gpu(0, numa=0), _gpu(1, numa=0), _gpu(2, numa=1)]
        assert _fit(_request(3, 1, MEM_PERCENTAGE_UNSET, 0), devices, {resources.NUMA_BIND: "true"}) == {
            "AllocatedCardsInsufficientRequest": 2,
            "NumaNotFit": 1,
        }
        picked = _fit(_request(2, 1, MEM_PERCENTAGE_UNSET, 0), devices, {resources.NUMA_BIND: "1"})
        assert sorted(picked) == ["GPU-0", "GPU-1"]

    def test_cordoned_gpus_are_skipped(self) -> None:
        devices = [_gpu(0), _gpu(1)]
        assert _fit(
            _request(1, 1, MEM_PERCENTAGE_UNSET, 0), devices, node={"hami.io/device-cordon": "GPU-1"}
        ) == ["GPU-0"]

    def test_topology_aware_takes_the_best_connected_pair_and_leaves_it_for_singles(self) -> None:
        devices = [_gpu(i) for i in range(4)]
        scores = {
            "GPU-0": {"GPU-1": 10, "GPU-2": 10, "GPU-3": 10},
            "GPU-1": {"GPU-0": 10, "GPU-2": 420, "GPU-3": 10},
            "GPU-2": {"GPU-0": 10, "GPU-1": 420, "GPU-3": 10},
            "GPU-3": {"GPU-0": 10, "GPU-1": 10, "GPU-2": 10},
        }
        node = {resources.NODE_SCORE: nvidia_codec.encode_pair_scores(scores)}
        pair = _fit(_request(2, 1, MEM_PERCENTAGE_UNSET, 0), devices, node=node, policy="topology-aware")
        assert sorted(pair) == ["GPU-1", "GPU-2"]  # type: ignore[arg-type]
        single = _fit(_request(1, 1, MEM_PERCENTAGE_UNSET, 0), devices, node=node, policy="topology-aware")
        assert single in (["GPU-0"], ["GPU-3"])

    def test_a_bad_pair_score_annotation_makes_the_nodes_gpus_unusable(self) -> None:
        register = '[{"id":"GPU-0","count":5,"devmem":8192,"devcore":100,"type":"NVIDIA-Tesla P4","numa":0,"health":true,"index":0}]'
        backend = NvidiaBackend()
        assert len(backend.node_devices({resources.KEYS.register: register})) == 1
        with pytest.raises(CodecError):
            backend.node_devices({resources.KEYS.register: register, resources.NODE_SCORE: "{"})


def _allocate(
    tmp_path: Path, node: NodeSettings | None = None, env: dict[str, str] | None = None, **settings: object
) -> tuple[dict[str, str], tuple[Mount, ...]]:
    backend = NvidiaBackend(
        NvidiaSettings(hook_path=str(tmp_path), node_defaults=node or NodeSettings(), **settings)  # type: ignore[arg-type]
    )
    devices = (
        ContainerDevice(uuid="GPU-a", type="NVIDIA", usedmem=3000, usedcores=30),
        ContainerDevice(uuid="GPU-b", type="NVIDIA", usedmem=5000, usedcores=30),
    )
    pod = PodView.from_object(make_pod(containers=[make_container("train", env=env)]))
    result = backend.allocate(devices, pod.containers[0], pod)
    return dict(result.envs), result.mounts


class TestAllocate:
    """Allocate's env and mounts (hami-wire.md 5.4)."""

    def test_hami_core_env_and_mounts(self, tmp_path: Path) -> None:
        envs, mounts = _allocate(tmp_path)
        cache = envs.pop("CUDA_DEVICE_MEMORY_SHARED_CACHE")
        assert cache.startswith(f"{tmp_path}/vgpu/")
        assert cache.endswith(".cache")
        assert envs == {
            "NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b",
            "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
            "CUDA_DEVICE_MEMORY_LIMIT_1": "5000m",
            "CUDA_DEVICE_SM_LIMIT": "30",
            "LIBCUDA_LOG_LEVEL": "1",
        }
        pod = PodView.from_object(make_pod())
        container_dir = tmp_path / "vgpu" / "containers" / f"{pod.uid}_train"
        assert mounts == (
            Mount(f"{tmp_path}/vgpu/libvgpu.so", f"{tmp_path}/vgpu/libvgpu.so", read_only=True),
            Mount(f"{tmp_path}/vgpu", str(container_dir), read_only=False),
            Mount("/tmp/vgpulock", "/tmp/vgpulock", read_only=False),
            Mount("/etc/ld.so.preload", f"{tmp_path}/vgpu/ld.so.preload", read_only=True),
        )
        assert container_dir.is_dir()

    def test_each_container_gets_its_own_cache_file(self, tmp_path: Path) -> None:
        first, _ = _allocate(tmp_path)
        second, _ = _allocate(tmp_path)
        assert first["CUDA_DEVICE_MEMORY_SHARED_CACHE"] != second["CUDA_DEVICE_MEMORY_SHARED_CACHE"]

    def test_disable_control_drops_the_preload_mount(self, tmp_path: Path) -> None:
        _, mounts = _allocate(tmp_path, env={"CUDA_DISABLE_CONTROL": "true"})
        assert "/etc/ld.so.preload" not in [mount.container_path for mount in mounts]

    def test_scaling_and_core_limit_switches(self, tmp_path: Path) -> None:
        envs, _ = _allocate(tmp_path, NodeSettings(memory_scaling=2.0), disable_core_limit=True)
        assert (envs["CUDA_OVERSUBSCRIBE"], envs["GPU_CORE_UTILIZATION_POLICY"]) == ("true", "disable")

    def test_mig_mode_skips_the_shim(self, tmp_path: Path) -> None:
        envs, mounts = _allocate(tmp_path, NodeSettings(mode="mig"))
        assert (envs, mounts) == ({"NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b"}, ())

    def test_foreign_devices_are_refused(self, tmp_path: Path) -> None:
        backend = NvidiaBackend(NvidiaSettings(hook_path=str(tmp_path)))
        pod = PodView.from_object(make_pod())
        with pytest.raises(BackendError, match="not NVIDIA devices"):
            backend.allocate((ContainerDevice("MOCK-1", "MOCK", 1, 1),), pod.containers[0], pod)
