"""The node's devices as the kubelet sees them: split replicas with health, and their change feed.

HAMi advertises every physical device ``count`` times (its split count) so that the kubelet's
integer accounting matches the scheduler's: replica ``i`` of device ``<id>`` has the kubelet device
ID ``<id>-<i>`` (``specs/hami-wire.md`` 5.2). :class:`DeviceState` holds the devices discovered at
start, applies health reports, and wakes every ``ListAndWatch`` stream when the list changes. It
does no I/O and calls no backend: the app feeds it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core.devices import DeviceInfo

#: The kubelet refuses device IDs longer than this (``Device.ID``, a DNS label's length).
MAX_DEVICE_ID_LENGTH = 63


@attrs.frozen
class VirtualDevice:
    """One kubelet device: a replica of a physical device.

    Args:
        id: the kubelet device ID, ``<physical id>-<replica>``.
        physical_id: the device it is a replica of.
        healthy: whether the kubelet may hand it out.
    """

    id: str
    physical_id: str
    healthy: bool


def replica_ids(device: DeviceInfo) -> list[str]:
    """The kubelet device IDs of ``device``: ``<id>-0`` ... ``<id>-<count-1>``."""
    return [f"{device.id}-{replica}" for replica in range(device.count)]


def ordered(devices: Sequence[DeviceInfo]) -> tuple[DeviceInfo, ...]:
    """``devices`` by index, then id: the stable order of the register annotation and ListAndWatch."""
    return tuple(sorted(devices, key=lambda device: (device.index, device.id)))


class DeviceState:
    """The node's devices with their current health; thread-safe.

    Args:
        devices: the devices the backend discovered; their ``health`` is the starting health.

    Raises:
        ValueError: two devices share an id, or a replica ID is too long for the kubelet.
    """

    def __init__(self, devices: Sequence[DeviceInfo]) -> None:
        self._devices = ordered(devices)
        ids = [device.id for device in self._devices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"device ids must be unique, got {ids}")
        self._physical: dict[str, str] = {}
        for device in self._devices:
            for replica in replica_ids(device):
                if len(replica) > MAX_DEVICE_ID_LENGTH:
                    raise ValueError(
                        f"kubelet device ID {replica!r} is longer than {MAX_DEVICE_ID_LENGTH} characters"
                    )
                self._physical[replica] = device.id
        self._health = {device.id: device.health for device in self._devices}
        self._version = 0
        self._closed = False
        self._changed = threading.Condition()

    @property
    def devices(self) -> tuple[DeviceInfo, ...]:
        """The devices in stable order, each with its current health."""
        with self._changed:
            return tuple(attrs.evolve(device, health=self._health[device.id]) for device in self._devices)

    def physical_id(self, replica_id: str) -> str | None:
        """The physical device behind kubelet device ID ``replica_id``; ``None`` if not this node's."""
        return self._physical.get(replica_id)

    def replicas(self) -> tuple[int, tuple[VirtualDevice, ...]]:
        """The current version and the kubelet device list (every replica of every device)."""
        with self._changed:
            return self._version, self._replicas()

    def _replicas(self) -> tuple[VirtualDevice, ...]:
        return tuple(
            VirtualDevice(replica, device.id, self._health[device.id])
            for device in self._devices
            for replica in replica_ids(device)
        )

    def set_health(self, health: Mapping[str, bool]) -> bool:
        """Apply a health report (device id to healthy); ids not reported keep their health.

        Returns:
            Whether any device changed, in which case every waiting stream wakes up.
        """
        with self._changed:
            changed = False
            for device_id, healthy in health.items():
                if device_id in self._health and self._health[device_id] != healthy:
                    self._health[device_id] = healthy
                    changed = True
            if changed:
                self._version += 1
                self._changed.notify_all()
            return changed

    def wait_for_change(self, version: int, timeout: float) -> tuple[int, tuple[VirtualDevice, ...]] | None:
        """Block until the list differs from ``version``, the state closes, :meth:`wake` is called
        or ``timeout`` passes.

        Returns:
            The new version and list; ``None`` when nothing changed or once closed.
        """
        with self._changed:
            if not self._closed and self._version == version:
                self._changed.wait(timeout)  # one wait: :meth:`wake` must make the caller look again
            if self._closed or self._version == version:
                return None
            return self._version, self._replicas()

    def wake(self) -> None:
        """Wake every waiting stream so it can check whether its call is still alive."""
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        """End every stream: waits return ``None`` from now on."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed
