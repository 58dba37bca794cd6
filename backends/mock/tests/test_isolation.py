"""The mock's container environment uses HAMi-core's variable names and units."""

from __future__ import annotations

from hami_backend_mock import isolation
from hami_backend_mock.isolation import limits_env
from hami_backend_mock.isolation import visible_devices_env

from hami_core.sdk import CUDA_DEVICE_MEMORY_LIMIT_PREFIX
from hami_core.sdk import CUDA_DEVICE_SM_LIMIT
from hami_core.sdk import CUDA_TASK_PRIORITY
from hami_core.sdk import ContainerDevice


def test_each_device_gets_a_memory_limit_in_mib_and_the_first_sets_the_sm_limit() -> None:
    devices = (ContainerDevice("MOCK-a", "MOCK", 3000, 25), ContainerDevice("MOCK-b", "MOCK", 500, 70))
    assert limits_env(devices) == {
        "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
        "CUDA_DEVICE_MEMORY_LIMIT_1": "500m",
        "CUDA_DEVICE_SM_LIMIT": "25",
    }


def test_no_devices_means_no_limits() -> None:
    assert limits_env(()) == {}


def test_a_priority_is_handed_to_the_shim() -> None:
    devices = (ContainerDevice("MOCK-a", "MOCK", 100, 0),)
    assert limits_env(devices, task_priority=0)["CUDA_TASK_PRIORITY"] == "0"
    assert "CUDA_TASK_PRIORITY" not in limits_env(devices)


def test_the_variable_names_are_the_shim_contracts() -> None:
    assert (isolation.MEMORY_LIMIT_PREFIX, isolation.SM_LIMIT, isolation.TASK_PRIORITY) == (
        CUDA_DEVICE_MEMORY_LIMIT_PREFIX,
        CUDA_DEVICE_SM_LIMIT,
        CUDA_TASK_PRIORITY,
    )


def test_visible_devices_list_each_device_once_in_order() -> None:
    devices = (
        ContainerDevice("MOCK-b", "MOCK", 1, 0),
        ContainerDevice("MOCK-a", "MOCK", 1, 0),
        ContainerDevice("MOCK-b", "MOCK", 1, 0),
    )
    assert visible_devices_env(devices) == {"MOCK_VISIBLE_DEVICES": "MOCK-b,MOCK-a"}
