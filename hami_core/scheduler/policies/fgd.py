"""FGD, fragmentation gradient descent (ATC '23).

FGD sends a pod where the workload's expected fragment ``F_n(M)`` changes most favourably, scoring
``int(100 * sigmoid((F_before - F_after) / 1000))``; a shared pod tries every device with room and
keeps the first best. The integer truncation lumps changes within about 40 milli-devices into ties,
which go to the node order, i.e. at random; the simulator's measurements (``docs/simulate.md``)
show that this coarseness matters: scoring the change exactly does worse.
"""

from __future__ import annotations

from collections.abc import Sequence

from hami_core.devices import DeviceUsage
from hami_core.placement import NodeState
from hami_core.placement import PodShape
from hami_core.placement import tightest_last
from hami_core.scheduler.policies.baselines import device_choice
from hami_core.scheduler.policies.fragmentation import RecentWorkload
from hami_core.scheduler.policies.fragmentation import Workload
from hami_core.scheduler.policies.fragmentation import sigmoid_score


class Fgd:
    """FGD as published: the integer sigmoid of the fragment's decrease.

    Args:
        workload: the target workload M; ``None`` learns it from the pods scored (the extender).
    """

    deterministic = True

    def __init__(self, workload: Workload | None = None) -> None:
        self._fixed = workload
        self._recent = RecentWorkload()

    def revision(self, pod: PodShape) -> int:
        """The online workload's revision after recording ``pod`` (0 with a fixed workload)."""
        if self._fixed is not None:
            return 0
        self._recent.see(pod)
        return self._recent.revision

    @property
    def workload(self) -> Workload:
        """M: the fixed workload, or the learned one as of the last :meth:`revision`.

        A ranking kept under an older revision is never read again, so a publication between a
        filter's :meth:`revision` and its scores costs nothing but that filter's consistency.
        """
        return self._fixed if self._fixed is not None else self._recent.current

    def score(self, before: NodeState, pod: PodShape, after: NodeState) -> float:
        workload = self.workload
        return sigmoid_score(workload.node_fragment(before), workload.node_fragment(after))

    def order(self, node: NodeState, pod: PodShape) -> Sequence[DeviceUsage]:
        """Whole devices lowest index first; a share on the first device whose use scores best."""
        if not (pod.gpus == 1 and pod.milli < 1000):
            return tightest_last(node.devices)
        position = self.workload.best_share(
            node.cpu_left, node.cpu_after(pod.cpu), node.frees(), node.model, pod.milli
        )
        if position is None:
            return tightest_last(node.devices)
        return device_choice(node.devices, position)
