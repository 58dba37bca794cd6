"""The DCU backend against HAMi v2.10's DCU rules (``specs/hami-wire.md`` 1.4.2, 2.4, 6.3)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hami_backend_dcu import isolation
from hami_backend_dcu import resources
from hami_backend_dcu.backend import DcuBackend
from hami_backend_dcu.settings import DcuSettings

from hami_core.sdk import CARD_TYPE_MISMATCH
from hami_core.sdk import CARD_UUID_MISMATCH
from hami_core.sdk import BackendError
from hami_core.sdk import CodecError
from hami_core.sdk import ContainerDevice
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceInfo
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceSpec
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from hami_core.sdk import Mount
from hami_core.sdk import PodView
from hami_core.sdk import encode_pod_devices
from hami_core.testing import admit
from hami_core.testing import make_container
from hami_core.testing import make_pod

COUNT, MEMORY, CORES = "hygon.com/dcunum", "hygon.com/dcumem", "hygon.com/dcucores"


@pytest.fixture
def settings(tmp_path: Path) -> DcuSettings:
    return DcuSettings(fake="2xZ100L", vdev_dir=str(tmp_path / "vdev"))


@pytest.fixture
def backend(settings: DcuSettings) -> DcuBackend:
    return DcuBackend(settings)


def view(limits: dict[str, str | int]) -> ContainerView:
    return ContainerView.from_object(make_container(limits=limits))


def test_keys_and_resources_are_hamis() -> None:
    backend = DcuBackend()
    assert attrs.astuple(backend.keys) == (
        "hami.io/node-dcu-register",
        "hami.io/node-handshake-dcu",
        "hami.io/dcu-devices-to-allocate",
        "hami.io/dcu-devices-allocated",
    )
    assert backend.resource_names.all() == (COUNT, MEMORY, CORES)
    assert backend.device_type == "DCU"


# --- register annotation (hygon device_test.go Test_GetNodeDevices) ------------------------------


def test_the_hygon_register_example_decodes() -> None:
    devices = DcuBackend().node_devices({resources.KEYS.register: "test-0,1,1024,100,DCU,0,true,0,test:"})
    assert devices == [
        DeviceInfo(
            id="test-0",
            index=0,
            count=1,
            devmem=1024,
            devcore=100,
            type="DCU",
            numa=0,
            mode="test",
            health=True,
            device_vendor="dcu",
        )
    ]


@pytest.mark.parametrize(
    "value",
    [
        "test-0,1,1024,100,DCU:",
        '[{"id":"DCU-0","count":4,"devmem":1024,"devcore":100,"type":"DCU","health":true}]',
    ],
)
def test_a_value_hami_cannot_decode_is_refused(value: str) -> None:
    with pytest.raises(CodecError):
        DcuBackend().node_devices({resources.KEYS.register: value})


def test_an_empty_registration_is_no_dcu_found() -> None:
    with pytest.raises(BackendError, match="no DCU found"):
        DcuBackend().node_devices({resources.KEYS.register: ":"})


def test_discovered_devices_register_in_the_colon_form(backend: DcuBackend) -> None:
    assert backend.encode_node_devices(backend.discover("dcu-node")) == (
        "DCU-0,4,32752,100,DCU-Z100L,0,true,0,hami-core:DCU-1,4,32752,100,DCU-Z100L,0,true,1,hami-core:"
    )


# --- requests (hami-wire.md 2.4) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({COUNT: 1}, DeviceRequest(1, "DCU", memreq=0, mem_percentage_req=100, coresreq=100)),
        (
            {COUNT: 1, MEMORY: 2000, CORES: 60},
            DeviceRequest(1, "DCU", memreq=2000, mem_percentage_req=0, coresreq=60),
        ),
        ({COUNT: 2, CORES: 0}, DeviceRequest(2, "DCU", memreq=0, mem_percentage_req=100, coresreq=0)),
    ],
)
def test_requests_follow_hamis_dcu_rules(limits: dict[str, str | int], expected: DeviceRequest) -> None:
    assert DcuBackend().parse_request(view(limits)) == expected


def test_memory_factor_multiplies_dcumem() -> None:
    backend = DcuBackend(DcuSettings(memory_factor=2))
    request = backend.parse_request(view({COUNT: 1, MEMORY: 1000}))
    assert request is not None
    assert request.memreq == 2000


def test_no_count_is_no_request_and_no_resource() -> None:
    container = view({MEMORY: 2000})
    assert DcuBackend().parse_request(container) is None
    assert not DcuBackend().mutate_container(container, PodView.from_object(make_pod())).has_resource


def test_admission_reports_the_count_limit_and_changes_nothing() -> None:
    result = DcuBackend().mutate_container(view({COUNT: 1}), PodView.from_object(make_pod()))
    assert result.has_resource
    assert result.container is None


# --- fit: type and UUID filters ----------------------------------------------------------------


def usage(backend: DcuBackend) -> list[DeviceUsage]:
    return [DeviceUsage.from_info(device) for device in backend.discover("dcu-node")]


@pytest.mark.parametrize(
    ("annotations", "fits"),
    [
        ({}, True),
        ({resources.USE_TYPE: "z100"}, True),
        ({resources.USE_TYPE: "K100,BW"}, False),
        ({resources.NOUSE_TYPE: "Z100L"}, False),
        ({resources.USE_UUID: "DCU-1"}, True),
        ({resources.NOUSE_UUID: "DCU-0, DCU-1"}, False),
    ],
)
def test_type_and_uuid_annotations_filter_devices(
    backend: DcuBackend, annotations: dict[str, str], fits: bool
) -> None:
    result = backend.fit(
        DeviceRequest(1, "DCU", memreq=1000, coresreq=10), usage(backend), FitContext(annotations)
    )
    assert result.ok is fits
    if not fits:
        assert set(result.reasons) <= {CARD_TYPE_MISMATCH, CARD_UUID_MISMATCH}


def test_use_uuid_picks_that_card(backend: DcuBackend) -> None:
    result = backend.fit(
        DeviceRequest(1, "DCU", memreq=2000, mem_percentage_req=0, coresreq=60),
        usage(backend),
        FitContext({resources.USE_UUID: "DCU-1"}),
    )
    assert [device.uuid for device in result.devices] == ["DCU-1"]
    # The pod annotation the scheduler writes to both DCU keys.
    assert encode_pod_devices([result.devices]) == "DCU-1,DCU,2000,60:;"


def test_default_cores_make_a_card_exclusive(backend: DcuBackend) -> None:
    devices = usage(backend)
    busy = [attrs.evolve(device, used=1, usedmem=1000, usedcores=10) for device in devices]
    result = backend.fit(DeviceRequest(1, "DCU", mem_percentage_req=100, coresreq=100), busy, FitContext())
    assert not result.ok


# --- allocate: device nodes and virtual DCUs ---------------------------------------------------


def pod_view(name: str = "p") -> PodView:
    return PodView.from_object(make_pod(name, containers=[make_container("main", limits={COUNT: 1})]))


def test_a_share_of_one_card_gets_a_virtual_dcu(backend: DcuBackend, tmp_path: Path) -> None:
    backend.discover("dcu-node")
    pod = pod_view()
    given = backend.allocate((ContainerDevice("DCU-1", "DCU", 2000, 60),), pod.containers[0], pod)
    assert given.devices == (
        DeviceSpec("/dev/kfd", "/dev/kfd", "rwm"),
        DeviceSpec("/dev/mkfd", "/dev/mkfd", "rwm"),
        DeviceSpec("/dev/dri/card1", "/dev/dri/card1", "rw"),
        DeviceSpec("/dev/dri/renderD129", "/dev/dri/renderD129", "rw"),
    )
    directory = tmp_path / "vdev" / f"{pod.uid}_main_1_0"
    assert given.mounts == (
        Mount("/etc/vdev/docker/", str(directory), read_only=False),
        Mount("/opt/hygondriver", "/opt/hygondriver", read_only=False),
        Mount("/opt/hyhal", "/opt/hyhal", read_only=False),
    )
    assert (directory / "vdev0.conf").read_text() == (
        "PciBusId: 0000:1b:00.0\ncu_mask: 0xfffffffff\ncu_count: 36\nmem: 2000 MiB\n"
        "device_id: 1\nvdev_id: 0\nenable: 1\n"
    )


def test_two_shares_of_a_card_get_distinct_vdevs_and_compute_units(backend: DcuBackend) -> None:
    backend.discover("dcu-node")
    first, second = pod_view("a"), pod_view("b")
    backend.allocate((ContainerDevice("DCU-0", "DCU", 1000, 50),), first.containers[0], first)
    backend.allocate((ContainerDevice("DCU-0", "DCU", 1000, 50),), second.containers[0], second)
    vdevs = isolation.VdevStore(Path(backend.settings.vdev_dir)).existing()
    assert sorted(vdev.vdev_index for vdev in vdevs) == [0, 1]
    assert vdevs[0].cu_mask & vdevs[1].cu_mask == 0
    assert {vdev.cu_count for vdev in vdevs} == {30}


def test_a_whole_card_and_several_cards_get_no_virtual_dcu(backend: DcuBackend) -> None:
    backend.discover("dcu-node")
    pod = pod_view()
    whole = backend.allocate((ContainerDevice("DCU-0", "DCU", 32752, 100),), pod.containers[0], pod)
    two = backend.allocate(
        (ContainerDevice("DCU-0", "DCU", 1000, 10), ContainerDevice("DCU-1", "DCU", 1000, 10)),
        pod.containers[0],
        pod,
    )
    assert whole.mounts == two.mounts == ()
    assert len(two.devices) == 6
    assert not Path(backend.settings.vdev_dir).exists()


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ((), "no DCU to allocate"),
        ((ContainerDevice("GPU-1", "NVIDIA", 1, 1),), "not a DCU device"),
        ((ContainerDevice("DCU-9", "DCU", 1, 1),), "DCU 9 is not on this node"),
        ((ContainerDevice("DCU-x", "DCU", 1, 1),), "invalid DCU device id"),
    ],
)
def test_allocate_refuses_what_it_cannot_hand_out(
    backend: DcuBackend, devices: tuple[ContainerDevice, ...], message: str
) -> None:
    pod = pod_view()
    with pytest.raises(BackendError, match=message):
        backend.allocate(devices, pod.containers[0], pod)


def test_a_malformed_vdev_configuration_is_an_error(backend: DcuBackend) -> None:
    backend.discover("dcu-node")
    stray = Path(backend.settings.vdev_dir) / "x"
    stray.mkdir(parents=True)
    (stray / "vdev0.conf").write_text("garbage\n")
    pod = pod_view()
    with pytest.raises(BackendError, match="malformed virtual DCU"):
        backend.allocate((ContainerDevice("DCU-0", "DCU", 1000, 10),), pod.containers[0], pod)


def test_the_webhook_only_hands_the_pod_to_hami() -> None:
    pod = make_pod(
        containers=[make_container(limits={COUNT: 1, MEMORY: 2000})], scheduler_name="default-scheduler"
    )
    admission = admit(pod, DcuBackend())
    assert admission.allowed
    assert admission.pod == {**pod, "spec": {**pod["spec"], "schedulerName": "hami-scheduler"}}
