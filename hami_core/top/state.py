"""The cluster as ``hami top`` follows it: nodes and pods kept current from watch events. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

Obj = Mapping[str, Any]


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class ClusterState:
    """Nodes and pods by ``namespace/name``; :meth:`apply` takes watch events in order."""

    def __init__(self, nodes: Iterable[Obj] = (), pods: Iterable[Obj] = ()) -> None:
        self.nodes = {_key(node): node for node in nodes}
        self.pods = {_key(pod): pod for pod in pods}

    def apply(self, kind: str, event: str, obj: Obj) -> None:
        """``kind`` is ``node`` or ``pod``; ``event`` a watch type (ADDED, MODIFIED, DELETED)."""
        table = self.nodes if kind == "node" else self.pods
        if event == "DELETED":
            table.pop(_key(obj), None)
        elif event in ("ADDED", "MODIFIED"):
            table[_key(obj)] = obj

    def replace(self, kind: str, objects: Iterable[Obj]) -> None:
        """A fresh listing (after a watch expired) replaces what was known."""
        table = {_key(obj): obj for obj in objects}
        if kind == "node":
            self.nodes = table
        else:
            self.pods = table
