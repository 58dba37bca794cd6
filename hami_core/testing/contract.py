"""``BackendContract``: the conformance suite every backend distribution runs.

A backend's ``tests/test_contract.py`` subclasses it and supplies a ``backend`` fixture::

    class TestMockContract(BackendContract):
        @pytest.fixture
        def backend(self) -> MockBackend:
            return MockBackend()

The tests check, for every method of :class:`~hami_core.backend.DeviceBackend` (a meta-test
holds the suite to that), what the core relies on without knowing the vendor: the backend is
reachable through its entry point under its own name; names, keys and request rules are well
formed; request parsing and admission fail only with :class:`~hami_core.errors.BackendError`
whatever the container looks like, name the container and resource when they refuse, do not
modify their input, and admission is idempotent (mutating a mutated container changes nothing);
discovered devices survive the register annotation; fit never books more memory, cores or slots
than a device has free (checked on random usage with hypothesis); ``allocate`` hands out what fit
chose with well-formed env, mounts and device nodes; and the optional scheduler and node hooks
return well-formed annotations. Override ``contract_config`` when the backend needs settings to
load, and ``node_name`` to discover a particular simulated node. Needs ``hami-core[test]``
(pytest, hypothesis).
"""

from __future__ import annotations

import copy
import importlib.metadata
import math
import re
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import ClassVar

import attrs
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hami_core import plugins
from hami_core.allocation import FitRules
from hami_core.backend import CONTRACT_VERSION
from hami_core.backend import DeviceBackend
from hami_core.backend import MutationResult
from hami_core.config import BACKEND_NAME
from hami_core.config import HamiConfig
from hami_core.devices import MEM_PERCENTAGE_UNSET
from hami_core.devices import ContainerAllocation
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceSpec
from hami_core.devices import DeviceUsage
from hami_core.devices import FitContext
from hami_core.devices import FitResult
from hami_core.devices import Mount
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import PodFormatError
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod

# A qualified name as Kubernetes accepts it for extended resources and annotation keys:
# a DNS-subdomain prefix, "/", and a name of at most 63 characters.
_QUALIFIED_NAME = re.compile(
    r"^(?=.{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# An annotation key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
_ANNOTATION_KEY = re.compile(
    r"^((?=.{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# Kubernetes' rule for environment variable names (apimachinery IsEnvVarName).
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Device node permissions as the kubelet passes them to the runtime (cgroup "rwm").
_PERMISSIONS = re.compile(r"^[rwm]{1,3}$")
# A fixed time for the hooks that take one; backends must not depend on the real clock there.
_NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Characters that separate fields in HAMi's annotation formats (hami-wire.md 1.4).
_SEPARATORS = (",", ":", ";")
# Every backend's subclass runs the same inherited hypothesis tests (differing executors): their
# examples share one database key, which only means replaying another backend's examples.
_RANDOM = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
)

_ODD_QUANTITIES = st.one_of(
    st.sampled_from(["1", "0", "-1", "1.5", "16Gi", "16.0Gi", "500m", "1e3", "2e100", "1E", "abc", "", " 1"]),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


def _random_container(backend: DeviceBackend) -> st.SearchStrategy[object]:
    """Containers of every shape: valid, odd quantities, wrong types at each level."""
    names = st.sampled_from([*backend.resource_names.all(), "cpu", "memory"])
    amounts = st.one_of(
        st.dictionaries(names, _ODD_QUANTITIES, max_size=5), st.none(), st.integers(), st.text(max_size=3)
    )
    resources = st.one_of(
        st.fixed_dictionaries({}, optional={"limits": amounts, "requests": amounts}),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
    env = st.one_of(
        st.none(),
        st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=5), "value": st.text(max_size=5)}), max_size=2
        ),
        st.text(max_size=3),
    )
    well_shaped = st.fixed_dictionaries(
        {"name": st.text(max_size=6)},
        optional={"resources": resources, "env": env, "image": st.text(max_size=4)},
    )
    return st.one_of(well_shaped, st.none(), st.integers(), st.lists(st.integers(), max_size=2))


