"""Removing the region directories of containers whose pod no longer exists, after a grace period.

A pod can be missing from one listing (a kubelet restart, a slow API server), so a directory goes
only after its pod has been absent from every listing for ``grace`` seconds. Pure bookkeeping;
the caller removes what :meth:`Reaper.due` returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class Reaper:
    """Remembers since when each orphan directory's pod has been missing."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._missing_since: dict[Path, float] = {}

    def due(self, orphans: Iterable[Path], now: float) -> list[Path]:
        """The directories among ``orphans`` (pod not listed now) missing for ``grace`` seconds.

        Directories not passed in again (their pod came back, or they are gone) are forgotten.
        """
        current = set(orphans)
        self._missing_since = {path: self._missing_since.get(path, now) for path in current}
        return sorted(path for path, since in self._missing_since.items() if now - since >= self.grace)

    def forget(self, path: Path) -> None:
        self._missing_since.pop(path, None)
