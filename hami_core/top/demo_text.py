"""The text ``hami demo`` prints: its pods, the device table of ``hami top --once`` (the same code),
and the environment the device plugins gave each container."""

from __future__ import annotations

from collections.abc import Sequence

from hami_core.localcluster.demo import DemoResult
from hami_core.top.render import render_text
from hami_core.top.view import device_rows


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def render_demo(result: DemoResult) -> str:
    """The result as the three tables a person reads: pods, devices, container environments."""
    pods: list[list[str]] = [["POD", "PHASE", "NODE", "SCHEDULER", "DEVICES (uuid mem cores)", "NOTE"]]
    envs: list[str] = []
    for pod in result.report.pods:
        shares = [
            f"{share.uuid} {share.memory_mib}MiB {share.cores}%"
            for container in pod.containers
            for share in container.devices
        ]
        notes = [f"warning: {text}" for text in result.warnings.get(pod.name, ())]
        if pod.name in result.unschedulable:
            notes.append(f"unschedulable: {result.unschedulable[pod.name]}")
        pods.append(
            [pod.name, pod.phase, pod.node or "-", pod.scheduler, "; ".join(shares) or "-", " | ".join(notes)]
        )
        for container in pod.containers:
            if container.env:
                pairs = " ".join(f"{key}={value}" for key, value in sorted(container.env.items()))
                envs.append(f"{pod.name}/{container.name}: {pairs}")
    parts = [
        f"Pods ({len(result.report.pods)} on {len(result.nodes)} nodes)",
        _table(pods),
        "",
        "Devices (booked per pod: the table of hami top --once)",
        render_text(device_rows(result.report.devices)),
        "",
        "Container environment from the device plugins",
        *envs,
    ]
    if result.report.problems:
        parts += ["", "Problems", *result.report.problems]
    return "\n".join(parts)
