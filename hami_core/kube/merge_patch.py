"""RFC 7386 JSON merge patch, as kube-apiserver applies ``application/merge-patch+json``.

Pure and shared: the API server emulator's PATCH and ``FakeKube``'s writes both merge through here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied: maps merge recursively, ``None`` deletes, the rest replaces.

    Neither argument is modified; the result shares no mutable value with ``patch``.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
