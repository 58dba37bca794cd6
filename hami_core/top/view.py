"""The sharing view as rows: per node and device, what each pod booked (annotations) and uses
(monitor metrics). Pure; sorting and the namespace filter happen here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import Literal

import attrs

from hami_core.localcluster.sharing import DeviceSharing
from hami_core.localcluster.sharing import SharingReport
from hami_core.top.usage import UsageReport
from hami_core.top.usage import Used

SortKey = Literal["node", "memory", "cores", "used"]
SORT_KEYS: tuple[SortKey, ...] = ("node", "memory", "cores", "used")


@attrs.frozen
class PodRow:
    pod: str
    memory_mib: int
    cores: int
    used: Used | None


@attrs.frozen
class DeviceRow:
    device: DeviceSharing
    used: Used | None
    pods: tuple[PodRow, ...]


@attrs.frozen
class TopView:
    devices: tuple[DeviceRow, ...]
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        def used(value: Used | None) -> dict[str, int] | None:
            return (
                None if value is None else {"memory_mib": value.memory_mib, "utilization": value.utilization}
            )

        return {
            "devices": [
                {
                    "node": row.device.node,
                    "uuid": row.device.uuid,
                    "type": row.device.type,
                    "healthy": row.device.healthy,
                    "memory_mib": row.device.memory_mib,
                    "memory_booked_mib": row.device.memory_used_mib,
                    "cores": row.device.cores,
                    "cores_booked": row.device.cores_used,
                    "slots": row.device.slots,
                    "slots_used": row.device.slots_used,
                    "used": used(row.used),
                    "pods": [
                        {
                            "pod": pod.pod,
                            "memory_mib": pod.memory_mib,
                            "cores": pod.cores,
                            "used": used(pod.used),
                        }
                        for pod in row.pods
                    ],
                }
                for row in self.devices
            ],
            "problems": list(self.problems),
        }


def _used_mib(used: Used | None) -> int:
    return -1 if used is None else used.memory_mib


def build_view(
    report: SharingReport,
    usage: UsageReport | None = None,
    *,
    namespace: str | None = None,
    sort: SortKey = "node",
) -> TopView:
    """Rows for every device in ``report``; with ``namespace``, only devices holding its pods and
    only those pods. ``sort`` orders devices (and pods within them): by node and index, or by
    booked memory, booked cores or used memory, largest first."""
    usage = usage or UsageReport()
    rows = []
    for device in report.devices:
        pods = tuple(
            PodRow(booking.pod, booking.memory_mib, booking.cores, usage.pod(booking.pod, device.uuid))
            for booking in device.bookings
            if namespace is None or booking.pod.split("/", 1)[0] == namespace
        )
        if namespace is not None and not pods:
            continue
        rows.append(DeviceRow(device, usage.device(device.uuid), pods))
    if sort != "node":
        device_key = {
            "memory": lambda r: r.device.memory_used_mib,
            "cores": lambda r: r.device.cores_used,
            "used": lambda r: _used_mib(r.used),
        }[sort]
        pod_key = {
            "memory": lambda p: p.memory_mib,
            "cores": lambda p: p.cores,
            "used": lambda p: _used_mib(p.used),
        }[sort]
        rows = [
            attrs.evolve(row, pods=tuple(sorted(row.pods, key=pod_key, reverse=True)))
            for row in sorted(rows, key=device_key, reverse=True)
        ]
    return TopView(tuple(rows), (*report.problems, *usage.errors))


def device_rows(devices: Sequence[DeviceSharing]) -> TopView:
    """The view of ``devices`` without usage, as the demo shows them."""
    return build_view(SharingReport(pods=(), devices=tuple(devices)))
