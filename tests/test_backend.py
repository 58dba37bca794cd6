"""DeviceBackend: what is abstract, and the defaults a minimal backend inherits."""

from __future__ import annotations

import inspect
from typing import ClassVar

import attrs
import pytest

from hami_core import allocation
from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.backend import RequestRules
from hami_core.backend import ResourceNames
from hami_core.codec import VendorKeys
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import PodFormatError
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.testing import make_container
from hami_core.testing import make_pod

GPU = "example.com/gpu"
MEM = "example.com/gpumem"
PCT = "example.com/gpumem-percentage"
CORES = "example.com/gpucores"


class ExampleBackend(DeviceBackend):
    """Supplies only the abstract members; everything else is the default."""

    contract_version: ClassVar[str] = "3.0"

    def __init__(self, rules: RequestRules | None = None) -> None:
        self.rules = rules if rules is not None else RequestRules()

    @property
    def name(self) -> str:
        return "example"

    @property
    def resource_names(self) -> ResourceNames:
        return ResourceNames(count=GPU, memory=MEM, memory_percentage=PCT, cores=CORES)

    @property
    def keys(self) -> VendorKeys:
        return codec.vendor_keys(register_word="example", devices_word="example", handshake_suffix="example")

    @property
    def request_rules(self) -> RequestRules:
        return self.rules

    def discover(self, node_name: str) -> list[DeviceInfo]:
        return [
            DeviceInfo(
                id=f"EX-{node_name}-{i}",
                index=i,
                count=4,
                devmem=8192,
                devcore=100,
                type="EXAMPLE-1",
                health=True,
            )
            for i in range(2)
        ]

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        return ContainerAllocation(envs={"EXAMPLE_DEVICES": ",".join(d.uuid for d in devices)})


def _request(nums: int, memreq: int, pct: int, cores: int) -> DeviceRequest:
    return DeviceRequest(nums=nums, type="EXAMPLE", memreq=memreq, mem_percentage_req=pct, coresreq=cores)


class TestContractShape:
    def test_only_identity_keys_discovery_and_allocate_are_abstract(self) -> None:
        assert DeviceBackend.__abstractmethods__ == {"name", "resource_names", "keys", "discover", "allocate"}

    def test_a_backend_missing_an_abstract_member_cannot_be_built(self) -> None:
        class Incomplete(DeviceBackend):
            contract_version: ClassVar[str] = "3.0"

        with pytest.raises(TypeError, match="abstract"):
            Incomplete()  # type: ignore[abstract]

    def test_every_method_and_property_has_a_docstring(self) -> None:
        undocumented = [
            name
            for name, member in vars(DeviceBackend).items()
            if not name.startswith("_")
            and callable(getattr(member, "fget", member))
            and not inspect.getdoc(member)
        ]
        assert undocumented == []

    def test_resource_names_list_only_configured_names(self) -> None:
        assert ResourceNames(count="a.b/c", cores="a.b/d").all() == ("a.b/c", "a.b/d")


