"""MockBackend: request parsing with the mock's rules, admission, allocation and its names."""

from __future__ import annotations

import copy
import time

import pytest
from hami_backend_mock import isolation
from hami_backend_mock import resources
from hami_backend_mock.backend import MockBackend
from hami_backend_mock.settings import DeviceGroup
from hami_backend_mock.settings import MockSettings

from hami_core.sdk import MEM_PERCENTAGE_UNSET
from hami_core.sdk import BackendError
from hami_core.sdk import ContainerDevice
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from hami_core.sdk import HamiConfig
from hami_core.sdk import PodView
from hami_core.testing import make_container
from hami_core.testing import make_pod

GPU = resources.RESOURCE_NAMES.count
MEM = resources.RESOURCE_NAMES.memory
PCT = resources.RESOURCE_NAMES.memory_percentage
CORES = resources.RESOURCE_NAMES.cores
PRIORITY = resources.RESOURCE_NAMES.priority


def _request(nums: int, memreq: int, pct: int, cores: int) -> DeviceRequest:
    return DeviceRequest(nums=nums, type="MOCK", memreq=memreq, mem_percentage_req=pct, coresreq=cores)


def test_names_and_keys_follow_hamis_naming() -> None:
    backend = MockBackend()
    assert backend.name == "mock"
    assert backend.device_type == "MOCK"
    assert backend.resource_names.all() == (
        "mock.hami.io/gpu",
        "mock.hami.io/gpumem",
        "mock.hami.io/gpumem-percentage",
        "mock.hami.io/gpucores",
        "mock.hami.io/priority",
    )
    assert (backend.keys.register, backend.keys.handshake) == (
        "hami.io/node-mock-register",
        "hami.io/node-handshake-mock",
    )
    assert (backend.keys.to_allocate, backend.keys.allocated) == (
        "hami.io/mock-devices-to-allocate",
        "hami.io/mock-devices-allocated",
    )


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        pytest.param({GPU: 1}, _request(1, 0, 100, 0), id="count-only-takes-whole-memory"),
        pytest.param({GPU: 2, MEM: 4096}, _request(2, 4096, MEM_PERCENTAGE_UNSET, 0), id="memory"),
        pytest.param({GPU: 1, PCT: 50}, _request(1, 0, 50, 0), id="percentage"),
        pytest.param({GPU: 1, PCT: 150}, _request(1, 0, 100, 0), id="percentage-clamped"),
        pytest.param({GPU: 1, PCT: 0}, _request(1, 0, 100, 0), id="percentage-zero-ignored"),
        pytest.param(
            {GPU: 1, MEM: 2000, PCT: 0}, _request(1, 2000, MEM_PERCENTAGE_UNSET, 0), id="memory-wins"
        ),
        pytest.param({GPU: 1, CORES: 50}, _request(1, 0, 100, 50), id="cores"),
    ],
)
def test_request_follows_hamis_rules(limits: dict[str, int], expected: DeviceRequest) -> None:
    assert MockBackend().parse_request(ContainerView.from_object(make_container(limits=limits))) == expected


def test_memory_factor_and_defaults_come_from_the_settings() -> None:
    backend = MockBackend(MockSettings(memory_factor=256, default_memory=512, default_cores=30))
    assert backend.parse_request(
        ContainerView.from_object(make_container(limits={GPU: 1, MEM: 4}))
    ) == _request(1, 1024, MEM_PERCENTAGE_UNSET, 30)
    assert backend.parse_request(ContainerView.from_object(make_container(limits={GPU: 1}))) == _request(
        1, 512, MEM_PERCENTAGE_UNSET, 30
    )


def test_memory_beyond_int32_is_an_error_not_a_silent_drop() -> None:
    with pytest.raises(BackendError, match="out of range"):
        MockBackend().parse_request(
            ContainerView.from_object(make_container("train", limits={GPU: 1, MEM: "16Gi"}))
        )


def test_container_with_count_uses_the_backend_unchanged() -> None:
    container = make_container(limits={GPU: 1})
    result = MockBackend().mutate_container(
        ContainerView.from_object(container), PodView.from_object(make_pod(containers=[container]))
    )
    assert result.has_resource
    assert result.container is None


def test_container_asking_only_memory_gets_a_count_and_its_input_is_untouched() -> None:
    container = make_container(limits={MEM: 1024}, requests={"cpu": "1"})
    before = copy.deepcopy(container)
    result = MockBackend().mutate_container(
        ContainerView.from_object(container), PodView.from_object(make_pod(containers=[container]))
    )
    assert container == before
    assert result.has_resource
    assert result.container == {
        **before,
        "resources": {"limits": {MEM: "1024", GPU: "1"}, "requests": {"cpu": "1"}},
    }


