"""Fixtures shared across the test tree."""

from __future__ import annotations

import pytest

from hami_core.localcluster.controlplane import ControlPlaneError
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.controlplane import find_binaries


@pytest.fixture(scope="module", params=["emulator", "real"])
def control_plane(request: pytest.FixtureRequest) -> ControlPlaneKind:
    """The API-server back end a cluster test runs on, once each: ``"emulator"`` or ``"real"``.

    ``"emulator"`` is the embedded API server and kube-scheduler stand-in; ``"real"`` is etcd,
    kube-apiserver and kube-scheduler built by ``make kube`` (``hami_core.localcluster.controlplane``).
    Module-scoped, so pytest groups a module's tests by back end and a module-scoped cluster fixture
    starts one real control plane, not one per test. Without the binaries a real run fails at once
    with the remedy.
    """
    kind: ControlPlaneKind = "real" if request.param == "real" else "emulator"
    if kind == "real":
        try:
            find_binaries()
        except ControlPlaneError as err:
            pytest.fail(str(err))
    return kind
