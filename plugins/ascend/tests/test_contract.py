"""Every Ascend chip backend passes the conformance suite every backend runs."""

from __future__ import annotations

import attrs
import pytest
from hami_backend_ascend import resources
from hami_backend_ascend.backend import AscendBackend
from hami_backend_ascend.settings import AscendSettings

from hami_core.testing import BackendContract


def _backend(name: str, fake: str, network_group_size: int = 0) -> AscendBackend:
    settings = AscendSettings.for_chip(resources.CHIPS_BY_NAME[name])
    return AscendBackend(attrs.evolve(settings, fake=fake, network_group_size=network_group_size))


class TestAscend910B3Contract(BackendContract):
    @pytest.fixture
    def backend(self) -> AscendBackend:
        return _backend("ascend910b3", "8x910B3", network_group_size=4)


class TestAscend910CContract(BackendContract):
    @pytest.fixture
    def backend(self) -> AscendBackend:
        return _backend("ascend910c", "4x910C")


class TestAscend310PContract(BackendContract):
    @pytest.fixture
    def backend(self) -> AscendBackend:
        return _backend("ascend310p", "8x910B3")


class TestAscend910B41Contract(BackendContract):
    @pytest.fixture
    def backend(self) -> AscendBackend:
        return _backend("ascend910b41", "8x910B3")
