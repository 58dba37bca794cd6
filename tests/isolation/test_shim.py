"""The HAMi-core shim's environment contract: names, units and what HAMi's Allocate writes."""

from __future__ import annotations

from hami_core.devices import ContainerDevice
from hami_core.isolation import shim

A = ContainerDevice("GPU-a", "NVIDIA", 3000, 30)
B = ContainerDevice("GPU-b", "NVIDIA", 5000, 70)


def test_each_device_gets_a_memory_limit_in_mib_and_the_first_device_sets_the_sm_limit() -> None:
    assert shim.container_env((A, B)) == {
        "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
        "CUDA_DEVICE_MEMORY_LIMIT_1": "5000m",
        "CUDA_DEVICE_SM_LIMIT": "30",
    }


def test_no_devices_give_no_limits() -> None:
    assert shim.container_env(()) == {}


def test_the_optional_variables_are_written_only_when_asked() -> None:
    env = shim.container_env(
        (A,),
        shared_cache="/usr/local/vgpu/1b2c.cache",
        task_priority=0,
        core_policy="disable",
        oversubscribe=True,
        log_level="4",
    )
    assert env == {
        "CUDA_DEVICE_MEMORY_LIMIT_0": "3000m",
        "CUDA_DEVICE_SM_LIMIT": "30",
        "CUDA_DEVICE_MEMORY_SHARED_CACHE": "/usr/local/vgpu/1b2c.cache",
        "CUDA_OVERSUBSCRIBE": "true",
        "LIBCUDA_LOG_LEVEL": "4",
        "GPU_CORE_UTILIZATION_POLICY": "disable",
        "CUDA_TASK_PRIORITY": "0",
    }
    assert "GPU_CORE_UTILIZATION_POLICY" not in shim.container_env((A,), core_policy="default")


def test_every_name_in_the_contract_is_listed_once() -> None:
    assert len(set(shim.ENV_NAMES)) == len(shim.ENV_NAMES) == 11
    assert not set(shim.ENV_NAMES) & set(shim.PLUGIN_ONLY_NAMES)
    assert shim.memory_limit_name(3) == "CUDA_DEVICE_MEMORY_LIMIT_3"
    assert shim.memory_limit_name(0).startswith(shim.CUDA_DEVICE_MEMORY_LIMIT_PREFIX)
    assert all(name.isupper() or name.endswith("_") for name in shim.ENV_NAMES)
