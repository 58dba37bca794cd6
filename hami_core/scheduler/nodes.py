"""Node inventory and health: what each node registered, per backend, and whether it counts now.

:class:`NodeInventory` holds, per node, the annotations and allocatable counts the watch last showed,
the devices each enabled backend decoded from its register annotation, and the v2.10 handshake rule's
verdict per backend (``specs/hami-wire.md`` 3.9):

- **Devices** come from each enabled backend's register annotation on nodes matching the configured
  label selector; an unreadable value keeps the last good one and raises a warning once; a device
  outside :mod:`~hami_core.scheduler.register_bounds` is left out (the rest register) with a warning.
- **Health** per node and backend: a node whose kubelet reports an allocatable count of 0 for the
  backend's resource is unhealthy at once, whatever its handshake says: its device plugin is gone, and a pod sent there would fail admission (``UnexpectedAdmissionError``); it is
  healthy again as soon as the count is back. Otherwise the handshake decides: any value other than
  ``Requesting_<time>`` asks for a fresh ``Requesting_<now>`` (written by the leader) and counts as
  healthy; a ``Requesting`` older than 60 s is healthy only while the allocatable count is above
  zero. Unlike HAMi the scheduler does not delete the handshake of an unhealthy node, which would
  hand the node a fresh 60 s of life every cleanup cycle.

Not thread-safe: :class:`~hami_core.scheduler.cache.ClusterCache` calls it under its lock. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

import attrs

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.devices import DeviceInfo
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.kube.objects import Node
from hami_core.quantity import parse_quantity
from hami_core.scheduler import register_bounds
from hami_core.scheduler.changes import CacheWarning

#: The Warning event of a node whose registration lists devices outside the sanity bounds.
DEVICES_REJECTED = "DeviceRegistrationRejected"
#: Rejected devices named in one event.
_SHOWN = 5

#: How long a ``Requesting_<time>`` handshake proves a node alive on its own (HAMi's 60 s rule).
HANDSHAKE_GRACE_SECONDS = 60.0


@attrs.frozen
class HandshakeVerdict:
    """The handshake rule's answer for one node and backend."""

    healthy: bool
    request: bool = False


def assess_handshake(
    value: str | None, allocatable: int, now: datetime, grace: float = HANDSHAKE_GRACE_SECONDS
) -> HandshakeVerdict:
    """HAMi v2.10's ``CheckHealth`` on one handshake value, without its cleanup flapping.

    Args:
        value: the handshake annotation, ``None`` when absent.
        allocatable: the node's allocatable count of the backend's count resource.
        now: the current time (aware).
        grace: seconds a ``Requesting_`` value keeps the node healthy on its own.
    """
    handshake = codec.parse_handshake(value, tz=now.tzinfo)
    if handshake.state != "Requesting":
        return HandshakeVerdict(healthy=True, request=True)
    if handshake.time is None or handshake.time + timedelta(seconds=grace) > now:
        return HandshakeVerdict(healthy=True)
    return HandshakeVerdict(healthy=allocatable > 0)


@attrs.define
class NodeEntry:
    """One node as the inventory keeps it."""

    name: str
    resource_version: str = ""
    annotations: dict[str, str] = attrs.field(factory=dict)
    allocatable: dict[str, str] = attrs.field(factory=dict)
    capacity: dict[str, str] = attrs.field(factory=dict)
    selected: bool = True
    infos: dict[str, tuple[DeviceInfo, ...]] = attrs.field(factory=dict)
    registered: dict[str, str] = attrs.field(factory=dict)
    warned: dict[str, str] = attrs.field(factory=dict)
    healthy: dict[str, bool] = attrs.field(factory=dict)
    peak_allocatable: dict[str, int] = attrs.field(factory=dict)
    built: tuple[object, ...] | None = None

    def signature(self, backends: Sequence[DeviceBackend]) -> tuple[object, ...]:
        """What the node's devices are built from: selection, and each healthy backend's devices."""
        return (
            self.selected,
            tuple((b.name, self.infos.get(b.name)) for b in backends if self.healthy.get(b.name)),
        )

    def counted(self, backends: Sequence[DeviceBackend]) -> Iterator[tuple[str, tuple[DeviceInfo, ...]]]:
        """(backend, devices) of every backend whose devices count now (selected node, healthy)."""
        if not self.selected:
            return
        for backend in backends:
            if self.healthy.get(backend.name):
                yield backend.name, self.infos.get(backend.name, ())


@attrs.frozen
class NodeUpdate:
    """What one node event changed.

    Args:
        fresh: the node is new to the inventory.
        lock_changed: its ``hami.io/mutex.lock`` changed.
        devices_changed: anything its view is built from changed (annotations besides the lock,
            selection, devices or health).
        handshakes: (node, backend) pairs that need a ``Requesting_<now>`` handshake.
        warnings: registrations that cannot be read.
    """

    fresh: bool
    lock_changed: bool
    devices_changed: bool
    handshakes: tuple[tuple[str, str], ...] = ()
    warnings: tuple[CacheWarning, ...] = ()


def _matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _count(raw: object) -> int:
    if raw is None:
        return 0
    try:
        return max(0, int(parse_quantity(raw)))
    except BackendError:
        return 0


