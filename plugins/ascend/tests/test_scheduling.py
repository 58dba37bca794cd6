"""Ascend registration, fit, node score and pod annotations against HAMi v2.10 (``specs/hami-wire.md`` 6.1)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import attrs
import pytest
from hami_backend_ascend import resources
from hami_backend_ascend.backend import AscendBackend
from hami_backend_ascend.settings import AscendSettings

from hami_core.sdk import ALLOCATED_CARDS_INSUFFICIENT_REQUEST
from hami_core.sdk import CARD_TIME_SLICING_EXHAUSTED
from hami_core.sdk import CARD_UUID_MISMATCH
from hami_core.sdk import MODE_NOT_FIT
from hami_core.sdk import BackendError
from hami_core.sdk import ContainerDevice
from hami_core.sdk import DeviceRequest
from hami_core.sdk import DeviceUsage
from hami_core.sdk import FitContext
from hami_core.sdk import PodView
from hami_core.sdk import encode_pod_devices
from hami_core.testing import make_pod

NOW = datetime(2026, 8, 1, 6, 0, tzinfo=UTC)
SOFT = {"huawei.com/vnpu-mode": "hami-core"}


def backend(name: str, fake: str = "8x910B3", **changes: object) -> AscendBackend:
    settings = AscendSettings.for_chip(resources.CHIPS_BY_NAME[name])
    return AscendBackend(attrs.evolve(settings, fake=fake, **changes))


def usage(b: AscendBackend) -> list[DeviceUsage]:
    return [DeviceUsage.from_info(device) for device in b.discover("npu-node")]


# --- registration -------------------------------------------------------------------------------


def test_hamis_register_test_value_decodes_case_insensitively() -> None:
    value = '[{"ID":"GPU-0","Count":4,"Devmem":8738,"Devcore":8,"Type":"huawei.com/Ascend910","Numa":0,"Health":true}]'
    (device,) = backend("ascend910a").node_devices({"hami.io/node-register-Ascend910A": value})
    assert (device.id, device.count, device.devmem, device.devcore, device.health) == (
        "GPU-0",
        4,
        8738,
        8,
        True,
    )
    assert device.device_vendor == "ascend910a"


def test_registration_carries_network_ids_as_the_ascend_plugin_writes_them() -> None:
    b = backend("ascend910b3", network_group_size=4)
    devices = b.discover("npu-node")
    value = b.encode_node_devices(devices[:2] + devices[4:5])
    assert value == (
        '[{"id":"Ascend910B3-0","count":4,"devmem":65536,"devcore":20,"type":"Ascend910B3","mode":"hami-core",'
        '"health":true,"custominfo":{"NetworkID":0}},'
        '{"id":"Ascend910B3-1","index":1,"count":4,"devmem":65536,"devcore":20,"type":"Ascend910B3",'
        '"mode":"hami-core","health":true,"custominfo":{"NetworkID":0}},'
        '{"id":"Ascend910B3-4","index":4,"count":4,"devmem":65536,"devcore":20,"type":"Ascend910B3",'
        '"mode":"hami-core","health":true,"custominfo":{"NetworkID":1}}]'
    )
    decoded = b.node_devices({b.keys.register: value})
    assert [device.custom_info for device in decoded] == [
        {"NetworkID": 0.0},
        {"NetworkID": 0.0},
        {"NetworkID": 1.0},
    ]


# --- fit ----------------------------------------------------------------------------------------


def test_template_shares_fill_an_npu_by_memory() -> None:
    b = backend("ascend910b3")
    devices = usage(b)[:1]
    share = DeviceRequest(1, "Ascend910B3", memreq=16384, mem_percentage_req=0)
    for _ in range(4):
        result = b.fit(share, devices, FitContext())
        assert result.ok
        devices = [devices[0].add(result.devices[0])]
    refused = b.fit(share, devices, FitContext())
    assert refused.reasons == {CARD_TIME_SLICING_EXHAUSTED: 1}


def test_uuid_filters() -> None:
    b = backend("ascend910b3")
    picked = b.fit(
        DeviceRequest(1, "Ascend910B3", mem_percentage_req=100),
        usage(b),
        FitContext({"hami.io/use-Ascend910B3-uuid": "Ascend910B3-5"}),
    )
    assert [d.uuid for d in picked.devices] == ["Ascend910B3-5"]
    none = b.fit(
        DeviceRequest(1, "Ascend910B3", mem_percentage_req=100),
        usage(b)[:2],
        FitContext({"hami.io/no-use-Ascend910B3-uuid": "Ascend910B3-0,Ascend910B3-1"}),
    )
    assert none.reasons == {CARD_UUID_MISMATCH: 2}


def test_soft_split_needs_node_support() -> None:
    b = backend("ascend910b3")
    request = DeviceRequest(1, "Ascend910B3", memreq=8192, mem_percentage_req=0, coresreq=50)
    refused = b.fit(request, usage(b), FitContext(SOFT))
    assert (refused.ok, refused.reasons, refused.considered) == (False, {MODE_NOT_FIT: 1}, 8)
    allowed = b.fit(request, usage(b), FitContext(SOFT, {"hami-vnpu-core": "true"}))
    assert allowed.ok
    # In soft-split mode cores count against 100 per NPU, not the 20 AI cores.
    assert allowed.devices[0].usedcores == 50
    globally = backend("ascend910b3", hami_vnpu_core=True)
    assert globally.fit(request, usage(globally), FitContext(SOFT)).ok
    assert not globally.fit(request, usage(globally), FitContext(SOFT, {"hami-vnpu-core": "false"})).ok


def test_network_topology_takes_the_network_with_most_candidates() -> None:
    b = backend("ascend910b3", network_group_size=4)
    devices = usage(b)
    # Network 0 (NPUs 0-3) has two busy NPUs, network 1 (4-7) none: two NPUs come from network 1.
    busy = [attrs.evolve(d, used=4, usedmem=65536) if d.index in (0, 1) else d for d in devices]
    result = b.fit(DeviceRequest(2, "Ascend910B3", mem_percentage_req=100), busy, FitContext())
    assert result.ok
    assert {d.uuid for d in result.devices} <= {f"Ascend910B3-{i}" for i in range(4, 8)}
    assert b.score_node(busy, (result.devices,), FitContext()) == 10.0
    split = (busy[2].id, busy[4].id)
    mixed = tuple(ContainerDevice(uuid, "Ascend910B3", 65536, 0) for uuid in split)
    assert b.score_node(busy, (mixed,), FitContext()) == 5.0


def test_no_network_ids_no_topology_and_no_score() -> None:
    b = backend("ascend910b3")
    result = b.fit(DeviceRequest(2, "Ascend910B3", mem_percentage_req=100), usage(b), FitContext())
    assert result.ok
    assert len(result.devices) == 2
    assert b.score_node(usage(b), (result.devices,), FitContext()) == 0.0
    assert (
        backend("ascend310p").score_node(usage(backend("ascend310p")), (result.devices,), FitContext()) == 0.0
    )


def test_910c_takes_whole_modules_only() -> None:
    b = backend("ascend910c", fake="4x910C")
    devices = usage(b)
    # Module 0 = NPUs 0 and 1, module 1 = NPUs 2 and 3; NPU 1 is busy.
    busy = [attrs.evolve(d, used=d.count) if d.index == 1 else d for d in devices]
    two = b.fit(DeviceRequest(2, "Ascend910C", mem_percentage_req=100), busy, FitContext())
    assert [d.uuid for d in two.devices] == ["Ascend910C-2", "Ascend910C-3"]
    four = b.fit(DeviceRequest(4, "Ascend910C", mem_percentage_req=100), busy, FitContext())
    assert not four.ok
    assert four.reasons[ALLOCATED_CARDS_INSUFFICIENT_REQUEST] == 3


# --- the pod annotations the scheduler writes (Test_PatchAnnotations) -----------------------------


def test_runtime_annotation_of_a_template_share() -> None:
    b = AscendBackend(AscendSettings.for_chip(resources.CHIPS_BY_NAME["ascend910a"]))
    devices = ((ContainerDevice("device-0", "Ascend", 8738, 1),),)
    assert encode_pod_devices(devices) == "device-0,Ascend,8738,1:;"
    assert b.filter_annotations(devices, PodView.from_object(make_pod()), NOW) == {
        "predicate-time": str(int(NOW.timestamp())),
        "huawei.com/Ascend910A": '[{"UUID":"device-0","temp":"vir08","memory":8738,"core":1}]',
    }


def test_runtime_annotation_in_soft_split_mode_has_no_template() -> None:
    b = backend("ascend910b3")
    devices = ((ContainerDevice("ascend-uuid-1", "Ascend", 8192, 5),),)
    pod = PodView.from_object(make_pod(annotations=SOFT))
    assert b.filter_annotations(devices, pod, NOW)["huawei.com/Ascend910B3"] == (
        '[{"UUID":"ascend-uuid-1","memory":8192,"core":5}]'
    )


def test_runtime_annotation_omits_zero_cores_and_whole_npu_templates() -> None:
    a = AscendBackend(AscendSettings.for_chip(resources.CHIPS_BY_NAME["ascend910a"]))
    pod = PodView.from_object(make_pod())
    zero = a.filter_annotations(((ContainerDevice("d", "Ascend910A", 8738, 0),),), pod, NOW)
    assert zero["huawei.com/Ascend910A"] == '[{"UUID":"d","temp":"vir08","memory":8738}]'
    whole = a.filter_annotations(((), (ContainerDevice("d", "Ascend910A", 32768, 0),)), pod, NOW)
    assert whole["huawei.com/Ascend910A"] == '[{"UUID":"d","memory":32768}]'


# --- allocate -----------------------------------------------------------------------------------


def test_allocate_creates_a_vnpu_for_a_template_share_and_hands_out_its_id() -> None:
    b = backend("ascend910b3")
    b.discover("npu-node")
    pod = PodView.from_object(make_pod())
    share = b.allocate((ContainerDevice("Ascend910B3-2", "Ascend910B3", 16384, 0),), pod.containers[0], pod)
    again = b.allocate((ContainerDevice("Ascend910B3-2", "Ascend910B3", 32768, 0),), pod.containers[0], pod)
    assert share.envs == {"ASCEND_VISIBLE_DEVICES": "132"}
    assert again.envs == {"ASCEND_VISIBLE_DEVICES": "133"}
    whole = b.allocate(
        (
            ContainerDevice("Ascend910B3-0", "Ascend910B3", 65536, 0),
            ContainerDevice("Ascend910B3-7", "Ascend910B3", 65536, 0),
        ),
        pod.containers[0],
        pod,
    )
    assert whole.envs == {"ASCEND_VISIBLE_DEVICES": "0,7"}


@pytest.mark.parametrize(
    ("uuid", "kind", "message"),
    [
        ("Ascend910B3-9", "Ascend910B3", "NPU 9 is not on this node"),
        ("GPU-0", "Ascend910B3", "invalid Ascend910B3 device id"),
        ("Ascend910B3-1", "NVIDIA", "is not a Ascend910B3 NPU"),
    ],
)
def test_allocate_refuses_what_it_cannot_hand_out(uuid: str, kind: str, message: str) -> None:
    b = backend("ascend910b3")
    pod = PodView.from_object(make_pod())
    with pytest.raises(BackendError, match=message):
        b.allocate((ContainerDevice(uuid, kind, 1, 0),), pod.containers[0], pod)
