"""Sanity bounds on registered devices: a value no real device has is rejected, that device only.

HAMi believes whatever a register annotation says, so a negative memory limit reaches the metrics
and a device with absurd capacity attracts every pod. The bounds are far beyond any real device
(see ``docs/compatibility.md``):

- ``devmem``: 1 to :data:`MAX_MEMORY_MIB` MiB (1 TiB);
- ``devcore``: 0 to :data:`MAX_CORES` (100 per card times a core scaling of up to 100);
- ``count`` (slots a device is split into): 1 to :data:`MAX_SPLIT`;
- at most :data:`MAX_DEVICES` devices per backend per node (the first ones are kept).

Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from hami_core.devices import DeviceInfo

#: The most memory (MiB) one registered device may claim.
MAX_MEMORY_MIB = 1 << 20
#: The most cores one registered device may claim (100 x a core scaling of 100).
MAX_CORES = 10_000
#: The most slots one device may be split into.
MAX_SPLIT = 1024
#: The most devices of one backend a node may register.
MAX_DEVICES = 128


def out_of_bounds(device: DeviceInfo) -> str:
    """Why ``device``'s registered values are not sane; "" when they are."""
    if not 0 < device.devmem <= MAX_MEMORY_MIB:
        return f"devmem {device.devmem} is outside 1..{MAX_MEMORY_MIB} MiB"
    if not 0 <= device.devcore <= MAX_CORES:
        return f"devcore {device.devcore} is outside 0..{MAX_CORES}"
    if not 0 < device.count <= MAX_SPLIT:
        return f"count {device.count} is outside 1..{MAX_SPLIT}"
    return ""


def within_bounds(devices: Sequence[DeviceInfo]) -> tuple[tuple[DeviceInfo, ...], tuple[str, ...]]:
    """The sane devices of one registration, and why each other one is rejected.

    Returns:
        The kept devices in registration order, and one message per rejected device.
    """
    kept: list[DeviceInfo] = []
    rejected: list[str] = []
    for device in devices:
        why = out_of_bounds(device)
        if why:
            rejected.append(f"device {device.id[:64]!r}: {why}")
        elif len(kept) >= MAX_DEVICES:
            rejected.append(f"device {device.id[:64]!r}: more than {MAX_DEVICES} devices on one node")
        else:
            kept.append(device)
    return tuple(kept), tuple(rejected)
