"""The one conversion from registered devices to usage: :func:`device_usage`, and its check, :func:`overbooked`.

The cache builds every node's view with it from what pods hold there, and the dry-run path builds its
transient, unused node views with it too, so both see devices the same way. Bind checks with
:func:`overbooked` that an allocation no filter of this process placed fits beside the others. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence

from hami_core.allocation import DeviceBooking
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceUsage


def device_usage(
    infos: Sequence[DeviceInfo], backend: str, held: Iterable[Sequence[DeviceBooking]] = ()
) -> tuple[DeviceUsage, ...]:
    """``infos`` (one backend's registered devices) with the slots, memory and cores ``held`` books.

    Args:
        infos: the devices as registered, in registration order.
        backend: the backend's name (the vendor of devices that name none).
        held: per pod on the node, its bookings on this backend's devices.
    """
    sums: dict[str, list[int]] = {}
    for bookings in held:
        for booking in bookings:
            entry = sums.setdefault(booking.device.uuid, [0, 0, 0])
            entry[0] += max(booking.slots, 1)
            entry[1] += booking.device.usedmem
            entry[2] += booking.device.usedcores
    usage = []
    for info in infos:
        used, mem, cores = sums.get(info.id, (0, 0, 0))
        usage.append(
            DeviceUsage(
                id=info.id,
                index=info.index,
                count=info.count,
                used=used,
                totalmem=info.devmem,
                usedmem=mem,
                totalcore=info.devcore,
                usedcores=cores,
                type=info.type,
                numa=info.numa,
                mode=info.mode,
                health=info.health,
                mig_profiles=info.mig_profiles,
                custom_info=info.custom_info,
                device_vendor=info.device_vendor or backend,
            )
        )
    return tuple(usage)


def overbooked(
    infos: Sequence[DeviceInfo],
    backend: str,
    others: Iterable[Sequence[DeviceBooking]],
    own: Sequence[DeviceBooking],
) -> str:
    """Why ``own`` does not fit ``infos`` beside ``others``; "" when it does.

    Each device ``own`` books must be registered and healthy; with ``others`` no device may pass its
    slots, memory or cores, and a pod booking all of a device's cores holds it alone (HAMi's
    exclusive use).
    """
    known = {info.id: info for info in infos}
    for booking in own:
        info = known.get(booking.device.uuid)
        if info is None or not info.health:
            return f"device {booking.device.uuid} is not a healthy registered device"
    held = [*others, own]
    wanted = {booking.device.uuid for booking in own}
    exclusive = {
        booking.device.uuid
        for bookings in held
        for booking in bookings
        if booking.device.uuid in wanted
        and booking.device.usedcores >= known[booking.device.uuid].devcore > 0
    }
    for device in device_usage(infos, backend, held):
        if device.id not in wanted:
            continue
        if (
            device.used > device.count
            or device.usedmem > device.totalmem
            or device.usedcores > device.totalcore
        ):
            return (
                f"device {device.id} would hold {device.used}/{device.count} slots, "
                f"{device.usedmem}/{device.totalmem} MiB, {device.usedcores}/{device.totalcore} cores"
            )
        if device.id in exclusive and device.used > 1:
            return f"device {device.id} would be shared with a pod that booked all its cores"
    return ""
