"""The fake libnvidia-ml.so.1 speaks NVML to the real nvidia-ml-py binding."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from plugins.nvidia.tests.conftest import LIBRARY
from plugins.nvidia.tests.conftest import PRESETS
from plugins.nvidia.tests.conftest import UseNvml


@pytest.fixture
def nvml(use_nvml: UseNvml) -> Iterator[Callable[[str | dict[str, object]], None]]:
    """Initialise NVML on a configuration; shut it down after the test."""
    started = 0

    def init(config: str | dict[str, object]) -> None:
        nonlocal started
        use_nvml(config)
        pynvml.nvmlInit()
        started += 1

    yield init
    for _ in range(started):
        pynvml.nvmlShutdown()


def _device(**extra: object) -> dict[str, object]:
    return {"uuid": "GPU-a", "name": "Tesla T4", "memory_mib": 15360, **extra}


class TestEnumeration:
    def test_a100_preset_has_eight_80gb_gpus_on_two_numa_nodes(self, nvml: Callable[[str], None]) -> None:
        nvml("a100-8-nvlink")
        assert pynvml.nvmlDeviceGetCount() == 8
        seen = []
        for index in range(8):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            assert pynvml.nvmlDeviceGetIndex(handle) == index
            assert pynvml.nvmlDeviceGetName(handle) == "NVIDIA A100-SXM4-80GB"
            assert pynvml.nvmlDeviceGetMemoryInfo(handle).total == 81920 * 2**20
            assert pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2).total == 81920 * 2**20
            seen.append(pynvml.nvmlDeviceGetNumaNodeId(handle))
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByUUID(uuid)) == index
            bus = pynvml.nvmlDeviceGetPciInfo(handle).busId
            assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByPciBusId(bus)) == index
        assert seen == [0, 0, 0, 0, 1, 1, 1, 1]

    def test_t4_preset_has_four_t4s_without_nvlink_or_mig(self, nvml: Callable[[str], None]) -> None:
        nvml("t4-4")
        assert pynvml.nvmlDeviceGetCount() == 4
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        assert pynvml.nvmlDeviceGetName(handle) == "Tesla T4"
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetNvLinkState(handle, 0)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetMigMode(handle)  # Turing has no MIG

    def test_h100_preset_reports_mig_enabled(self, nvml: Callable[[str], None]) -> None:
        nvml("h100-mig")
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        assert pynvml.nvmlDeviceGetMigMode(handle) == [pynvml.NVML_DEVICE_MIG_ENABLE] * 2
        assert pynvml.nvmlDeviceGetCudaComputeCapability(handle) == (9, 0)

    def test_nvlink_islands_and_p2p_levels(self, nvml: Callable[[str], None]) -> None:
        nvml("a100-8-nvlink")
        first = pynvml.nvmlDeviceGetHandleByIndex(0)
        peers = []
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                if pynvml.nvmlDeviceGetNvLinkState(first, link):
                    peers.append(pynvml.nvmlDeviceGetNvLinkRemotePciInfo(first, link).busId)
            except pynvml.NVMLError_NotSupported:
                continue
        index_of = {
            pynvml.nvmlDeviceGetPciInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).busId: i for i in range(8)
        }
        assert sorted(index_of[bus] for bus in peers) == [1] * 4 + [2] * 4 + [3] * 4
        same_numa = pynvml.nvmlDeviceGetTopologyCommonAncestor(first, pynvml.nvmlDeviceGetHandleByIndex(1))
        cross = pynvml.nvmlDeviceGetTopologyCommonAncestor(first, pynvml.nvmlDeviceGetHandleByIndex(4))
        assert (same_numa, cross) == (pynvml.NVML_TOPOLOGY_NODE, pynvml.NVML_TOPOLOGY_SYSTEM)


class TestReturnCodes:
    def test_calls_before_init_are_uninitialized(self, use_nvml: UseNvml, fake_library: ctypes.CDLL) -> None:
        use_nvml("t4-4")
        count = ctypes.c_uint()
        assert fake_library.nvmlDeviceGetCount_v2(ctypes.byref(count)) == pynvml.NVML_ERROR_UNINITIALIZED

    def test_bad_handles_and_indexes_are_invalid_arguments(self, nvml: Callable[[str], None]) -> None:
        nvml("t4-4")
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            pynvml.nvmlDeviceGetUUID(ctypes.cast(ctypes.c_void_p(12345), pynvml.c_nvmlDevice_t))
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            pynvml.nvmlDeviceGetHandleByIndex(4)
        with pytest.raises(pynvml.NVMLError_NotFound):
            pynvml.nvmlDeviceGetHandleByUUID("GPU-nope")

    def test_short_buffers_are_insufficient_size(
        self, nvml: Callable[[str], None], fake_library: ctypes.CDLL
    ) -> None:
        nvml("t4-4")
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        small = ctypes.create_string_buffer(4)
        assert fake_library.nvmlDeviceGetName(handle, small, 4) == pynvml.NVML_ERROR_INSUFFICIENT_SIZE

    def test_unsupported_memory_and_numa_are_not_supported(
        self, nvml: Callable[[dict[str, object]], None]
    ) -> None:
        nvml({"devices": [_device(memory_mib=None, numa=None)]})
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetMemoryInfo(handle)
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetNumaNodeId(handle)

    def test_memory_v2_checks_the_struct_version(
        self, nvml: Callable[[str], None], fake_library: ctypes.CDLL
    ) -> None:
        nvml("t4-4")
        memory = pynvml.c_nvmlMemory_v2_t()
        memory.version = 1
        result = fake_library.nvmlDeviceGetMemoryInfo_v2(
            pynvml.nvmlDeviceGetHandleByIndex(0), ctypes.byref(memory)
        )
        assert result == pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH

    def test_without_a_configuration_the_driver_is_not_loaded(
        self, use_nvml: UseNvml, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        use_nvml("t4-4")
        monkeypatch.delenv("FAKE_NVML_CONFIG")
        with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
            pynvml.nvmlInit()

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            pytest.param(
                {"devices": [{"name": "x"}]}, "a device's uuid must be a non-empty string", id="no-uuid"
            ),
            pytest.param({"devices": [_device(), _device()]}, "duplicate device uuid GPU-a", id="duplicate"),
            pytest.param({"devices": [_device(numa="0")]}, "devices[0].numa", id="numa-type"),
            pytest.param(
                {"devices": [_device()], "nvlink": [[0, 1]]}, "nvlink must have one column", id="matrix"
            ),
            pytest.param({"gpus": []}, 'needs a "devices" list', id="no-devices"),
        ],
    )
    def test_a_bad_configuration_fails_init_and_says_why(
        self, use_nvml: UseNvml, fake_library: ctypes.CDLL, config: dict[str, object], message: str
    ) -> None:
        use_nvml(config)
        with pytest.raises(pynvml.NVMLError_Unknown):
            pynvml.nvmlInit()
        fake_library.fakenvml_last_error.restype = ctypes.c_char_p
        assert message in fake_library.fakenvml_last_error().decode()


class TestXidEvents:
    def _watched(self, index: int) -> object:
        events = pynvml.nvmlEventSetCreate()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, events)
        return events

    def test_no_event_times_out(self, nvml: Callable[[str], None]) -> None:
        nvml("t4-4")
        events = self._watched(0)
        with pytest.raises(pynvml.NVMLError_Timeout):
            pynvml.nvmlEventSetWait(events, 30)
        pynvml.nvmlEventSetFree(events)

    def test_injected_xid_reaches_the_set_watching_that_gpu(
        self, nvml: Callable[[str], None], fake_library: ctypes.CDLL
    ) -> None:
        nvml("t4-4")
        events = self._watched(2)
        assert fake_library.fakenvml_inject_xid(1, 79) == 0  # not watched by this set
        assert fake_library.fakenvml_inject_xid(2, 48) == 0
        data = pynvml.nvmlEventSetWait(events, 1000)
        assert (data.eventType, data.eventData) == (pynvml.nvmlEventTypeXidCriticalError, 48)
        assert pynvml.nvmlDeviceGetIndex(data.device) == 2
        assert fake_library.fakenvml_inject_xid(9, 48) == -1
        pynvml.nvmlEventSetFree(events)

    def test_lines_appended_to_the_events_file_are_delivered(
        self, nvml: Callable[[str], None], events_file: Path
    ) -> None:
        nvml("t4-4")
        events = self._watched(3)
        uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(3))
        with events_file.open("a") as out:
            out.write(f"{uuid} 79\n3 94\n")
        assert [pynvml.nvmlEventSetWait(events, 1000).eventData for _ in range(2)] == [79, 94]
        pynvml.nvmlEventSetFree(events)

    def test_garbage_and_unknown_gpus_in_the_events_file_are_skipped(
        self, nvml: Callable[[str], None], events_file: Path
    ) -> None:
        nvml("t4-4")
        events = self._watched(0)
        with events_file.open("a") as out:
            out.write("x" * 5000 + "\nGPU-nope 79\n9 79\nnot-a-line\n0 43\n0 ")
        assert pynvml.nvmlEventSetWait(events, 1000).eventData == 43
        with pytest.raises(pynvml.NVMLError_Timeout):
            pynvml.nvmlEventSetWait(events, 50)  # "0 " is still being written
        with events_file.open("a") as out:
            out.write("48\n")
        assert pynvml.nvmlEventSetWait(events, 1000).eventData == 48
        pynvml.nvmlEventSetFree(events)

    def test_gpus_without_event_support_refuse_registration(
        self, nvml: Callable[[dict[str, object]], None]
    ) -> None:
        nvml({"devices": [_device(xid_events=False)]})
        events = pynvml.nvmlEventSetCreate()
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceRegisterEvents(
                pynvml.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeXidCriticalError, events
            )
        pynvml.nvmlEventSetFree(events)


def test_the_binding_finds_the_fake_on_the_ordinary_library_path() -> None:
    """A fresh process with only LD_LIBRARY_PATH set loads the fake through nvidia-ml-py's own search."""
    script = textwrap.dedent(
        """
        import json, pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        print(json.dumps([pynvml.nvmlDeviceGetCount(), pynvml.nvmlDeviceGetName(h)]))
        """
    )
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": str(LIBRARY.parent),
        "FAKE_NVML_CONFIG": str(PRESETS / "h100-mig.json"),
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [1, "NVIDIA H100 80GB HBM3"]
