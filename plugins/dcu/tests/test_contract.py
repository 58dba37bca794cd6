"""The DCU backend passes the conformance suite every backend runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_backend_dcu.backend import DcuBackend
from hami_backend_dcu.settings import DcuSettings

from hami_core.testing import BackendContract


class TestDcuContract(BackendContract):
    """Runs on the shipped two-card ``hy-smi`` output."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> DcuBackend:
        return DcuBackend(DcuSettings(fake="2xZ100L", vdev_dir=str(tmp_path / "vdev")))
