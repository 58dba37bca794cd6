"""Fixtures of the DCU backend tests: a backend on the shipped two-card ``hy-smi`` output."""

from __future__ import annotations

from pathlib import Path

import pytest
from hami_backend_dcu.backend import DcuBackend
from hami_backend_dcu.settings import DcuSettings


@pytest.fixture
def settings(tmp_path: Path) -> DcuSettings:
    return DcuSettings(fake="2xZ100L", vdev_dir=str(tmp_path / "vdev"))


@pytest.fixture
def backend(settings: DcuSettings) -> DcuBackend:
    return DcuBackend(settings)
