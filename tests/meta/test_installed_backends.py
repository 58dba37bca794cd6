"""The in-tree backends are installed distributions, not just importable folders."""

from __future__ import annotations

import importlib.metadata

from hami_core.plugins import ENTRY_POINT_GROUP


def test_installed_backends_are_discoverable() -> None:
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert "mock" in entry_points.names, "run `make venv`: hami-backend-mock must be installed (editable)"
    assert entry_points["mock"].value == "hami_backend_mock.plugin"


def test_the_test_kit_is_registered_with_pytest() -> None:
    plugins = importlib.metadata.entry_points(group="pytest11")
    assert plugins["hami"].value == "hami_core.testing.pytest_plugin"


def test_the_vendor_backends_are_installed_under_their_names() -> None:
    names = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP).names
    chips = {"ascend910a", "ascend910b2", "ascend910b3", "ascend910b4", "ascend910b41", "ascend310p", "ascend910c"}
    assert {"mlu", "dcu", *chips} <= names, "run `make venv`: plugins/ascend, mlu and dcu must be installed"
