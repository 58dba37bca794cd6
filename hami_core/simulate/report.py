"""What ``hami simulate`` prints and writes: the table, the JSON object, the paper's CSVs, the plot."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from hami_core.errors import HamiError
from hami_core.simulate.metrics import RunSummary
from hami_core.simulate.metrics import mean_sd

#: Arrived percentages reported in the JSON object.
STEP = 5
#: The paper's file names, and which series each holds.
CSV_FILES = {
    "analysis_allo_discrete.csv": "allocated",
    "analysis_frag_discrete.csv": "fragment",
    "analysis_frag_ratio_discrete.csv": "frag_rate",
}


def by_policy(runs: Sequence[RunSummary]) -> dict[str, list[RunSummary]]:
    grouped: dict[str, list[RunSummary]] = {}
    for run in runs:
        grouped.setdefault(run.policy, []).append(run)
    return grouped


def _at(runs: Sequence[RunSummary], series: str, x: int) -> tuple[float | None, float | None]:
    return mean_sd([getattr(run, series)[x] if x < len(getattr(run, series)) else None for run in runs])


def json_object(runs: Sequence[RunSummary]) -> dict[str, object]:
    """``{"policies": {NAME: {"unallocated_gpu_pct": {"0": mean, ...}, "sd": {...}, "seeds": [...]}}}``.

    Each policy also gives ``cpu_seconds``, the replay's CPU time per seed (same order as ``seeds``).
    """
    policies: dict[str, object] = {}
    for policy, group in by_policy(runs).items():
        points = len(group[0].allocated)
        means: dict[str, float | None] = {}
        sds: dict[str, float | None] = {}
        for x in range(0, points, STEP):
            means[str(x)], sds[str(x)] = _at(group, "unallocated", x)
        policies[policy] = {
            "unallocated_gpu_pct": means,
            "sd": sds,
            "seeds": [run.seed for run in group],
            "cpu_seconds": [round(run.seconds, 2) for run in group],
        }
    return {"policies": policies}


def write_csv(directory: Path, runs: Sequence[RunSummary], arrive: float) -> list[Path]:
    """The paper's ``analysis_*_discrete.csv`` files (one row per run) in ``directory``.

    Raises:
        HamiError: the directory cannot be created or written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, series in CSV_FILES.items():
            path = directory / name
            points = len(runs[0].allocated) if runs else 0
            with path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["workload", "sc_policy", "tune", "seed", "total_gpus", *range(points)])
                for run in runs:
                    values = ["" if value is None else value for value in getattr(run, series)]
                    writer.writerow(
                        [
                            run.workload,
                            run.policy,
                            round(arrive / 100, 2),
                            run.seed,
                            round(run.total_gpus),
                            *values,
                        ]
                    )
            written.append(path)
        return written
    except OSError as err:
        raise HamiError(f"{directory}: cannot write the CSV files: {err.strerror or err}") from err


def _cell(mean: float | None, sd: float | None) -> str:
    return "-" if mean is None else f"{mean:.2f} ({sd:.2f})"


def table(runs: Sequence[RunSummary], arrive: float) -> Table:
    """Per policy: unallocated GPU % at 100 % and at the end, fragmentation rate, failures, time."""
    end = int(arrive)
    grid = Table(title=f"{runs[0].workload if runs else ''}: unallocated GPU %, mean (sd) over seeds")
    for header in (
        "policy",
        "seeds",
        "@100 %",
        f"@{end} %",
        "frag rate @100 %",
        "failed pods",
        "CPU s per run",
    ):
        grid.add_column(header, justify="left" if header == "policy" else "right")
    for policy, group in by_policy(runs).items():
        grid.add_row(
            policy,
            str(len(group)),
            _cell(*_at(group, "unallocated", 100)) if end >= 100 else "-",
            _cell(*_at(group, "unallocated", end)),
            _cell(*_at(group, "frag_rate", 100)) if end >= 100 else "-",
            f"{sum(run.failed for run in group) / len(group):.0f}",
            f"{sum(run.seconds for run in group) / len(group):.1f}",
        )
    return grid


def plot(path: Path, runs: Sequence[RunSummary]) -> None:
    """Unallocated GPU % against arrived % per policy (mean over seeds) into ``path``.

    Raises:
        HamiError: matplotlib is not installed (the ``plot`` extra) or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError as err:
        raise HamiError("--plot needs matplotlib: pip install 'hami[plot]'") from err
    figure, axes = pyplot.subplots(figsize=(8, 5))
    for policy, group in by_policy(runs).items():
        xs: list[int] = []
        ys: list[float] = []
        for x in range(len(group[0].allocated)):
            mean, _ = _at(group, "unallocated", x)
            if mean is not None:
                xs.append(x)
                ys.append(mean)
        axes.plot(xs, ys, label=policy)
    top = len(runs[0].allocated) if runs else 100
    axes.plot(range(top), [max(0, 100 - x) for x in range(top)], "k:", label="ideal")
    axes.set_xlabel("arrived GPU demand, % of capacity")
    axes.set_ylabel("unallocated GPU, %")
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.grid(alpha=0.3)
    try:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as err:
        raise HamiError(f"{path}: cannot write the plot: {err.strerror or err}") from err
    finally:
        pyplot.close(figure)
