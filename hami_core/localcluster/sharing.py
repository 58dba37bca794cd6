"""Who holds what: pods' placements and each device's sharing, read from the cluster's objects.

Pure: takes nodes and pods as the API returns them and the loaded backends, and returns value
types that the demo prints as tables or JSON. Device capacity comes from each backend's register
annotation on the node and usage from the pods' ``*-devices-allocated`` annotations, exactly the
data the scheduler itself reads, so the report shows what the scheduler believes. Malformed
annotations are reported in ``problems``, never raised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.allocation import DeviceBooking
from hami_core.backend import DeviceBackend
from hami_core.devices import ContainerDevice
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import PodFormatError
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.pods import FINISHED_PHASES
from hami_core.pods import PodView

#: Pod phases whose devices are released.


@attrs.frozen
class DeviceShare:
    """One share a container holds on one device."""

    backend: str
    uuid: str
    memory_mib: int
    cores: int


@attrs.frozen
class ContainerPlacement:
    """One container: its device shares and the environment the device plugin gave it."""

    name: str
    init: bool
    devices: tuple[DeviceShare, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class PodPlacement:
    """One pod: where it runs and what each container holds."""

    namespace: str
    name: str
    phase: str
    node: str
    scheduler: str
    bind_phase: str
    containers: tuple[ContainerPlacement, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@attrs.frozen
class DeviceSharing:
    """One device and everything booked on it."""

    node: str
    backend: str
    uuid: str
    type: str
    healthy: bool
    memory_mib: int
    memory_used_mib: int
    cores: int
    cores_used: int
    slots: int
    slots_used: int
    holders: tuple[str, ...]

    @property
    def overcommitted(self) -> bool:
        return (
            self.memory_used_mib > self.memory_mib
            or self.cores_used > self.cores
            or self.slots_used > self.slots
        )


@attrs.frozen
class SharingReport:
    """Every pod's placement and every registered device's sharing."""

    pods: tuple[PodPlacement, ...]
    devices: tuple[DeviceSharing, ...]
    problems: tuple[str, ...] = ()

    def pod(self, name: str, namespace: str = "default") -> PodPlacement:
        """The placement of ``namespace/name``.

        Raises:
            KeyError: no such pod in the report.
        """
        for pod in self.pods:
            if pod.name == name and pod.namespace == namespace:
                return pod
        raise KeyError(f"{namespace}/{name}")

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {
            "pods": [attrs.asdict(pod) | {"key": pod.key} for pod in self.pods],
            "devices": [
                attrs.asdict(device) | {"overcommitted": device.overcommitted} for device in self.devices
            ],
            "problems": list(self.problems),
        }


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return annotations if isinstance(annotations, Mapping) else {}


def _recorded_env(pod: PodView) -> dict[str, dict[str, str]]:
    """The envs the simulated kubelet recorded per container name."""
    raw = pod.annotations.get(ALLOCATIONS_ANNOTATION)
    if not raw:
        return {}
    try:
        records = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(records, Mapping):
        return {}
    envs: dict[str, dict[str, str]] = {}
    for container, record in records.items():
        if isinstance(record, Mapping) and isinstance(record.get("envs"), Mapping):
            envs[str(container)] = {str(k): str(v) for k, v in record["envs"].items()}
    return envs


def _placement(pod: PodView, backends: Sequence[DeviceBackend], problems: list[str]) -> PodPlacement:
    shares: list[list[DeviceShare]] = [[] for _ in pod.containers]
    for backend in backends:
        value = pod.annotations.get(backend.keys.allocated)
        if value is None:
            continue
        try:
            decoded = codec.decode_pod_devices(value)
        except CodecError as err:
            problems.append(f"pod {pod.key}: {backend.keys.allocated}: {err}")
            continue
        for index, entry in enumerate(decoded[: len(pod.containers)]):
            shares[index].extend(
                DeviceShare(backend.name, device.uuid, device.usedmem, device.usedcores) for device in entry
            )
    envs = _recorded_env(pod)
    return PodPlacement(
        namespace=pod.namespace,
        name=pod.name,
        phase=pod.phase,
        node=pod.node_name,
        scheduler=pod.scheduler_name,
        bind_phase=pod.annotations.get(codec.BIND_PHASE, ""),
        containers=tuple(
            ContainerPlacement(
                name=container.name,
                init=container.init,
                devices=tuple(shares[index]),
                env=envs.get(container.name, {}),
            )
            for index, container in enumerate(pod.containers)
        ),
    )


def sharing_report(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]], backends: Sequence[DeviceBackend]
) -> SharingReport:
    """Placements of ``pods`` and the sharing of every device ``nodes`` registered for ``backends``.

    A device's usage sums what every unfinished pod placed on its node holds there, with the
    scheduler's own rule (:func:`hami_core.allocation.collapse_usage`: init containers count at
    their peak, app containers add up).
    """
    problems: list[str] = []
    views = []
    for raw in pods:
        try:
            views.append(PodView.from_object(raw))
        except PodFormatError as err:
            problems.append(f"unreadable pod: {err}")
    placements = tuple(_placement(pod, backends, problems) for pod in views)
    booked: dict[tuple[str, str], list[tuple[str, DeviceBooking]]] = {}
    for placement in placements:
        if placement.phase in FINISHED_PHASES or not placement.node:
            continue
        n_init = sum(container.init for container in placement.containers)
        for backend in backends:
            per_container = [
                tuple(
                    ContainerDevice(share.uuid, backend.device_type, share.memory_mib, share.cores)
                    for share in container.devices
                    if share.backend == backend.name
                )
                for container in placement.containers
            ]
            for booking in allocation.collapse_usage(per_container, n_init):
                booked.setdefault((placement.node, booking.device.uuid), []).append((placement.key, booking))
    devices: list[DeviceSharing] = []
    for node in nodes:
        name = str(node.get("metadata", {}).get("name", ""))
        for backend in backends:
            try:
                infos = backend.node_devices(_annotations(node))
            except (CodecError, BackendError) as err:
                problems.append(f"node {name}: {backend.name}: {err}")
                continue
            for info in sorted(infos, key=lambda d: d.index):
                held = booked.get((name, info.id), [])
                devices.append(
                    DeviceSharing(
                        node=name,
                        backend=backend.name,
                        uuid=info.id,
                        type=info.type,
                        healthy=info.health,
                        memory_mib=info.devmem,
                        memory_used_mib=sum(booking.device.usedmem for _, booking in held),
                        cores=info.devcore,
                        cores_used=sum(booking.device.usedcores for _, booking in held),
                        slots=info.count,
                        slots_used=sum(booking.slots for _, booking in held),
                        holders=tuple(sorted({pod for pod, _ in held})),
                    )
                )
    return SharingReport(pods=placements, devices=tuple(devices), problems=tuple(problems))
