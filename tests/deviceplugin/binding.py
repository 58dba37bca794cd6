"""Playing the scheduler extender's part by the protocol, for device-plugin tests.

What ``/filter`` and ``/bind`` leave on the API (``specs/hami-wire.md`` 1.2, 3.8): the pod's
``vgpu-node``/``vgpu-time`` and the backend's ``-to-allocate``/``-allocated`` annotations, the node lock,
``bind-phase=allocating`` with ``bind-time``, then ``pods/binding``. :class:`ProtocolScheduler` also
chooses the devices with the backend's own fit, tracking the usage it booked, so a fleet of real device
plugins can be driven without the scheduler extender.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

import attrs

from hami_core import allocation
from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import PodDevices
from hami_core.errors import ConflictError
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Pod
from hami_core.pods import PodView


def filter_annotations(
    backend: DeviceBackend, node_name: str, entries: Sequence[ContainerDevices], value: str | None = None
) -> dict[str, str]:
    """The annotations ``/filter`` writes for a pod placed on ``node_name`` with ``entries``.

    ``value`` replaces the encoded entries (to plant a malformed annotation).
    """
    value = codec.encode_pod_devices(entries) if value is None else value
    return {
        codec.VGPU_NODE: node_name,
        codec.VGPU_TIME: str(int(time.time())),
        backend.keys.to_allocate: value,
        backend.keys.allocated: value,
    }


def lock_node(kube: KubeClient, node_name: str, namespace: str, name: str, *, timeout: float = 30.0) -> None:
    """Take the node lock for ``namespace/name``, waiting while another pod holds it."""
    deadline = time.monotonic() + timeout
    while True:
        node = kube.get_node(node_name)
        held = ((node.get("metadata") or {}).get("annotations") or {}).get(codec.NODE_LOCK)
        if held is None:
            value = codec.format_node_lock(datetime.now(UTC), namespace, name)
            try:
                kube.patch_node(
                    node_name,
                    {"metadata": {"annotations": {codec.NODE_LOCK: value}}},
                    resource_version=node["metadata"]["resourceVersion"],
                )
                return
            except ConflictError:
                continue
        if time.monotonic() > deadline:
            raise AssertionError(f"node {node_name} stayed locked by {held}")
        time.sleep(0.01)


def bind(
    kube: KubeClient,
    backend: DeviceBackend,
    pod: Pod,
    node_name: str,
    entries: Sequence[ContainerDevices],
    *,
    take_lock: bool = True,
    to_allocate: str | None = None,
) -> None:
    """Annotate, lock and bind ``pod`` to ``node_name`` as the extender's ``/filter`` and ``/bind`` do.

    ``take_lock=False`` leaves the node unlocked; ``to_allocate`` replaces the encoded entries.
    """
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    kube.patch_pod(
        namespace,
        name,
        {
            "metadata": {
                "annotations": filter_annotations(backend, node_name, entries, to_allocate),
                "labels": {codec.VGPU_NODE: node_name},
            }
        },
    )
    if take_lock:
        lock_node(kube, node_name, namespace, name)
    kube.patch_pod(
        namespace,
        name,
        {
            "metadata": {
                "annotations": {
                    codec.BIND_PHASE: codec.BIND_PHASE_ALLOCATING,
                    codec.BIND_TIME: str(int(time.time())),
                }
            }
        },
    )
    kube.bind_pod(namespace, name, node_name)


@attrs.define
class ProtocolScheduler:
    """Chooses devices with the backend's fit and binds by the protocol; books what it placed.

    Args:
        kube: the API client.
        backend: the one backend pods ask for.
        policy: the device policy.
    """

    kube: KubeClient
    backend: DeviceBackend
    policy: str = "spread"
    usage: dict[str, list[DeviceUsage]] = attrs.field(factory=dict)

    def _devices(self, node_name: str) -> list[DeviceUsage]:
        """The node's registered devices with what this scheduler booked, health as registered now."""
        annotations = (self.kube.get_node(node_name).get("metadata") or {}).get("annotations") or {}
        registered = {info.id: info for info in self.backend.node_devices(annotations)}
        booked = self.usage.get(node_name)
        if booked is None:
            return [DeviceUsage.from_info(info) for info in registered.values()]
        return [attrs.evolve(device, health=registered[device.id].health) for device in booked]

    def place(self, pod: Pod, node_name: str) -> tuple[ContainerDevices, ...] | None:
        """Fit ``pod`` on ``node_name`` and book it; ``None`` when it does not fit."""
        requests: list[dict[str, DeviceRequest]] = []
        view = PodView.from_object(pod)
        for container in view.containers:
            request = self.backend.parse_request(container)
            requests.append({self.backend.name: request} if request is not None else {})
        n_init = view.n_init

        def fit(
            backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
        ) -> FitResult:
            return self.backend.fit(request, devices, FitContext(device_policy=self.policy))

        result = allocation.fit_pod(
            requests,
            n_init,
            {self.backend.name: self._devices(node_name)},
            fit,
            policy=allocation.parse_device_policy(self.policy),
        )
        if not result.ok:
            return None
        self.usage[node_name] = list(result.usage[self.backend.name])
        return result.devices.for_backend(self.backend.name)

    def schedule(self, pod: Pod, nodes: Sequence[str]) -> str | None:
        """Place ``pod`` on the first of ``nodes`` it fits and bind it there; the node, or ``None``."""
        for node_name in nodes:
            entries = self.place(pod, node_name)
            if entries is not None:
                bind(self.kube, self.backend, pod, node_name, entries)
                return node_name
        return None
