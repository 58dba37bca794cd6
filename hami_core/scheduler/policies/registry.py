"""The core plugin that contributes the placement policies through ``hami_scoring_policies``."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hami_core.devices import DeviceUsage
from hami_core.hookspecs import ScoringPolicy
from hami_core.hookspecs import hookimpl
from hami_core.placement import Placement
from hami_core.scheduler.policies import baselines
from hami_core.scheduler.policies import fgd
from hami_core.scheduler.policies import stranding
from hami_core.scheduler.policies.fragmentation import Workload

RANDOM = "random"
DOTPROD = "dotprod"
GPU_CLUSTERING = "gpu-clustering"
GPU_PACKING = "gpu-packing"
BESTFIT = "bestfit"
FGD = "fgd"
FGD_STRAND = "fgd-strand"


def unranked(devices: Sequence[DeviceUsage]) -> float:
    """The usage-only score of a placement policy: none (its score needs the pod)."""
    return 0.0


class PlacementPolicies:
    """Contributes ``random``, ``dotprod``, ``gpu-clustering``, ``gpu-packing``, ``bestfit``, ``fgd`` and ``fgd-strand``.

    Args:
        workload: FGD's target workload M; ``None`` learns it from the pods scored (the extender).
        seed: seeds ``random``'s choices (the simulator); ``None`` for system randomness.
    """

    def __init__(self, workload: Workload | None = None, seed: int | None = None) -> None:
        self._workload = workload
        self._seed = seed

    def placements(self) -> dict[str, Placement]:
        """A fresh placement object per policy name."""
        return {
            RANDOM: baselines.RandomPlacement(random.Random(self._seed)),
            DOTPROD: baselines.DotProduct(),
            GPU_CLUSTERING: baselines.GpuClustering(),
            GPU_PACKING: baselines.GpuPacking(),
            BESTFIT: baselines.BestFit(),
            FGD: fgd.Fgd(self._workload),
            FGD_STRAND: stranding.FgdStrand(self._workload),
        }

    @hookimpl
    def hami_scoring_policies(self) -> list[ScoringPolicy]:
        """The pod-aware node policies, each a ``node`` policy with a :class:`Placement`."""
        return [
            ScoringPolicy(name=name, kind="node", score=unranked, placement=placement)
            for name, placement in self.placements().items()
        ]
