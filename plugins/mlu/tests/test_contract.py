"""The MLU backend passes the conformance suite every backend runs."""

from __future__ import annotations

import pytest
from hami_backend_mlu.backend import MluBackend
from hami_backend_mlu.settings import MluSettings

from hami_core.testing import BackendContract


class TestMluContract(BackendContract):
    """Runs on the shipped two-card ``cnmon`` output."""

    @pytest.fixture
    def backend(self) -> MluBackend:
        return MluBackend(MluSettings(fake="2xMLU370"))
