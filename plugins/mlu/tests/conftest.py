"""Fixtures of the MLU backend tests: a backend on the shipped two-card ``cnmon`` output."""

from __future__ import annotations

import pytest
from hami_backend_mlu.backend import MluBackend
from hami_backend_mlu.settings import MluSettings


@pytest.fixture
def backend() -> MluBackend:
    return MluBackend(MluSettings(fake="2xMLU370"))
