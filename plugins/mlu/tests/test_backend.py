"""The MLU backend against HAMi v2.10's MLU rules (``specs/hami-wire.md`` 2.4, 6.2)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import attrs
import pytest
from hami_backend_mlu import resources
from hami_backend_mlu.backend import MluBackend
from hami_backend_mlu.settings import MluSettings

from hami_core.sdk import CARD_UUID_MISMATCH
from hami_core.sdk import BackendError
from hami_core.sdk import ContainerDevice
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceSpec
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from hami_core.sdk import LockError
from hami_core.sdk import PodView
from hami_core.sdk import ResourceNames
from hami_core.sdk import encode_pod_devices
from hami_core.testing import admit
from hami_core.testing import make_container
from hami_core.testing import make_pod

COUNT, MEMORY, CORES = "cambricon.com/vmlu", "cambricon.com/mlu.smlu.vmemory", "cambricon.com/mlu.smlu.vcore"
NOW = datetime(2026, 8, 1, 6, 0, tzinfo=UTC)
POD = PodView.from_object(make_pod())


@pytest.fixture
def backend() -> MluBackend:
    return MluBackend(MluSettings(fake="2xMLU370"))


def view(limits: dict[str, str | int]) -> ContainerView:
    return ContainerView.from_object(make_container(limits=limits))


def test_keys_and_resources() -> None:
    backend = MluBackend()
    assert attrs.astuple(backend.keys) == (
        "hami.io/node-mlu-register",
        "hami.io/node-handshake-mlu",
        "hami.io/cambricon-mlu-devices-to-allocate",
        "hami.io/cambricon-mlu-devices-allocated",
    )
    assert backend.resource_names.all() == (COUNT, MEMORY, CORES)


# --- requests (cambricon device_test.go, hami-wire.md 2.4) --------------------------------------


def test_hamis_request_example() -> None:
    # HAMi's test counts cambricon.com/mlu (its flag default); the chart renames it vmlu.
    backend = MluBackend(MluSettings(resource_names=ResourceNames("cambricon.com/mlu", MEMORY, cores=CORES)))
    assert backend.parse_request(view({"cambricon.com/mlu": 1, MEMORY: 1000, CORES: 2})) == DeviceRequest(
        1, "MLU", memreq=256000, mem_percentage_req=0, coresreq=2
    )
    assert backend.parse_request(view({"cambricon.com/mlu": 1, MEMORY: 1000})) == DeviceRequest(
        1, "MLU", memreq=256000, mem_percentage_req=0, coresreq=100
    )
    assert backend.parse_request(view({"cambricon.com/mlu": 1})) == DeviceRequest(
        1, "MLU", memreq=0, mem_percentage_req=100, coresreq=100
    )


def test_admission_reports_the_count_limit_only() -> None:
    backend = MluBackend()
    assert backend.mutate_container(view({COUNT: 1}), POD).has_resource
    assert backend.mutate_container(view({COUNT: 1}), POD).container is None
    assert not backend.mutate_container(view({MEMORY: 4}), POD).has_resource


# --- node devices from capacity -----------------------------------------------------------------


def test_a_node_without_register_annotation_gets_devices_from_capacity() -> None:
    devices = MluBackend().capacity_devices("mlu-0", {CORES: "200", MEMORY: "192", "cpu": "16"})
    assert [device.id for device in devices] == ["mlu-0-cambricon-mlu-0", "mlu-0-cambricon-mlu-1"]
    assert MluBackend().node_devices({}) == []


def test_a_registered_node_reads_the_register_annotation(backend: MluBackend) -> None:
    devices = backend.discover("mlu-0")
    assert backend.node_devices({resources.KEYS.register: backend.encode_node_devices(devices)}) == devices


# --- fit and the annotations the scheduler writes ------------------------------------------------


def usage(backend: MluBackend) -> list[DeviceUsage]:
    return [DeviceUsage.from_info(device) for device in backend.discover("mlu-0")]


def test_uuid_filters_pick_or_skip_cards(backend: MluBackend) -> None:
    request = DeviceRequest(1, "MLU", memreq=4096, mem_percentage_req=0, coresreq=10)
    picked = backend.fit(request, usage(backend), FitContext({resources.USE_UUID: "mlu-0-cambricon-mlu-1"}))
    assert [d.uuid for d in picked.devices] == ["mlu-0-cambricon-mlu-1"]
    refused = backend.fit(
        request,
        usage(backend),
        FitContext({resources.NOUSE_UUID: "mlu-0-cambricon-mlu-0,mlu-0-cambricon-mlu-1"}),
    )
    assert not refused.ok
    assert refused.reasons == {CARD_UUID_MISMATCH: 2}


def test_patch_annotations_example_of_hami() -> None:
    # cambricon device_test.go Test_PatchAnnotations "exist device".
    devices = ((ContainerDevice("device-0", "MLU", 256000, 1, idx=0),),)
    assert encode_pod_devices(devices) == "device-0,MLU,256000,1:;"
    assert MluBackend().filter_annotations(devices, POD, NOW) == {
        "CAMBRICON_DSMLU_ASSIGNED": "false",
        "CAMBRICON_DSMLU_PROFILE": "0_1_1000",
    }


def test_profile_comes_from_the_first_container_with_a_device() -> None:
    devices = ((), (ContainerDevice("n-cambricon-mlu-1", "MLU", 2048, 25),))
    assert MluBackend().filter_annotations(devices, POD, NOW)[resources.DSMLU_PROFILE] == "1_25_8"
    assert MluBackend().filter_annotations(((), ()), POD, NOW) == {}


# --- allocate ----------------------------------------------------------------------------------


def test_allocate_gives_the_cards_and_split_env(backend: MluBackend) -> None:
    backend.discover("mlu-0")
    pod = PodView.from_object(make_pod(containers=[make_container(limits={COUNT: 1})]))
    given = backend.allocate(
        (ContainerDevice("mlu-0-cambricon-mlu-1", "MLU", 4096, 10),), pod.containers[0], pod
    )
    assert given.envs == {
        "CAMBRICON_SPLIT_ENABLE": "1",
        "CAMBRICON_SPLIT_VISIBLE_DEVICES": "1",
        "CAMBRICON_SPLIT_MEMS": "4096",
    }
    assert given.devices == (
        DeviceSpec("/dev/cambricon_ctl", "/dev/cambricon_ctl", "rw"),
        DeviceSpec("/dev/cambricon_dev1", "/dev/cambricon_dev1", "rw"),
    )


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ((), "no MLU to allocate"),
        ((ContainerDevice("DCU-0", "DCU", 1, 1),), "not an MLU device"),
        ((ContainerDevice("mlu-0-cambricon-mlu-5", "MLU", 1, 1),), "MLU 5 is not on this node"),
        ((ContainerDevice("bogus", "MLU", 1, 1),), "invalid MLU device id"),
    ],
)
def test_allocate_refuses_what_it_cannot_hand_out(
    backend: MluBackend, devices: tuple[ContainerDevice, ...], message: str
) -> None:
    pod = PodView.from_object(make_pod())
    with pytest.raises(BackendError, match=message):
        backend.allocate(devices, pod.containers[0], pod)


def test_the_webhook_only_hands_the_pod_to_hami() -> None:
    pod = make_pod(
        containers=[make_container(limits={COUNT: 1, MEMORY: 8})], scheduler_name="default-scheduler"
    )
    admission = admit(pod, MluBackend())
    assert admission.allowed
    assert admission.pod == {**pod, "spec": {**pod["spec"], "schedulerName": "hami-scheduler"}}


# --- the dsmlu lock (HAMi's MLU LockNode) -------------------------------------------------------


def test_bind_sets_the_dsmlu_lock_to_the_bind_time() -> None:
    assert MluBackend().bind_node_annotations({}, NOW) == {"cambricon.com/dsmlu.lock": "2026-08-01T06:00:00Z"}
    assert MluBackend().released_node_annotations == ("cambricon.com/dsmlu.lock",)


def test_a_lock_younger_than_two_minutes_refuses_the_bind() -> None:
    held = {"cambricon.com/dsmlu.lock": "2026-08-01T05:58:30Z"}
    with pytest.raises(LockError, match="locked within 2 minutes"):
        MluBackend().bind_node_annotations(held, NOW)


@pytest.mark.parametrize("value", ["2026-08-01T05:57:59Z", "2026-08-01T13:57:00+08:00", "garbage"])
def test_an_expired_or_unreadable_lock_is_taken_over(value: str) -> None:
    taken = MluBackend().bind_node_annotations({"cambricon.com/dsmlu.lock": value}, NOW)
    assert taken == {"cambricon.com/dsmlu.lock": "2026-08-01T06:00:00Z"}
