"""``hami demo``: the whole pipeline on the embedded cluster, driven by watch events.

Deploys hami on a local cluster (:class:`~hami_core.localcluster.stack.HamiStack`), creates the
example pods through the API server (so they pass the webhook over TLS, the kube-scheduler
stand-in and the extender, then the kubelets and device plugins), follows a pod watch until every
pod has settled (running, finished, or found unschedulable), and reports placements, each
device's sharing and the environment every container was given (printed by
:func:`hami_core.top.demo_text.render_demo`). No step waits on a timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from hami_core import yaml_documents
from hami_core.errors import HamiError
from hami_core.kube.client import RealKubeClient
from hami_core.localcluster.sharing import SharingReport
from hami_core.localcluster.sharing import sharing_report
from hami_core.localcluster.stack import HamiStack

#: Phases after which a pod needs nothing more from the scheduler or the kubelet.
_SETTLED_PHASES = frozenset({"Running", "Succeeded", "Failed"})


@attrs.frozen
class DemoResult:
    """What the demo observed.

    Args:
        report: placements and device sharing when every pod had settled.
        warnings: admission warnings the API server returned, per pod name.
        unschedulable: the scheduler's message for each pod left pending, per pod name.
        nodes: the cluster's node names.
    """

    report: SharingReport
    warnings: Mapping[str, tuple[str, ...]] = attrs.field(hash=False)
    unschedulable: Mapping[str, str] = attrs.field(hash=False)
    nodes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes),
            **self.report.to_json(),
            "warnings": {name: list(texts) for name, texts in self.warnings.items()},
            "unschedulable": dict(self.unschedulable),
        }


def load_manifests(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The Pod documents in ``paths`` (YAML files, several documents each allowed).

    Raises:
        HamiError: a file is unreadable, not YAML, or holds something other than a Pod.
    """
    pods = []
    for path in paths:
        for document in yaml_documents.load_yaml_all(path, f"example {path}"):
            if document is None:
                continue
            if not isinstance(document, dict) or document.get("kind") != "Pod":
                raise HamiError(f"example {path}: only Pod documents are supported")
            pods.append(document)
    return pods


def _unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message", ""))
    return None


def run_demo(
    stack: HamiStack, manifests: Sequence[Mapping[str, Any]], *, timeout: float = 120.0
) -> DemoResult:
    """Create ``manifests`` in ``default`` on a started stack and report once all have settled.

    Raises:
        HamiError: the API server refused a pod, or pods had not settled within ``timeout`` seconds.
    """
    warnings: dict[str, list[str]] = {}
    current: list[str] = []
    names = [str(manifest["metadata"]["name"]) for manifest in manifests]
    with RealKubeClient(
        kubeconfig=stack.cluster.kubeconfig,
        warning_handler=lambda text: warnings.setdefault(current[0], []).append(text),
    ) as kube:
        listing = kube.list_pods("default")
        for manifest, name in zip(manifests, names, strict=True):
            current[:] = [name]
            kube.create_pod("default", manifest)  # type: ignore[arg-type]
        pending = set(names)
        unschedulable: dict[str, str] = {}
        watch = kube.watch_pods(
            "default", resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=int(timeout)
        )
        try:
            for kind, pod in watch:
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # a bookmark carries no pod
                name = pod["metadata"]["name"]
                message = _unschedulable_message(pod)
                if message is not None:
                    unschedulable[name] = message
                elif pod.get("status", {}).get("phase") in _SETTLED_PHASES:
                    unschedulable.pop(name, None)
                else:
                    continue
                pending.discard(name)
                if not pending:
                    break
        finally:
            watch.stop()
        if pending:
            raise HamiError(f"pods did not settle within {timeout:.0f}s: {', '.join(sorted(pending))}")
        report = sharing_report(
            kube.list_nodes()["items"], kube.list_pods("default")["items"], list(stack.backends)
        )
    return DemoResult(
        report=report,
        warnings={name: tuple(texts) for name, texts in warnings.items()},
        unschedulable=unschedulable,
        nodes=tuple(stack.cluster.node_names),
    )
