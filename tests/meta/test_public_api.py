"""``hami_core.__all__`` and ``hami_core.testing.__all__`` are sorted and complete (httpx's guard)."""

from __future__ import annotations

import types

import pytest

import hami_core
import hami_core.testing


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


@pytest.mark.parametrize("module", [hami_core, hami_core.testing], ids=lambda m: m.__name__)
def test_all_is_sorted(module: types.ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__, key=_isort_key)


@pytest.mark.parametrize("module", [hami_core, hami_core.testing], ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert set(module.__all__) == public


def test_backend_authors_find_the_contract_at_the_top_level() -> None:
    for name in (
        "hookimpl",
        "DeviceBackend",
        "CONTRACT_VERSION",
        "ResourceNames",
        "VendorKeys",
        "DeviceInfo",
    ):
        assert name in hami_core.__all__