class TestDefaultParseRequest:
    @pytest.mark.parametrize(
        ("resources", "expected"),
        [
            pytest.param({"limits": {GPU: 1}}, _request(1, 0, 100, 0), id="count-only"),
            pytest.param(
                {"limits": {GPU: 2, MEM: 4096}}, _request(2, 4096, MEM_PERCENTAGE_UNSET, 0), id="memory"
            ),
            pytest.param({"limits": {GPU: 1, PCT: 50}}, _request(1, 0, 50, 0), id="percentage"),
            pytest.param({"limits": {GPU: 1, PCT: 101}}, _request(1, 0, 100, 0), id="percentage-101-clamped"),
            pytest.param(
                {"limits": {GPU: 1, PCT: 2**32 + 50}}, _request(1, 0, 100, 0), id="percentage-huge-clamped"
            ),
            pytest.param(
                {"limits": {GPU: 1, PCT: -1}}, _request(1, 0, 100, 0), id="percentage-negative-ignored"
            ),
            pytest.param({"limits": {GPU: 1, CORES: 50}}, _request(1, 0, 100, 50), id="cores"),
            pytest.param(
                {"requests": {GPU: 1, MEM: 100}},
                _request(1, 100, MEM_PERCENTAGE_UNSET, 0),
                id="from-requests",
            ),
            pytest.param({"limits": {GPU: 2}, "requests": {GPU: 1}}, _request(2, 0, 100, 0), id="limits-win"),
        ],
    )
    def test_request_follows_hamis_rules(
        self, resources: dict[str, dict[str, int]], expected: DeviceRequest
    ) -> None:
        container = make_container(limits=resources.get("limits"), requests=resources.get("requests"))
        assert ExampleBackend().parse_request(ContainerView.from_object(container)) == expected

    @pytest.mark.parametrize(
        "limits",
        [
            pytest.param({"cpu": 1}, id="other-resources"),
            pytest.param({GPU: 0}, id="zero-count"),
            pytest.param({MEM: 1024}, id="memory-without-count"),
        ],
    )
    def test_no_count_means_no_request(self, limits: dict[str, int]) -> None:
        assert (
            ExampleBackend().parse_request(ContainerView.from_object(make_container(limits=limits))) is None
        )

    def test_memory_factor_multiplies_and_default_memory_replaces_100_percent(self) -> None:
        backend = ExampleBackend(RequestRules(memory_factor=2, default_memory=512, default_cores=10))
        assert backend.parse_request(
            ContainerView.from_object(make_container(limits={GPU: 1, MEM: 1024}))
        ) == _request(1, 2048, MEM_PERCENTAGE_UNSET, 10)
        assert backend.parse_request(ContainerView.from_object(make_container(limits={GPU: 1}))) == _request(
            1, 512, MEM_PERCENTAGE_UNSET, 10
        )

    @pytest.mark.parametrize(
        ("limits", "message"),
        [
            pytest.param({GPU: "1.5"}, "example.com/gpu must be a whole number", id="fractional-count"),
            pytest.param({GPU: -1}, "example.com/gpu must not be negative", id="negative-count"),
            pytest.param(
                {GPU: 1, MEM: "16Gi"}, "example.com/gpumem 16Gi is out of range", id="memory-beyond-int32"
            ),
            pytest.param({GPU: 1, MEM: "abc"}, "'abc' is not a quantity", id="memory-not-a-quantity"),
            pytest.param(
                {GPU: 1, CORES: -5}, "example.com/gpucores must not be negative", id="negative-cores"
            ),
        ],
    )
    def test_unreadable_requests_are_errors_naming_container_and_resource(
        self, limits: dict[str, object], message: str
    ) -> None:
        container = make_container("train", limits={})
        container["resources"] = {"limits": {name: str(value) for name, value in limits.items()}}
        with pytest.raises(BackendError, match=f"^container train: .*{message}"):
            ExampleBackend().parse_request(ContainerView.from_object(container))

    def test_memory_overflowing_after_the_factor_is_refused(self) -> None:
        backend = ExampleBackend(RequestRules(memory_factor=2))
        with pytest.raises(BackendError, match="times the memory factor 2 is out of range"):
            backend.parse_request(ContainerView.from_object(make_container(limits={GPU: 1, MEM: 2**30})))

    @pytest.mark.parametrize(
        "container",
        [
            pytest.param([], id="not-a-mapping"),
            pytest.param({"name": "c", "resources": "x"}, id="resources-not-a-mapping"),
            pytest.param({"name": "c", "resources": {"limits": ["x"]}}, id="limits-not-a-mapping"),
        ],
    )
    def test_malformed_containers_are_refused_by_the_view_before_any_backend(self, container: object) -> None:
        with pytest.raises(PodFormatError):
            ContainerView.from_object(container)