def assert_tolerates_container(backend: DeviceBackend, container: object) -> None:
    """Assert that parsing and admitting ``container`` return their types or raise BackendError.

    ``container`` may have any shape: the API sends whatever a client wrote. What the pod view
    refuses for its JSON types never reaches a backend; everything else must be answered.
    """
    try:
        shaped = ContainerView.from_object(container)
    except PodFormatError:
        return
    try:
        request = backend.parse_request(shaped)
    except BackendError:
        pass
    else:
        assert request is None or isinstance(request, DeviceRequest), request
    try:
        mutation = backend.mutate_container(shaped, PodView.from_object(make_pod()))
    except BackendError:
        pass
    else:
        assert isinstance(mutation, MutationResult), mutation


def assert_fit_within_capacity(
    backend: DeviceBackend, request: DeviceRequest, usage: Sequence[DeviceUsage]
) -> None:
    """Assert that ``backend.fit`` either refuses ``request`` or books only what ``usage`` has free.

    A success must give exactly ``request.nums`` devices, all healthy and among ``usage``, and
    booking them (:meth:`DeviceUsage.add`) must leave no device above its slots, memory or cores.
    """
    result = backend.fit(request, usage, FitContext())
    if not result.ok:
        return
    assert len(result.devices) == request.nums, f"asked {request.nums} devices, got {result.devices}"
    booked = {device.id: device for device in usage}
    for given_device in result.devices:
        assert given_device.uuid in booked, f"fit returned {given_device.uuid!r}, which it was not given"
        device = booked[given_device.uuid]
        assert device.health, f"fit picked unhealthy device {device.id}"
        device = device.add(given_device)
        assert device.used <= device.count, f"slots over-committed on {device.id}"
        assert device.usedmem <= device.totalmem, f"memory over-committed on {device.id}"
        assert device.usedcores <= device.totalcore, f"cores over-committed on {device.id}"
        booked[device.id] = device


def assert_annotations_well_formed(annotations: Mapping[str, str], what: str) -> None:
    """Assert that ``annotations`` maps valid annotation keys to strings (``what`` names the method)."""
    for key, value in annotations.items():
        assert isinstance(key, str), f"{what}: key {key!r} is not a string"
        assert _ANNOTATION_KEY.fullmatch(key), f"{what}: {key!r} is not a valid annotation key"
        assert isinstance(value, str), f"{what}: the value of {key} is {value!r}, not a string"


def assert_allocation_well_formed(allocation: ContainerAllocation) -> None:
    """Assert what the kubelet needs of an ``Allocate`` answer: valid env names, absolute paths, no clash.

    Env names follow Kubernetes' rule and values are strings; mounts and device nodes have absolute
    container and host paths, and no two mounts share a container path (the runtime would refuse).
    """
    assert isinstance(allocation, ContainerAllocation), allocation
    for name, value in allocation.envs.items():
        assert isinstance(name, str), f"env name {name!r} is not a string"
        assert _ENV_NAME.fullmatch(name), f"{name!r} is not a valid environment variable name"
        assert isinstance(value, str), f"env {name} is {value!r}, not a string"
    for mount in allocation.mounts:
        assert isinstance(mount, Mount), mount
        assert mount.container_path.startswith("/"), f"mount {mount}: container path must be absolute"
        assert mount.host_path.startswith("/"), f"mount {mount}: host path must be absolute"
    paths = [mount.container_path for mount in allocation.mounts]
    assert len(set(paths)) == len(paths), f"two mounts share a container path: {paths}"
    for spec in allocation.devices:
        assert isinstance(spec, DeviceSpec), spec
        assert spec.container_path.startswith("/"), f"device {spec}: container path must be absolute"
        assert spec.host_path.startswith("/"), f"device {spec}: host path must be absolute"
        assert _PERMISSIONS.fullmatch(spec.permissions), f"device {spec}: permissions must be r, w and m"
    assert_annotations_well_formed(allocation.annotations, "allocate")


