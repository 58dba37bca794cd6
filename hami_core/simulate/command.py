"""The pieces of ``hami simulate`` that are not click: option parsing and the run with its progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn

from hami_core.errors import HamiError
from hami_core.scheduler.policies import registry
from hami_core.scheduler.scoring import BINPACK
from hami_core.scheduler.scoring import SPREAD
from hami_core.simulate.metrics import RunSummary
from hami_core.simulate.runner import Experiment
from hami_core.simulate.runner import run_all
from hami_core.simulate.trace import load_nodes
from hami_core.simulate.trace import load_pods
from hami_core.simulate.workload import arrivals

#: Every policy ``--policy all`` runs: HAMi's, the paper's, then ours.
ALL_POLICIES = (
    BINPACK,
    SPREAD,
    registry.RANDOM,
    registry.DOTPROD,
    registry.GPU_CLUSTERING,
    registry.GPU_PACKING,
    registry.BESTFIT,
    registry.FGD,
    registry.FGD_STRAND,
)
#: The most seeds one invocation accepts.
MAX_SEEDS = 1000


def parse_seeds(text: str) -> list[int]:
    """``42-51``, ``42,45,50`` or ``42`` as a list of seeds.

    Raises:
        HamiError: the text is not such a list.
    """
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part.lstrip("-"):
                first, last = part.split("-", 1)
                low, high = int(first), int(last)
                if high < low:
                    raise HamiError(f"--seeds: range {part!r} runs backwards")
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise HamiError(f"--seeds: expected e.g. 42-51 or 42,43, got {text!r}") from None
    if not seeds or len(seeds) > MAX_SEEDS:
        raise HamiError(f"--seeds: between 1 and {MAX_SEEDS} seeds, got {len(seeds)}")
    return list(dict.fromkeys(seeds))


def parse_policies(text: str, known: Sequence[str] = ALL_POLICIES) -> list[str]:
    """``all`` or a comma list of node policy names.

    Raises:
        HamiError: a name is not a known node policy.
    """
    if text.strip() == "all":
        return list(known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise HamiError(
            f"--policy: unknown {', '.join(unknown) or 'empty list'} (known: all, {', '.join(known)})"
        )
    return list(dict.fromkeys(names))


def experiment(nodes: Path, pods: Path, arrive: float) -> Experiment:
    """Load the cluster and the workload.

    Raises:
        HamiError: a file is unreadable or malformed, or ``arrive`` is out of range.
    """
    if not 0 < arrive <= 1000:
        raise HamiError(f"--arrive: a percentage above 0 and at most 1000, got {arrive:g}")
    return Experiment(
        name=pods.stem, nodes=tuple(load_nodes(nodes)), pods=tuple(load_pods(pods)), arrive=arrive
    )


def run(
    setup: Experiment, policies: Sequence[str], seeds: Sequence[int], console: Console, workers: int | None
) -> list[RunSummary]:
    """Every run, with a progress bar over all replayed pods on ``console``."""
    capacity = sum(node.gpus for node in setup.nodes) * 1000
    total = sum(len(arrivals(setup.pods, capacity, seed, setup.arrive / 100).pods) for seed in seeds) * len(
        policies
    )
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{len(policies)} policies x {len(seeds)} seeds, pods", total=total)
        return run_all(
            setup, policies, seeds, workers=workers, progress=lambda done: progress.advance(task, done)
        )
