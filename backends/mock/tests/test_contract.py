"""The mock backend passes the conformance suite every backend runs."""

from __future__ import annotations

import pytest
from hami_backend_mock.backend import MockBackend

from hami_core.testing import BackendContract


class TestMockContract(BackendContract):
    @pytest.fixture
    def backend(self) -> MockBackend:
        return MockBackend()