def _mutated_again(backend: DeviceBackend, container: Mapping[str, object]) -> MutationResult:
    """Admit ``container`` alone in a pod, as the webhook does."""
    pod = {**make_pod(), "spec": {"containers": [dict(container)]}}
    return backend.mutate_container(ContainerView.from_object(container), PodView.from_object(pod))


def _normalised(device: DeviceInfo, vendor: str) -> DeviceInfo:
    return attrs.evolve(device, device_vendor=vendor, custom_info={})


class BackendContract:
    """Conformance tests for one :class:`~hami_core.backend.DeviceBackend`.

    Subclass it as ``Test<Name>Contract`` and provide a ``backend`` fixture returning a ready
    instance (on fakes where the backend needs hardware).
    """

    #: The node the ``devices`` fixture discovers.
    node_name: ClassVar[str] = "contract-node"

    @pytest.fixture
    def contract_config(self, backend: DeviceBackend) -> HamiConfig:
        """The config that loads the backend through its entry point; override to add settings."""
        return HamiConfig().with_enabled([backend.name])

    @pytest.fixture
    def devices(self, backend: DeviceBackend) -> list[DeviceInfo]:
        """The backend's devices on :attr:`node_name`."""
        return backend.discover(self.node_name)

    # --- identity -----------------------------------------------------------------------------

    def test_name_is_a_valid_helm_key(self, backend: DeviceBackend) -> None:
        assert BACKEND_NAME.fullmatch(backend.name), f"{backend.name!r} is not lowercase letters and digits"

    def test_backend_loads_through_its_entry_point_under_its_name(
        self, backend: DeviceBackend, contract_config: HamiConfig
    ) -> None:
        listed = importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP, name=backend.name)
        assert listed, f"no {plugins.ENTRY_POINT_GROUP!r} entry point named {backend.name!r} is installed"
        loaded = plugins.load_backends(contract_config)
        assert type(loaded.get(backend.name)) is type(backend)

    def test_contract_major_version_is_the_cores(self, backend: DeviceBackend) -> None:
        stated = type(backend).contract_version
        assert stated.split(".")[0] == CONTRACT_VERSION.split(".")[0]

    def test_resource_names_are_unique_and_well_formed(self, backend: DeviceBackend) -> None:
        names = backend.resource_names.all()
        assert backend.resource_names.count, "the count resource is required"
        assert len(set(names)) == len(names), f"duplicate resource names: {names}"
        for name in names:
            assert _QUALIFIED_NAME.fullmatch(name), f"{name!r} is not a valid extended resource name"
            assert not name.startswith(("kubernetes.io/", "requests.")), f"{name!r} is reserved"

    def test_annotation_keys_are_distinct_and_well_formed(self, backend: DeviceBackend) -> None:
        keys = attrs.astuple(backend.keys)
        assert len(set(keys)) == len(keys), f"keys must differ: {keys}"
        for key in keys:
            assert _QUALIFIED_NAME.fullmatch(key), f"{key!r} is not a valid annotation key"

    def test_device_type_is_a_plain_word(self, backend: DeviceBackend) -> None:
        assert backend.device_type.strip() == backend.device_type != ""
        assert not any(separator in backend.device_type for separator in _SEPARATORS)

    def test_request_rules_are_sane(self, backend: DeviceBackend) -> None:
        rules = backend.request_rules
        assert rules.memory_factor >= 1, f"memory factor {rules.memory_factor} must be at least 1 MiB"
        assert rules.default_memory >= 0, rules
        assert 0 <= rules.default_cores <= 100, f"default cores {rules.default_cores} must be a percentage"

    # --- admission and request parsing --------------------------------------------------------

    def test_container_without_resources_asks_nothing(self, backend: DeviceBackend) -> None:
        container = make_container()
        view, pod = (
            ContainerView.from_object(container),
            PodView.from_object(make_pod(containers=[container])),
        )
        assert backend.parse_request(view) is None
        assert not backend.mutate_container(view, pod).has_resource

    def test_container_asking_one_device_is_parsed_as_one_device_of_its_type(
        self, backend: DeviceBackend
    ) -> None:
        container = make_container(limits={backend.resource_names.count: 1})
        view, pod = (
            ContainerView.from_object(container),
            PodView.from_object(make_pod(containers=[container])),
        )
        request = backend.parse_request(view)
        assert request is not None
        assert (request.nums, request.type) == (1, backend.device_type)
        assert backend.mutate_container(view, pod).has_resource

    @pytest.mark.parametrize(
        "shape",
        [
            pytest.param({"resources": []}, id="resources-not-a-mapping"),
            pytest.param({"resources": {"limits": "1"}}, id="limits-not-a-mapping"),
            pytest.param({"resources": {"limits": {"COUNT": "abc"}}}, id="count-not-a-quantity"),
            pytest.param({"resources": {"limits": {"COUNT": "1.5"}}}, id="count-fractional"),
            pytest.param({"resources": {"limits": {"COUNT": "-1"}}}, id="count-negative"),
            pytest.param({"resources": {"limits": {"COUNT": "16Gi"}}}, id="count-huge"),
            pytest.param({"resources": {"limits": {"COUNT": True}}}, id="count-boolean"),
            pytest.param({"resources": {"requests": {"COUNT": None}}}, id="count-null"),
        ],
    )
    def test_malformed_container_fails_only_with_backend_error(
        self, backend: DeviceBackend, shape: dict[str, object]
    ) -> None:
        count = backend.resource_names.count
        container = copy.deepcopy(shape)
        for field in ("limits", "requests"):
            amounts = container.get("resources", {})
            if (
                isinstance(amounts, dict)
                and isinstance(amounts.get(field), dict)
                and "COUNT" in amounts[field]
            ):
                amounts[field][count] = amounts[field].pop("COUNT")
        assert_tolerates_container(backend, container)

    @pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
    def test_a_refused_count_names_the_container_and_the_resource(
        self, backend: DeviceBackend, value: str
    ) -> None:
        count = backend.resource_names.count
        view = ContainerView.from_object(make_container("trainer", limits={count: value}))
        with pytest.raises(BackendError) as refused:
            backend.parse_request(view)
        message = str(refused.value)
        assert "trainer" in message, f"the error does not name the container: {message!r}"
        assert count in message, f"the error does not name the resource: {message!r}"

    def _admission_cases(self, backend: DeviceBackend) -> list[dict[str, int]]:
        """Well-formed limits: with the count resource, and without it (a backend may add a default count)."""
        names = backend.resource_names
        cases = [{names.count: 1}, {names.count: 2}]
        if names.memory:
            cases += [{names.memory: 1024}, {names.count: 1, names.memory: 1024}]
        if names.memory_percentage:
            cases.append({names.count: 1, names.memory_percentage: 50})
        if names.cores:
            cases += [{names.cores: 30}, {names.count: 1, names.cores: 30}]
        return cases

    def test_admission_is_idempotent(self, backend: DeviceBackend) -> None:
        """A mutated container admitted again changes no further (webhook reinvocation, retries)."""
        for limits in self._admission_cases(backend):
            try:
                first = _mutated_again(backend, make_container(limits=limits))
            except BackendError:
                continue  # denied: the vendor refuses this combination (Ascend's modes, say)
            assert first.has_resource or backend.resource_names.count not in limits, (
                f"a container with limits {limits} must use the backend"
            )
            if first.container is None:
                continue
            second = _mutated_again(backend, first.container)
            assert second.has_resource == first.has_resource, (
                f"admitting {first.container} again changes has_resource"
            )
            assert second.container in (None, first.container), (
                f"mutating {limits} twice differs:\n{first.container}\n{second.container}"
            )
            assert second.runtime_class_name == first.runtime_class_name

    def test_admitted_requests_parse(self, backend: DeviceBackend) -> None:
        """A container admission sends to hami's scheduler (after its defaults) is a request the scheduler reads."""
        for limits in self._admission_cases(backend):
            try:
                mutation = _mutated_again(backend, make_container(limits=limits))
            except BackendError:
                continue  # denied at admission, so it never reaches the scheduler
            if not mutation.has_resource:
                continue
            container = (
                mutation.container if mutation.container is not None else make_container(limits=limits)
            )
            request = backend.parse_request(ContainerView.from_object(container))
            assert request is not None, f"admission claims {limits} but parse_request sees no request"
            assert request.type == backend.device_type, request

    @_RANDOM
    @given(data=st.data())
    def test_random_container_fails_only_with_backend_error(
        self, backend: DeviceBackend, data: st.DataObject
    ) -> None:
        container = data.draw(_random_container(backend))
        before = copy.deepcopy(container)
        assert_tolerates_container(backend, container)
        assert container == before, "parse_request and mutate_container must not modify their input"

    # --- node devices -------------------------------------------------------------------------

    def test_discovered_devices_are_well_formed(
        self, backend: DeviceBackend, devices: list[DeviceInfo]
    ) -> None:
        ids = [device.id for device in devices]
        assert len(set(ids)) == len(ids), f"duplicate device ids: {ids}"
        assert len({device.index for device in devices}) == len(devices), "device indexes must be unique"
        for device in devices:
            assert device.id, device
            assert not any(separator in device.id for separator in _SEPARATORS), device.id
            assert device.count >= 1, device
            assert device.devmem >= 0, device
            assert device.devcore >= 0, device
            assert backend.device_type.lower() in device.type.lower(), (
                f"device type {device.type!r} must contain the request type {backend.device_type!r}"
            )

    def test_discovered_devices_round_trip_through_the_register_annotation(
        self, backend: DeviceBackend, devices: list[DeviceInfo]
    ) -> None:
        if not devices:
            pytest.skip("the backend discovered no device")
        value = backend.encode_node_devices(devices)
        decoded = backend.node_devices({backend.keys.register: value})
        expected = sorted((_normalised(device, backend.name) for device in devices), key=lambda d: d.id)
        assert (
            sorted((_normalised(device, backend.name) for device in decoded), key=lambda d: d.id) == expected
        )
        assert all(device.device_vendor == backend.name for device in decoded)

    def test_node_without_register_annotation_has_no_devices(self, backend: DeviceBackend) -> None:
        assert backend.node_devices({}) == []

    @pytest.mark.parametrize("value", ["garbage", "[{", "[]", "null", "[1]"])
    def test_malformed_register_annotation_fails_with_codec_or_backend_error(
        self, backend: DeviceBackend, value: str
    ) -> None:
        with pytest.raises((CodecError, BackendError)):
            backend.node_devices({backend.keys.register: value})

    def test_capacity_devices_are_backend_devices(self, backend: DeviceBackend) -> None:
        """Devices synthesized from ``status.capacity`` belong to the backend; they fail only with BackendError."""
        for capacity in ({}, {"cpu": "16"}, {backend.resource_names.count: "2"}):
            try:
                derived = backend.capacity_devices(self.node_name, capacity)
            except BackendError:
                continue
            assert isinstance(derived, list), derived
            for device in derived:
                assert isinstance(device, DeviceInfo), device
                assert backend.device_type.lower() in device.type.lower(), device
            if backend.resource_names.count not in capacity:
                assert derived == [], (
                    f"devices derived from a capacity without {backend.resource_names.count}"
                )

    def test_node_health_never_revives_a_node_the_handshake_finds_unhealthy(
        self, backend: DeviceBackend
    ) -> None:
        assert backend.node_health(True, 4, 4) is True, "an idle node with all its devices must be healthy"
        assert backend.node_health(False, 4, 4) is False

    def test_extra_node_annotations_are_well_formed(
        self, backend: DeviceBackend, devices: list[DeviceInfo]
    ) -> None:
        extra = backend.extra_node_annotations(devices)
        assert_annotations_well_formed(extra, "extra_node_annotations")
        assert backend.keys.register not in extra, "the register annotation is written by the core"

    def test_health_covers_every_device(self, backend: DeviceBackend, devices: list[DeviceInfo]) -> None:
        health = backend.health(devices)
        assert set(health) == {device.id for device in devices}
        assert all(isinstance(healthy, bool) for healthy in health.values())

    # --- fit, score, allocate -----------------------------------------------------------------

    @_RANDOM
    @given(data=st.data())
    def test_fit_never_overcommits(
        self, backend: DeviceBackend, devices: list[DeviceInfo], data: st.DataObject
    ) -> None:
        if not devices:
            pytest.skip("the backend discovered no device")
        usage = []
        for info in devices:
            device = DeviceUsage.from_info(info)
            usage.append(
                attrs.evolve(
                    device,
                    used=data.draw(st.integers(0, device.count), label="used"),
                    usedmem=data.draw(st.integers(0, device.totalmem), label="usedmem"),
                    usedcores=data.draw(st.integers(0, device.totalcore), label="usedcores"),
                    health=data.draw(st.booleans(), label="health") and device.health,
                )
            )
        biggest = max(device.totalmem for device in usage)
        request = DeviceRequest(
            nums=data.draw(st.integers(1, len(usage) + 1), label="nums"),
            type=backend.device_type,
            memreq=data.draw(st.integers(0, biggest + 1), label="memreq"),
            mem_percentage_req=data.draw(st.sampled_from([MEM_PERCENTAGE_UNSET, 1, 50, 100]), label="pct"),
            coresreq=data.draw(st.integers(0, 120), label="cores"),
        )
        assert_fit_within_capacity(backend, request, usage)

    def _one_device(self, backend: DeviceBackend, devices: list[DeviceInfo]) -> FitResult:
        usage = [DeviceUsage.from_info(device) for device in devices if device.health]
        if not usage:
            pytest.skip("the backend discovered no healthy device")
        request = DeviceRequest(nums=1, type=backend.device_type, memreq=1)
        result = backend.fit(request, usage, FitContext())
        assert result.ok, f"one device with 1 MiB did not fit an idle node: {dict(result.reasons)}"
        return result

    def test_one_device_fits_an_idle_node_and_allocates(
        self, backend: DeviceBackend, devices: list[DeviceInfo]
    ) -> None:
        result = self._one_device(backend, devices)
        container = make_container(limits={backend.resource_names.count: 1})
        pod = PodView.from_object(make_pod(containers=[container]))
        allocation = backend.allocate(result.devices, pod.containers[0], pod)
        assert_allocation_well_formed(allocation)

    def test_fit_rules_serve_the_backends_type(self, backend: DeviceBackend) -> None:
        rules = backend.fit_rules(FitContext())
        assert isinstance(rules, FitRules), rules
        assert rules.request_type == backend.device_type

    def test_filter_annotations_are_well_formed(
        self, backend: DeviceBackend, devices: list[DeviceInfo]
    ) -> None:
        result = self._one_device(backend, devices)
        pod = PodView.from_object(
            make_pod(containers=[make_container(limits={backend.resource_names.count: 1})])
        )
        written = backend.filter_annotations((result.devices,), pod, _NOW)
        assert_annotations_well_formed(written, "filter_annotations")
        clashing = set(written) & {backend.keys.to_allocate, backend.keys.allocated}
        assert not clashing, f"filter_annotations must not write the core's device keys: {clashing}"

    def test_bind_node_annotations_are_released_again(self, backend: DeviceBackend) -> None:
        released = backend.released_node_annotations
        assert isinstance(released, tuple), released
        assert_annotations_well_formed(dict.fromkeys(released, ""), "released_node_annotations")
        written = backend.bind_node_annotations({}, _NOW)
        assert_annotations_well_formed(written, "bind_node_annotations")
        assert set(written) <= set(released), (
            f"bind_node_annotations writes {sorted(set(written) - set(released))}, "
            "which released_node_annotations does not list: a failed bind would leave them behind"
        )

    def test_node_score_is_a_finite_number(self, backend: DeviceBackend, devices: list[DeviceInfo]) -> None:
        usage = [DeviceUsage.from_info(device) for device in devices]
        score = backend.score_node(usage, (), FitContext())
        assert isinstance(score, int | float)
        assert math.isfinite(score)
