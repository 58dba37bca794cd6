"""The vendor SDK and the test kit list exactly their public names, sorted (httpx's guard)."""

from __future__ import annotations

import types

import pytest

import hami_core
import hami_core.sdk
import hami_core.testing


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def _public(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }


@pytest.mark.parametrize("module", [hami_core.sdk, hami_core.testing], ids=lambda m: m.__name__)
def test_all_is_sorted(module: types.ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__, key=_isort_key)


@pytest.mark.parametrize("module", [hami_core.sdk, hami_core.testing], ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    assert set(module.__all__) == _public(module)


def test_the_package_root_exports_nothing_so_the_sdk_is_the_one_surface() -> None:
    assert _public(hami_core) == set()


def test_backend_authors_find_the_contract_in_the_sdk() -> None:
    for name in (
        "hookimpl",
        "DeviceBackend",
        "CONTRACT_VERSION",
        "ResourceNames",
        "VendorKeys",
        "DeviceInfo",
        "FitRules",
        "ContainerView",
        "PodView",
        "whole_quantity",
        "shim_env",
    ):
        assert name in hami_core.sdk.__all__
