"""The DCU backend passes the conformance suite every backend runs."""

from __future__ import annotations

from hami_core.testing import BackendContract


class TestDcuContract(BackendContract):
    """Runs on the shipped two-card ``hy-smi`` output (the ``backend`` fixture of conftest.py)."""
