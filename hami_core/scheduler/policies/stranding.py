"""``fgd-strand``: FGD that also keeps a node's CPU from running out before its GPUs.

FGD (:mod:`~hami_core.scheduler.policies.fgd`) asks, for one pod of each kind, whether it could still
run on the node. It does not see that a node whose CPU is nearly gone will leave its idle GPUs
unused however well they are shaped, and on the Alibaba trace that is where most of the avoidable
idle GPU FGD leaves sits (``docs/simulate.md``). ``fgd-strand`` counts that capacity, the *stranded*
GPU ``S_n = max(0, idle_n - cpu_left_n / rho)``, where ``rho`` is the workload's CPU per
milli-device (its device pods' CPU over their device demand): the idle devices that the node's free
CPU cannot feed at the workload's usual ratio.

On a node whose model no model-bound pod of the workload names, stranded GPU counts as fragment:
the score is FGD's on ``F_n(M) + S_n``. On a node of a model that some pods can only run on, FGD's
own score decides and stranding only breaks its ties (its ~40-milli buckets), growth alone counting:
weighing stranding fully there sends CPU-light or CPU-heavy pods that could run anywhere onto the
scarce model's nodes, and the pods bound to that model then find no room (measured on the trace's
``gpuspec`` variants). Equal values go to the caller's node order, as FGD's ties do. The cost over
FGD is one sum of the node's free shares per score.
"""

from __future__ import annotations

from collections.abc import Sequence

from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.scheduler.policies.fgd import Fgd
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.scheduler.policies.fragmentation import sigmoid_score


def stranded(workload: Workload, cpu_left: int | None, frees: Sequence[int]) -> float:
    """Idle milli-devices the node's free CPU cannot feed at the workload's CPU per device (0 if unknown)."""
    ratio = workload.cpu_per_milli
    if cpu_left is None or ratio <= 0:
        return 0.0
    return max(0.0, sum(frees) - cpu_left / ratio)


def tie_break(growth: float) -> float:
    """A value in (0, 1] that falls as stranded GPU grows (whole milli-devices, so equal growth ties)."""
    return 1000.0 / (1000.0 + max(0, round(growth)))


class FgdStrand(Fgd):
    """FGD with stranded GPU counted as fragment, or only breaking ties on contested models' nodes.

    Args:
        workload: the target workload M; ``None`` learns it from the pods scored (the extender).
    """

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        workload = self.workload
        fragment_before = workload.node_fragment(before)
        fragment_after = workload.node_fragment(after)
        stranded_before = stranded(workload, before.cpu_left, before.frees())
        stranded_after = stranded(workload, after.cpu_left, after.frees())
        if before.model in workload.bound_models:
            return sigmoid_score(fragment_before, fragment_after) + tie_break(
                stranded_after - stranded_before
            )
        return sigmoid_score(fragment_before + stranded_before, fragment_after + stranded_after) + 1.0
