"""The Acme backend passes hami's conformance suite."""

from __future__ import annotations

import pytest
from hami_backend_acme.backend import AcmeBackend

from hami_core.testing import BackendContract


class TestAcmeContract(BackendContract):
    @pytest.fixture
    def backend(self) -> AcmeBackend:
        return AcmeBackend()