class NodeInventory:
    """Registered devices and health of every watched node.

    Args:
        backends: the loaded backends (their register and handshake keys and count resources).
        node_selector: only nodes with all these labels count (HAMi's ``--node-label-selector``).
        handshake_grace: seconds a fresh ``Requesting_`` handshake proves a node alive.
    """

    def __init__(
        self,
        backends: Sequence[DeviceBackend],
        *,
        node_selector: Mapping[str, str] | None = None,
        handshake_grace: float = HANDSHAKE_GRACE_SECONDS,
    ) -> None:
        self._backends = tuple(backends)
        self._selector = dict(node_selector or {})
        self._grace = handshake_grace
        self.entries: dict[str, NodeEntry] = {}

    def get(self, name: str) -> NodeEntry | None:
        return self.entries.get(name)

    def delete(self, name: str) -> bool:
        """Forget node ``name``; whether it was known."""
        return self.entries.pop(name, None) is not None

    def update(self, name: str, node: Node, now: datetime) -> NodeUpdate:
        """Take in one node object as the watch shows it at ``now``."""
        metadata = node.get("metadata") or {}
        annotations = dict(metadata.get("annotations") or {})
        entry = self.entries.get(name)
        fresh = entry is None
        if entry is None:
            entry = self.entries[name] = NodeEntry(name)
        old_annotations = entry.annotations
        entry.resource_version = str(metadata.get("resourceVersion", ""))
        entry.annotations = annotations
        entry.allocatable = dict((node.get("status") or {}).get("allocatable") or {})
        entry.capacity = dict((node.get("status") or {}).get("capacity") or {})
        entry.selected = _matches(metadata.get("labels") or {}, self._selector)
        warnings = self._decode_devices(entry)
        handshakes = self._assess(entry, now)
        lock_changed = old_annotations.get(codec.NODE_LOCK) != annotations.get(codec.NODE_LOCK)
        relevant_before = {k: v for k, v in old_annotations.items() if k != codec.NODE_LOCK}
        relevant_after = {k: v for k, v in annotations.items() if k != codec.NODE_LOCK}
        changed = fresh or relevant_before != relevant_after or self.stale(entry)
        return NodeUpdate(fresh, lock_changed, changed, handshakes, warnings)

    def stale(self, entry: NodeEntry) -> bool:
        """Whether the node's view was built from other devices or health than it has now."""
        return entry.built != entry.signature(self._backends)

    def mark_built(self, entry: NodeEntry) -> bool:
        """Record that the node's view is built from its current devices; whether they changed."""
        signature = entry.signature(self._backends)
        if signature == entry.built:
            return False
        entry.built = signature
        return True

    def assess(self, now: datetime) -> Iterator[tuple[NodeEntry, tuple[tuple[str, str], ...]]]:
        """Re-apply the handshake rule to every node at ``now``: (node, handshakes due) each."""
        for entry in self.entries.values():
            yield entry, self._assess(entry, now)

    def _decode_devices(self, entry: NodeEntry) -> tuple[CacheWarning, ...]:
        warnings = []
        for backend in self._backends:
            value = entry.annotations.get(backend.keys.register)
            if value is None:
                entry.registered.pop(backend.name, None)
                try:
                    derived = tuple(backend.capacity_devices(entry.name, entry.capacity))
                except BackendError:
                    derived = ()
                if derived:
                    entry.infos[backend.name] = derived
                else:
                    entry.infos.pop(backend.name, None)
                continue
            if entry.registered.get(backend.name) == value:
                continue
            entry.registered[backend.name] = value
            try:
                kept, rejected = register_bounds.within_bounds(backend.node_devices(entry.annotations))
            except CodecError as err:
                # HAMi keeps the last good device list when a registration does not decode.
                if entry.warned.get(backend.name) != value:
                    entry.warned[backend.name] = value
                    warnings.append(
                        CacheWarning(
                            kind="Node",
                            name=entry.name,
                            reason="InvalidDeviceRegistration",
                            message=f"{backend.keys.register} cannot be read, keeping the last good device list: {err}",
                        )
                    )
            except BackendError:
                entry.infos.pop(backend.name, None)
            else:
                if kept:
                    entry.infos[backend.name] = kept
                else:
                    entry.infos.pop(backend.name, None)
                if rejected:
                    warnings.append(
                        CacheWarning(
                            kind="Node",
                            name=entry.name,
                            reason=DEVICES_REJECTED,
                            message=f"{backend.keys.register}: {len(rejected)} devices rejected, "
                            f"{len(kept)} kept: {'; '.join(rejected[:_SHOWN])}",
                            items=len(rejected),
                        )
                    )
        return tuple(warnings)

    def _assess(self, entry: NodeEntry, now: datetime) -> tuple[tuple[str, str], ...]:
        requests = []
        for backend in self._backends:
            if backend.name not in entry.infos or not entry.selected:
                entry.healthy.pop(backend.name, None)
                entry.peak_allocatable.pop(backend.name, None)
                continue
            reported = entry.allocatable.get(backend.resource_names.count)
            count = _count(reported)
            verdict = assess_handshake(entry.annotations.get(backend.keys.handshake), count, now, self._grace)
            peak = entry.peak_allocatable[backend.name] = max(
                entry.peak_allocatable.get(backend.name, 0), count
            )
            if count == 0 and reported is not None:
                # The kubelet has none of these devices to give (its plugin is gone): a pod sent here
                # now would fail admission, so the node takes none until the count is back.
                entry.healthy[backend.name] = False
            else:
                entry.healthy[backend.name] = backend.node_health(verdict.healthy, count, peak)
            if verdict.request:
                requests.append((entry.name, backend.name))
        return tuple(requests)
