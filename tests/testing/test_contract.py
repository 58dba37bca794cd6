"""BackendContract catches broken backends, not just passes good ones."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
from hami_backend_mock.backend import MockBackend

from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.pods import ContainerView
from hami_core.testing import BackendContract
from hami_core.testing import assert_fit_within_capacity
from hami_core.testing import assert_tolerates_container


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