class TestDefaultAdmission:
    def test_count_in_limits_uses_the_backend_without_mutation(self) -> None:
        result = ExampleBackend().mutate_container(
            ContainerView.from_object(make_container(limits={GPU: 1})), PodView.from_object(make_pod())
        )
        assert (result.has_resource, result.container, result.warnings) == (True, None, ())

    def test_count_only_in_requests_is_not_claimed(self) -> None:
        assert (
            not ExampleBackend()
            .mutate_container(
                ContainerView.from_object(make_container(requests={GPU: 1})), PodView.from_object(make_pod())
            )
            .has_resource
        )


class TestDefaultNodeDevices:
    def test_registered_devices_are_decoded_and_stamped_with_the_backend(self) -> None:
        backend = ExampleBackend()
        devices = backend.discover("n1")
        annotations = {backend.keys.register: backend.encode_node_devices(devices)}
        assert backend.node_devices(annotations) == [
            attrs.evolve(d, device_vendor="example") for d in devices
        ]

    def test_node_without_the_annotation_has_none_of_our_devices(self) -> None:
        assert ExampleBackend().node_devices({"other": "x"}) == []

    def test_an_empty_registration_is_hamis_no_device_error(self) -> None:
        backend = ExampleBackend()
        with pytest.raises(BackendError, match="no example device found on node"):
            backend.node_devices({backend.keys.register: "[]"})

    def test_a_malformed_registration_is_a_codec_error(self) -> None:
        backend = ExampleBackend()
        with pytest.raises(CodecError):
            backend.node_devices({backend.keys.register: "[{"})


class TestDefaultScheduling:
    def test_fit_uses_the_shared_fit_on_devices_of_the_backends_type(self) -> None:
        backend = ExampleBackend()
        usage = [DeviceUsage.from_info(d) for d in backend.discover("n1")]
        foreign = DeviceUsage(id="GPU-x", count=4, totalmem=8192, totalcore=100, type="NVIDIA-A100")
        result = backend.fit(_request(2, 1000, MEM_PERCENTAGE_UNSET, 10), [foreign, *usage], FitContext())
        assert result.ok
        assert {d.uuid for d in result.devices} == {"EX-n1-0", "EX-n1-1"}
        assert all((d.type, d.usedmem, d.usedcores) == ("EXAMPLE", 1000, 10) for d in result.devices)

    def test_fit_applies_the_backends_fit_rules(self) -> None:
        class Cordoning(ExampleBackend):
            def fit_rules(self, context: FitContext) -> allocation.FitRules:
                return allocation.FitRules(request_type=self.device_type, cordoned=frozenset({"EX-n1-1"}))

        backend = Cordoning()
        usage = [DeviceUsage.from_info(d) for d in backend.discover("n1")]
        assert not backend.fit(_request(2, 1, MEM_PERCENTAGE_UNSET, 0), usage, FitContext()).ok
        result = backend.fit(_request(1, 1, MEM_PERCENTAGE_UNSET, 0), usage, FitContext())
        assert [d.uuid for d in result.devices] == ["EX-n1-0"]

    def test_fit_reports_reasons_when_memory_is_short(self) -> None:
        backend = ExampleBackend()
        usage = [DeviceUsage.from_info(d) for d in backend.discover("n1")]
        result = backend.fit(_request(1, 9000, MEM_PERCENTAGE_UNSET, 0), usage, FitContext())
        assert not result.ok
        assert result.reasons == {"CardInsufficientMemory": 2}

    def test_node_score_defaults_to_zero(self) -> None:
        assert ExampleBackend().score_node([], (), FitContext()) == 0.0


class TestDefaultNodeSide:
    def test_device_type_defaults_to_the_upper_cased_name(self) -> None:
        assert ExampleBackend().device_type == "EXAMPLE"

    def test_health_reports_what_discovery_saw(self) -> None:
        devices = [DeviceInfo(id="a", health=True), DeviceInfo(id="b", health=False)]
        assert ExampleBackend().health(devices) == {"a": True, "b": False}
