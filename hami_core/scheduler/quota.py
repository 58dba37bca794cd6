"""Namespace ResourceQuota limits on device memory and cores, and what a pod uses of them.

HAMi tracks ``ResourceQuota.spec.hard`` keys ``limits.<memory resource>`` and ``limits.<cores
resource>`` of every backend (``specs/hami-wire.md`` 3.10) and checks, per device tried, that the
namespace's use plus the pod's would stay within them. HAMi counts a multi-device request once
(issues #893, #1393); here a pod's use is the sum over every device it holds of the memory and cores
booked there, init containers max'ed and app containers added (:func:`pod_usage`), so a pod asking
2 devices x 4096 MiB uses 8192 MiB of the namespace's quota. Memory limits are in the resource's
unit and are multiplied by the backend's memory factor (MiB booked per unit). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core.allocation import DeviceBooking
from hami_core.backend import DeviceBackend
from hami_core.errors import BackendError
from hami_core.kube.objects import ResourceQuota
from hami_core.quantity import parse_quantity

_LIMITS_PREFIX = "limits."


@attrs.frozen
class Usage:
    """Device memory (MiB) and cores (percent units) summed over devices."""

    memory: int = 0
    cores: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.memory + other.memory, self.cores + other.cores)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.memory - other.memory, self.cores - other.cores)


@attrs.frozen
class ResourceLimit:
    """The tightest limits of one backend in one namespace; ``None`` where no quota sets one."""

    memory: int | None = None
    cores: int | None = None

    def admits(self, used: Usage, extra: Usage) -> bool:
        """Whether ``used + extra`` stays within the limits (HAMi's ``used + request > limit`` test)."""
        if self.memory is not None and extra.memory > 0 and used.memory + extra.memory > self.memory:
            return False
        return not (self.cores is not None and extra.cores > 0 and used.cores + extra.cores > self.cores)


@attrs.frozen
class QuotaEntry:
    """One tracked ``limits.<resource>`` of one ResourceQuota, as the metrics report it."""

    namespace: str
    quota: str
    backend: str
    resource: str
    kind: str
    limit: int


@attrs.frozen
class QuotaLimits:
    """Every tracked quota limit: per namespace and backend the tightest, plus each entry."""

    by_namespace: Mapping[str, Mapping[str, ResourceLimit]] = attrs.field(factory=dict, hash=False)
    entries: tuple[QuotaEntry, ...] = ()

    def limit(self, namespace: str, backend: str) -> ResourceLimit | None:
        return self.by_namespace.get(namespace, {}).get(backend)

    def any_in(self, namespace: str) -> bool:
        return namespace in self.by_namespace


def _limit_value(raw: object, factor: int) -> int | None:
    try:
        value = parse_quantity(raw)
    except BackendError:
        return None
    return max(0, math.floor(value)) * factor


def limits_from_quotas(quotas: Iterable[ResourceQuota], backends: Sequence[DeviceBackend]) -> QuotaLimits:
    """The limits the given ResourceQuotas set on the backends' memory and cores resources.

    Unreadable quantities are ignored (the API server validates them, so none should occur).
    """
    resources: dict[str, tuple[DeviceBackend, str]] = {}
    for backend in backends:
        names = backend.resource_names
        if names.memory:
            resources[_LIMITS_PREFIX + names.memory] = (backend, "memory")
        if names.cores:
            resources[_LIMITS_PREFIX + names.cores] = (backend, "cores")
    entries: list[QuotaEntry] = []
    tightest: dict[str, dict[str, dict[str, int]]] = {}
    for quota in quotas:
        metadata = quota.get("metadata") or {}
        namespace = metadata.get("namespace", "")
        hard = (quota.get("spec") or {}).get("hard") or {}
        for key, raw in sorted(hard.items()):
            found = resources.get(key)
            if found is None:
                continue
            backend, kind = found
            factor = backend.request_rules.memory_factor if kind == "memory" else 1
            value = _limit_value(raw, factor)
            if value is None:
                continue
            entries.append(QuotaEntry(namespace, metadata.get("name", ""), backend.name, key, kind, value))
            kinds = tightest.setdefault(namespace, {}).setdefault(backend.name, {})
            kinds[kind] = min(value, kinds.get(kind, value))
    by_namespace = {
        namespace: {
            backend: ResourceLimit(memory=kinds.get("memory"), cores=kinds.get("cores"))
            for backend, kinds in per_backend.items()
        }
        for namespace, per_backend in tightest.items()
    }
    return QuotaLimits(by_namespace=by_namespace, entries=tuple(entries))


def booking_usage(bookings: Iterable[DeviceBooking]) -> Usage:
    """The memory and cores of one backend's bookings, summed over devices."""
    memory = cores = 0
    for booking in bookings:
        memory += booking.device.usedmem
        cores += booking.device.usedcores
    return Usage(memory, cores)


def pod_usage(bookings: Mapping[str, Sequence[DeviceBooking]]) -> dict[str, Usage]:
    """A pod's use of each backend's quota: every device of every container counts."""
    return {backend: booking_usage(items) for backend, items in bookings.items()}