def test_priority_limit_becomes_the_shims_task_priority() -> None:
    container = make_container(limits={GPU: 1, PRIORITY: 0}, env={"A": "b"})
    result = MockBackend().mutate_container(
        ContainerView.from_object(container), PodView.from_object(make_pod(containers=[container]))
    )
    assert result.container is not None
    assert result.container["env"] == [
        {"name": "A", "value": "b"},
        {"name": "CUDA_TASK_PRIORITY", "value": "0"},
    ]


def test_container_without_mock_resources_is_left_alone() -> None:
    result = MockBackend().mutate_container(
        ContainerView.from_object(make_container(limits={"cpu": 1})), PodView.from_object(make_pod())
    )
    assert not result.has_resource
    assert result.container is None


@pytest.mark.parametrize("value", [pytest.param(150, id="above-100"), pytest.param(-5, id="negative")])
def test_percentage_outside_0_to_100_is_denied(value: int) -> None:
    with pytest.raises(
        BackendError, match=r"invalid mock.hami.io/gpumem-percentage value .* in container main"
    ):
        MockBackend().mutate_container(
            ContainerView.from_object(make_container(limits={GPU: 1, PCT: value})),
            PodView.from_object(make_pod()),
        )


def test_allocate_hands_over_visible_devices_and_shim_limits() -> None:
    devices = (
        ContainerDevice(uuid="MOCK-a", type="MOCK", usedmem=3000, usedcores=30),
        ContainerDevice(uuid="MOCK-b", type="MOCK", usedmem=5000, usedcores=50),
    )
    allocation = MockBackend().allocate(
        devices, ContainerView.from_object(make_container()), PodView.from_object(make_pod())
    )
    assert dict(allocation.envs) == {
        isolation.VISIBLE_DEVICES: "MOCK-a,MOCK-b",
        "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
        "CUDA_DEVICE_MEMORY_LIMIT_1": "5000m",
        "CUDA_DEVICE_SM_LIMIT": "30",
    }
    assert allocation.mounts == ()
    assert allocation.devices == ()


def test_allocate_passes_the_containers_priority_to_the_shim() -> None:
    device = (ContainerDevice(uuid="MOCK-a", type="MOCK", usedmem=1, usedcores=0),)
    allocation = MockBackend().allocate(
        device,
        ContainerView.from_object(make_container(limits={GPU: 1, PRIORITY: 1})),
        PodView.from_object(make_pod()),
    )
    assert allocation.envs["CUDA_TASK_PRIORITY"] == "1"
    with pytest.raises(BackendError, match=r"mock\.hami\.io/priority must be a whole number"):
        MockBackend().allocate(
            device,
            ContainerView.from_object(make_container(limits={GPU: 1, PRIORITY: "0.5"})),
            PodView.from_object(make_pod()),
        )


def test_allocate_takes_the_configured_delay() -> None:
    backend = MockBackend(MockSettings(allocate_delay=0.05))
    device = (ContainerDevice(uuid="MOCK-a", type="MOCK", usedmem=1, usedcores=0),)
    started = time.monotonic()
    backend.allocate(device, ContainerView.from_object(make_container()), PodView.from_object(make_pod()))
    assert time.monotonic() - started >= 0.05


def test_injected_health_overrides_the_configured_health_until_set_again() -> None:
    backend = MockBackend(MockSettings(devices=(DeviceGroup(count=2, memory_mib=1024, healthy=False),)))
    devices = backend.discover("n1")
    assert backend.health(devices) == {devices[0].id: False, devices[1].id: False}
    backend.set_health(devices[1].id, True)
    assert backend.health(devices) == {devices[0].id: False, devices[1].id: True}
    backend.set_health(devices[1].id, False)
    assert backend.health(devices) == {devices[0].id: False, devices[1].id: False}


def test_allocate_refuses_no_devices_and_other_vendors_devices() -> None:
    backend = MockBackend()
    with pytest.raises(BackendError, match="no mock device"):
        backend.allocate((), ContainerView.from_object(make_container()), PodView.from_object(make_pod()))
    with pytest.raises(BackendError, match="GPU-1 are not MOCK devices"):
        backend.allocate(
            (ContainerDevice("GPU-1", "NVIDIA", 1, 0),),
            ContainerView.from_object(make_container()),
            PodView.from_object(make_pod()),
        )


def test_fit_takes_devices_of_the_configured_shape() -> None:
    backend = MockBackend.from_config(HamiConfig().with_enabled(["mock"]))
    usage = [DeviceUsage.from_info(device) for device in backend.discover("n1")]
    result = backend.fit(_request(2, 8192, MEM_PERCENTAGE_UNSET, 0), usage, FitContext())
    assert result.ok
    assert {device.uuid for device in result.devices} == {device.id for device in usage}
    assert all(device.type == "MOCK" and device.usedmem == 8192 for device in result.devices)
