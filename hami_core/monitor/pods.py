"""Which pod a region belongs to: pod UID to namespace and name, from the kubelet's pod list or
the API server's list of the node's pods (pure decoding here; the fetching is in :mod:`service`)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class PodRef:
    namespace: str
    name: str


def index_pods(pods: Iterable[Mapping[str, Any]]) -> dict[str, PodRef]:
    """UID to pod for every pod object with a UID (objects without metadata are skipped)."""
    index = {}
    for pod in pods:
        meta = pod.get("metadata")
        if not isinstance(meta, Mapping):
            continue
        uid = meta.get("uid")
        if isinstance(uid, str) and uid:
            index[uid] = PodRef(str(meta.get("namespace", "")), str(meta.get("name", "")))
    return index
