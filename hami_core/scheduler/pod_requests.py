"""What a pod asks of each backend, container by container (HAMi's ``Resourcereqs``), and its CPU.

Containers are listed init containers first, then app containers, the order of every per-container
annotation (``specs/hami-wire.md`` 1.4.3). Each backend parses its own resources; a malformed request
is an error naming the container (HAMi silently drops it). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence

import attrs

from hami_core.backend import DeviceBackend
from hami_core.devices import DeviceRequest
from hami_core.errors import BackendError
from hami_core.pods import PodView
from hami_core.scheduler.node_cpu import pod_cpu


@attrs.frozen
class PodRequest:
    """A pod's device requests and CPU request.

    Args:
        containers: per container (init first), backend name to request; only requests of at least
            one device are kept.
        n_init: how many entries of ``containers`` are init containers.
        backends: the backends asked for, in order of first appearance.
        cpu: the pod's CPU request in milli-cores (kube-scheduler's rule), for CPU-aware placement
            policies; 0 when it asks no device (nothing reads it then).
    """

    containers: tuple[Mapping[str, DeviceRequest], ...] = ()
    n_init: int = 0
    backends: tuple[str, ...] = ()
    cpu: int = 0

    @property
    def empty(self) -> bool:
        """The pod asks no device of any loaded backend (the extender lets it through)."""
        return not self.backends

    def requests(self) -> list[tuple[str, DeviceRequest]]:
        """Every (backend, request) pair of every container."""
        return [(backend, request) for wanted in self.containers for backend, request in wanted.items()]


def parse_pod_request(pod: PodView, backends: Sequence[DeviceBackend]) -> PodRequest:
    """Ask every backend what each container of ``pod`` requests of it (and, if any, the pod's CPU).

    Raises:
        BackendError: a container's resources are malformed for some backend; the message names the
            pod, the container and the backend.
    """
    containers: list[Mapping[str, DeviceRequest]] = []
    used: dict[str, None] = {}
    for container in pod.containers:
        wanted: dict[str, DeviceRequest] = {}
        for backend in backends:
            try:
                request = backend.parse_request(container)
            except BackendError as err:
                raise BackendError(f"pod {pod.key}: backend {backend.name}: {err}") from err
            if request is not None and request.nums > 0:
                wanted[backend.name] = request
                used[backend.name] = None
        containers.append(wanted)
    return PodRequest(
        containers=tuple(containers), n_init=pod.n_init, backends=tuple(used), cpu=pod_cpu(pod) if used else 0
    )
