"""Priority coordination across containers sharing a device (DESIGN 8, HAMi's feedback loop).

Pure: takes each container's region fields and returns the writes to make. The handshake is
HAMi-core's: every launch leaves ``recent_kernel = 2``; each tick the monitor counts a container
down by one, so a container still above zero after the count-down launched within the last tick.
While a more important container (lower ``priority`` number) is active on a device, every less
important container on that device gets ``recent_kernel = -1`` and its launches wait; once the
important one has been idle for a tick they get ``0`` and resume. ``utilization_switch`` is set
to 1 while a more important container is active and 0 otherwise, as HAMi's monitor does (HAMi-core
limits compute only with the switch on; this project's shim limits regardless).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs


@attrs.frozen
class PriorityState:
    """One container's coordination fields, read from its region."""

    key: str
    devices: tuple[str, ...]
    priority: int
    recent_kernel: int
    utilization_switch: int


@attrs.frozen
class PriorityWrite:
    """New values for one container's region (``None``: leave it)."""

    key: str
    recent_kernel: int | None = None
    utilization_switch: int | None = None


def plan(states: Sequence[PriorityState]) -> list[PriorityWrite]:
    """The writes of one coordination tick over every container on the node."""
    active: dict[str, set[int]] = {}
    recent = {}
    for state in states:
        value = state.recent_kernel
        if value > 0:
            value -= 1
            if value > 0:
                for device in state.devices:
                    active.setdefault(device, set()).add(state.priority)
        recent[state.key] = value
    writes = []
    for state in states:
        outranked = any(
            other < state.priority for device in state.devices for other in active.get(device, ())
        )
        value = recent[state.key]
        if outranked and value >= 0:
            value = -1
        elif not outranked and value < 0:
            value = 0
        switch = 1 if outranked else 0
        write = PriorityWrite(
            key=state.key,
            recent_kernel=value if value != state.recent_kernel else None,
            utilization_switch=switch if switch != state.utilization_switch else None,
        )
        if write.recent_kernel is not None or write.utilization_switch is not None:
            writes.append(write)
    return writes
