"""GPU pair scores from P2P and NVLink facts (``specs/hami-wire.md`` 1.4.6); pure, no NVML.

HAMi scores each pair of GPUs by the best PCIe path between them (NVML's common-ancestor level:
same board 60, single switch 50, multiple switches 40, host bridge 30, same CPU 20, across CPUs 10)
plus 100 per NVLink joining them. Link data that disagrees between the two ends scores the pair 0,
as HAMi does, and is reported so the plugin can warn (HAMi's ``AsymmetricGPUP2PLink`` event).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

import attrs

#: NVML ``nvmlGpuTopologyLevel_t`` value to HAMi's P2P link score.
P2P_SCORES = {0: 60, 10: 50, 20: 40, 30: 30, 40: 20, 50: 10}
#: Score of each NVLink between two GPUs.
NVLINK_SCORE = 100


@attrs.frozen
class PairScores:
    """Per GPU UUID, the score to each other GPU; and the pairs whose link data disagreed."""

    scores: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict, hash=False)
    asymmetric: tuple[tuple[str, str], ...] = ()


def pair_scores(
    uuids: Sequence[str], levels: Sequence[Sequence[int]], nvlinks: Sequence[Sequence[int]]
) -> PairScores:
    """Score every ordered pair of GPUs.

    Args:
        uuids: the GPUs, in the order of the matrices.
        levels: ``levels[i][j]``, NVML's topology common-ancestor level from GPU i to GPU j.
        nvlinks: ``nvlinks[i][j]``, how many active NVLinks of GPU i reach GPU j.

    Returns:
        The scores (no self entries) and the asymmetric pairs, each once as (lower, higher) index.
    """
    scores: dict[str, dict[str, int]] = {uuid: {} for uuid in uuids}
    asymmetric = []
    for i, first in enumerate(uuids):
        for j, second in enumerate(uuids):
            if i == j:
                continue
            if nvlinks[i][j] != nvlinks[j][i] or levels[i][j] != levels[j][i]:
                scores[first][second] = 0
                if i < j:
                    asymmetric.append((first, second))
                continue
            scores[first][second] = P2P_SCORES.get(levels[i][j], 0) + NVLINK_SCORE * nvlinks[i][j]
    return PairScores(scores=scores, asymmetric=tuple(asymmetric))
