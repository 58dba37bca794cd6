"""The MLU backend passes the conformance suite every backend runs."""

from __future__ import annotations

from hami_core.testing import BackendContract


class TestMluContract(BackendContract):
    """Runs on the shipped two-card ``cnmon`` output (the ``backend`` fixture of conftest.py)."""
