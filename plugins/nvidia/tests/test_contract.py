"""The NVIDIA backend passes the conformance suite on each fake NVML preset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hami_backend_nvidia.backend import NvidiaBackend
from hami_backend_nvidia.settings import NvidiaSettings

from hami_core.testing import BackendContract
from plugins.nvidia.tests.conftest import UseNvml


class TestNvidiaContract(BackendContract):
    @pytest.fixture
    def backend(self, use_nvml: UseNvml, preset_name: str, tmp_path: Path) -> Iterator[NvidiaBackend]:
        use_nvml(preset_name)
        backend = NvidiaBackend(NvidiaSettings(hook_path=str(tmp_path / "hook"), topology_score=True))
        yield backend
        backend.close()
