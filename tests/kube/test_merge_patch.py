"""JSON merge patch (RFC 7386), shared by the API server emulator and FakeKube."""

from __future__ import annotations

from typing import Any

import pytest

from hami_core.kube.merge_patch import merge_patch


class TestMergePatch:
    @pytest.mark.parametrize(
        ("target", "patch", "expected"),
        [
            pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace-value"),
            pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add-key"),
            pytest.param({"a": "b"}, {"a": None}, {}, id="null-deletes"),
            pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="nested"),
            pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="lists-replace"),
            pytest.param({"a": "foo"}, {"a": {"b": None}}, {"a": {}}, id="scalar-becomes-map"),
        ],
    )
    def test_follows_rfc_7386(self, target: Any, patch: Any, expected: Any) -> None:
        assert merge_patch(target, patch) == expected

    def test_inputs_are_left_untouched(self) -> None:
        target, patch = {"a": {"b": 1}}, {"a": {"c": 2}}
        merge_patch(target, patch)
        assert target == {"a": {"b": 1}}
        assert patch == {"a": {"c": 2}}

    def test_the_result_shares_nothing_with_the_patch(self) -> None:
        patch: dict[str, Any] = {"a": {"b": [1]}}
        merged = merge_patch({}, patch)
        merged["a"]["b"].append(2)
        assert patch == {"a": {"b": [1]}}
