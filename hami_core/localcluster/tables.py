"""``meta.k8s.io/v1`` Table renderings of pods and nodes, for ``kubectl get``.

kubectl asks for ``as=Table`` and prints the server's columns: without them a pod shows
only NAME and AGE. The columns and cell texts follow kube-apiserver's printers (simplified:
the pod STATUS column is the phase, or Terminating). Other resources are served as plain
lists, for which kubectl prints NAME and AGE itself.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from hami_core.localcluster.resources import JsonObj
from hami_core.localcluster.resources import ResourceType

Cells = Callable[[JsonObj, float], list[Any]]


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a Table."""
    return "as=Table" in accept


def _column(name: str, kind: str = "string", priority: int = 0) -> JsonObj:
    return {
        "name": name,
        "type": kind,
        "format": "name" if name == "Name" else "",
        "description": "",
        "priority": priority,
    }


def age(timestamp: str, now: float) -> str:
    """kubectl's human duration since an RFC 3339 timestamp ("42s", "5m3s", "3h", "12d")."""
    if not timestamp:
        return "<unknown>"
    seconds = int(now - calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    return f"{days // 365}y"


def _or_none(value: Any) -> Any:
    return value if value else "<none>"


def _pod_cells(pod: JsonObj, now: float) -> list[Any]:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    phase = (
        "Terminating" if meta.get("deletionTimestamp") else status.get("reason") or status.get("phase", "")
    )
    return [
        meta["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        phase,
        sum(int(s.get("restartCount", 0)) for s in statuses),
        age(meta.get("creationTimestamp", ""), now),
        _or_none(status.get("podIP")),
        _or_none(spec.get("nodeName")),
        _or_none(status.get("nominatedNodeName")),
        "<none>",
    ]


def _node_cells(node: JsonObj, now: float) -> list[Any]:
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = {"True": "Ready", "False": "NotReady"}.get(ready or "", "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k.removeprefix(prefix) for k in meta.get("labels") or {} if k.startswith(prefix))
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        meta["name"],
        state,
        ",".join(roles) or "<none>",
        age(meta.get("creationTimestamp", ""), now),
        info.get("kubeletVersion", ""),
        _or_none(addresses.get("InternalIP")),
        _or_none(addresses.get("ExternalIP")),
        _or_none(info.get("osImage")),
        _or_none(info.get("kernelVersion")),
        _or_none(info.get("containerRuntimeVersion")),
    ]


_TABLES: dict[str, tuple[list[JsonObj], Cells]] = {
    "Pod": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ],
        _pod_cells,
    ),
    "Node": (
        [
            _column("Name"),
            _column("Status"),
            _column("Roles"),
            _column("Age"),
            _column("Version"),
            _column("Internal-IP", priority=1),
            _column("External-IP", priority=1),
            _column("OS-Image", priority=1),
            _column("Kernel-Version", priority=1),
            _column("Container-Runtime", priority=1),
        ],
        _node_cells,
    ),
}


def table(rt: ResourceType, objects: Sequence[JsonObj], resource_version: str, now: float) -> JsonObj | None:
    """A Table of ``objects`` (each row carries its object), or None when ``rt`` has no columns."""
    if rt.group or rt.kind not in _TABLES:
        return None
    columns, cells = _TABLES[rt.kind]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": [{"cells": cells(obj, now), "object": obj} for obj in objects],
    }
