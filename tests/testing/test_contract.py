"""BackendContract catches broken backends, not just passes good ones."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime

import attrs
import pytest
from hami_backend_mock.backend import MockBackend

from hami_core.backend import DeviceBackend
from hami_core.backend import MutationResult
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevice
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import Mount
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.testing import BackendContract
from hami_core.testing import assert_fit_within_capacity
from hami_core.testing import assert_tolerates_container
from hami_core.testing import contract


class Overcommitting(MockBackend):
    """Takes the first devices whatever they have free."""

    def fit(self, request: DeviceRequest, devices: Sequence[DeviceUsage], context: FitContext) -> FitResult:
        taken = tuple(
            ContainerDevice(d.id, self.device_type, request.memory_on(d.totalmem), request.coresreq)
            for d in devices[: request.nums]
        )
        return FitResult(ok=len(taken) == request.nums, devices=taken)


class Crashing(MockBackend):
    """Lets a KeyError escape from request parsing."""

    def parse_request(self, container: ContainerView) -> DeviceRequest | None:
        return super().parse_request(container) if container.limits else {}["no limits"]


class Duplicating(MockBackend):
    """Reports the same device twice."""

    def discover(self, node_name: str) -> list[DeviceInfo]:
        first = super().discover(node_name)[0]
        return [first, attrs.evolve(first, index=1)]


def _half_full(backend: MockBackend) -> list[DeviceUsage]:
    return [attrs.evolve(DeviceUsage.from_info(d), usedmem=d.devmem // 2) for d in backend.discover("n")]


def test_the_mock_passes_the_checks_on_random_input() -> None:
    contract = BackendContract()
    backend = MockBackend()
    contract.test_fit_never_overcommits(backend, backend.discover("n"))
    contract.test_random_container_fails_only_with_backend_error(backend)


def test_a_fit_that_overcommits_memory_fails() -> None:
    backend = Overcommitting()
    request = DeviceRequest(nums=1, type="MOCK", memreq=12000, mem_percentage_req=MEM_PERCENTAGE_UNSET)
    assert_fit_within_capacity(MockBackend(), request, _half_full(backend))
    with pytest.raises(AssertionError, match="memory over-committed"):
        assert_fit_within_capacity(backend, request, _half_full(backend))


def test_request_parsing_that_raises_other_errors_fails() -> None:
    assert_tolerates_container(MockBackend(), {"resources": None})
    with pytest.raises(KeyError):
        assert_tolerates_container(Crashing(), {"name": "c"})


def test_duplicate_device_ids_fail() -> None:
    backend = Duplicating()
    with pytest.raises(AssertionError, match="duplicate device ids"):
        BackendContract().test_discovered_devices_are_well_formed(backend, backend.discover("n"))


class Growing(MockBackend):
    """Adds one more env entry every time it admits a container."""

    def mutate_container(self, container: ContainerView, pod: PodView) -> MutationResult:
        spec = dict(container.spec)
        spec["env"] = [*(spec.get("env") or []), {"name": "ADMITTED", "value": "1"}]
        return MutationResult(has_resource=True, container=spec)


class RelativeMounts(MockBackend):
    """Mounts a relative host path."""

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        given = super().allocate(devices, container, pod)
        return attrs.evolve(given, mounts=(Mount("/usr/local/vgpu", "vgpu"),))


class LeakyBind(MockBackend):
    """Sets a node annotation at bind that it never lists for release."""

    def bind_node_annotations(self, node_annotations: Mapping[str, str], now: datetime) -> Mapping[str, str]:
        return {"mock.hami.io/bind-lock": now.isoformat()}


def test_admission_that_mutates_again_fails() -> None:
    with pytest.raises(AssertionError, match="twice differs"):
        BackendContract().test_admission_is_idempotent(Growing())


def test_a_relative_mount_path_fails() -> None:
    backend = RelativeMounts()
    with pytest.raises(AssertionError, match="host path must be absolute"):
        BackendContract().test_one_device_fits_an_idle_node_and_allocates(backend, backend.discover("n"))


def test_bind_annotations_that_are_never_released_fail() -> None:
    with pytest.raises(AssertionError, match="released_node_annotations does not list"):
        BackendContract().test_bind_node_annotations_are_released_again(LeakyBind())


def test_every_method_of_the_contract_is_exercised_by_the_suite() -> None:
    """Each public member of DeviceBackend is called or read somewhere in BackendContract's module."""
    source = inspect.getsource(contract)
    members = [name for name in vars(DeviceBackend) if not name.startswith("_")]
    assert "allocate" in members
    missing = [name for name in members if f".{name}" not in source]
    assert not missing, f"BackendContract never exercises {missing}"
