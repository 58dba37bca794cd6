"""Drawing a :class:`~hami_core.top.view.TopView` with rich: one table, a device row followed by
one indented row per pod. :func:`render_text` gives the plain text the demo and ``--once`` print."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table

from hami_core.top.usage import Used
from hami_core.top.view import TopView


def _used(value: Used | None) -> str:
    return "-" if value is None else str(value.memory_mib)


def _util(value: Used | None) -> str:
    return "-" if value is None else str(value.utilization)


def table(view: TopView, title: str | None = None) -> Table:
    """The view as a rich table."""
    grid = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for name, justify in (
        ("NODE", "left"),
        ("DEVICE / POD", "left"),
        ("TYPE", "left"),
        ("MEMORY MiB", "right"),
        ("USED MiB", "right"),
        ("CORES %", "right"),
        ("UTIL %", "right"),
        ("SLOTS", "right"),
    ):
        grid.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in view.devices:
        device = row.device
        grid.add_row(
            device.node,
            device.uuid,
            device.type + ("" if device.healthy else " (unhealthy)"),
            f"{device.memory_used_mib}/{device.memory_mib}",
            _used(row.used),
            f"{device.cores_used}/{device.cores}",
            _util(row.used),
            f"{device.slots_used}/{device.slots}",
            style="bold red" if device.overcommitted else "bold",
        )
        for pod in row.pods:
            grid.add_row(
                "",
                f"  {pod.pod}",
                "",
                str(pod.memory_mib),
                _used(pod.used),
                str(pod.cores),
                _util(pod.used),
                "",
            )
    return grid


def render_text(view: TopView, width: int = 160) -> str:
    """The table as plain text (no colour, no terminal needed), problems listed after it."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(table(view))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = [line.rstrip() for line in str(text).splitlines()]
    if view.problems:
        lines += ["Problems", *view.problems]
    return "\n".join(lines).strip("\n")
