"""The wire formats of specs/hami-wire.md section 1.4, checked on every example the spec gives."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import attrs
import pytest

from hami_core import codec
from hami_core.devices import MODE_HAMI_CORE
from hami_core.devices import ContainerDevice
from hami_core.devices import DeviceInfo
from hami_core.devices import MigPlacement
from hami_core.devices import MigProfile
from hami_core.devices import ScoringWeights
from hami_core.errors import CodecError

P4 = "GPU-ebe7c3f7-303d-558d-435e-99a160631fe4"
V100_A = "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec"
V100_B = "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448"


def dev(uuid: str, type_: str, mem: int, cores: int) -> ContainerDevice:
    return ContainerDevice(uuid=uuid, type=type_, usedmem=mem, usedcores=cores)


# --- keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constant", "spelling"),
    [
        pytest.param(codec.VGPU_NODE, "hami.io/vgpu-node", id="vgpu-node"),
        pytest.param(codec.VGPU_TIME, "hami.io/vgpu-time", id="vgpu-time"),
        pytest.param(codec.BIND_PHASE, "hami.io/bind-phase", id="bind-phase"),
        pytest.param(codec.BIND_TIME, "hami.io/bind-time", id="bind-time"),
        pytest.param(codec.NODE_LOCK, "hami.io/mutex.lock", id="mutex-lock"),
        pytest.param(codec.NODE_HANDSHAKE, "hami.io/node-handshake", id="handshake"),
        pytest.param(codec.DEVICE_CORDON, "hami.io/device-cordon", id="cordon"),
        pytest.param(codec.NODE_SCHEDULER_POLICY, "hami.io/node-scheduler-policy", id="node-policy"),
        pytest.param(codec.GPU_SCHEDULER_POLICY, "hami.io/gpu-scheduler-policy", id="gpu-policy"),
        pytest.param(codec.DEVICE_SCORING_WEIGHTS, "hami.io/device-scoring-weights", id="weights"),
        pytest.param(codec.WEBHOOK_LABEL, "hami.io/webhook", id="webhook-label"),
        pytest.param(codec.SCHEDULER_ROLE_LABEL, "hami.io/scheduler-role", id="role-label"),
        pytest.param(codec.BIND_PHASE_ALLOCATING, "allocating", id="phase-allocating"),
        pytest.param(codec.BIND_PHASE_FAILED, "failed", id="phase-failed"),
        pytest.param(codec.BIND_PHASE_SUCCESS, "success", id="phase-success"),
        pytest.param(codec.WEBHOOK_IGNORE, "ignore", id="webhook-ignore"),
        pytest.param(codec.SCHEDULER_ROLE_LEADER, "leader", id="role-leader"),
        pytest.param(codec.SCHEDULER_ROLE_FOLLOWER, "follower", id="role-follower"),
    ],
)
def test_core_keys_are_spelled_as_in_hami(constant: str, spelling: str) -> None:
    assert constant == spelling


@pytest.mark.parametrize(
    ("built", "spelling"),
    [
        pytest.param(codec.node_register_key("nvidia"), "hami.io/node-nvidia-register", id="register"),
        pytest.param(codec.node_handshake_key(), "hami.io/node-handshake", id="handshake-bare"),
        pytest.param(codec.node_handshake_key("dcu"), "hami.io/node-handshake-dcu", id="handshake-suffix"),
        pytest.param(
            codec.devices_to_allocate_key("vgpu"), "hami.io/vgpu-devices-to-allocate", id="to-allocate"
        ),
        pytest.param(codec.devices_allocated_key("vgpu"), "hami.io/vgpu-devices-allocated", id="allocated"),
    ],
)
def test_key_helpers_build_hami_vendor_keys(built: str, spelling: str) -> None:
    assert built == spelling


def test_vendor_keys_for_nvidia_use_the_bare_handshake_and_the_vgpu_word() -> None:
    assert codec.vendor_keys(register_word="nvidia", devices_word="vgpu") == codec.VendorKeys(
        register="hami.io/node-nvidia-register",
        handshake="hami.io/node-handshake",
        to_allocate="hami.io/vgpu-devices-to-allocate",
        allocated="hami.io/vgpu-devices-allocated",
    )


# --- 1.4.1 node registration, JSON form -----------------------------------------------------------


def test_example_1_json_registration_decodes_one_p4() -> None:
    value = (
        '[{"id":"GPU-0","count":5,"devmem":8192,"devcore":100,"type":"NVIDIA-Tesla P4",'
        '"numa":0,"health":true,"index":0}]'
    )
    assert codec.decode_node_devices(value) == [
        DeviceInfo(id="GPU-0", count=5, devmem=8192, devcore=100, type="NVIDIA-Tesla P4", health=True)
    ]


@pytest.mark.parametrize("value", ["[]", "null", " [ ]\n", "null\n"])
def test_example_2_empty_json_registration_is_no_devices_not_an_error(value: str) -> None:
    assert codec.decode_node_devices(value) == []


@pytest.mark.parametrize("trailer", ["", "\n"], ids=["bare", "trailing-newline"])
def test_example_3_two_json_devices_decode_with_zero_numa(trailer: str) -> None:
    value = (
        '[{"index":1,"id":"id-1","count":1,"devmem":1024,"devcore":10,"type":"type","health":true},'
        '{"index":2,"id":"id-2","count":2,"devmem":4096,"devcore":20,"type":"type2","health":false}]'
    )
    assert codec.decode_node_devices(value + trailer) == [
        DeviceInfo(id="id-1", index=1, count=1, devmem=1024, devcore=10, type="type", health=True),
        DeviceInfo(id="id-2", index=2, count=2, devmem=4096, devcore=20, type="type2", health=False),
    ]


def test_example_4_mig_profiles_decode_and_unknown_profile_keys_are_ignored() -> None:
    value = (
        '[{"id":"GPU-0","count":7,"devmem":40960,"devcore":100,"type":"NVIDIA-A100-SXM4-40GB","numa":0,'
        '"health":true,"mode":"mig","migProfiles":[{"name":"1g.5gb","memoryMB":5120,"core":14,'
        '"sliceCount":1,"instanceCount":7,"multiprocessorCount":14,"placements":[{"start":6,"size":1}]}]}]'
    )
    (device,) = codec.decode_node_devices(value)
    assert device.mode == "mig"
    assert device.mig_profiles == (
        MigProfile(name="1g.5gb", memory_mb=5120, core=14, slice_count=1, placements=(MigPlacement(6, 1),)),
    )


def test_example_5_mig_profile_marshals_in_compact_wire_format() -> None:
    profile = MigProfile(
        name="1g.5gb", memory_mb=4864, core=15, slice_count=1, placements=(MigPlacement(6, 1),)
    )
    assert codec.encode_node_devices([DeviceInfo(id="GPU-0", mig_profiles=(profile,))]) == (
        '[{"id":"GPU-0","migProfiles":[{"name":"1g.5gb","memoryMB":4864,"core":15,"sliceCount":1,'
        '"placements":[{"start":6,"size":1}]}]}]'
    )


def test_example_6_marshal_omits_zero_index_numa_and_false_health() -> None:
    devices = [
        DeviceInfo(id="id-1", index=1, count=1, devmem=1024, devcore=10, type="type", numa=0, health=True),
        DeviceInfo(id="id-2", index=2, count=2, devmem=2048, devcore=20, type="type2", numa=1, health=False),
    ]
    assert codec.encode_node_devices(devices) == (
        '[{"id":"id-1","index":1,"count":1,"devmem":1024,"devcore":10,"type":"type","health":true},'
        '{"id":"id-2","index":2,"count":2,"devmem":2048,"devcore":20,"type":"type2","numa":1}]'
    )


def test_example_7_real_plugin_registration_is_reproduced_byte_for_byte() -> None:
    value = (
        f'[{{"id":"{V100_A}","count":10,"devmem":32768,"devcore":100,"type":"NVIDIA-Tesla V100-PCIE-32GB",'
        '"mode":"hami-core","health":true},'
        f'{{"id":"{V100_B}","index":1,"count":10,"devmem":32768,"devcore":100,'
        '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]'
    )
    devices = [
        DeviceInfo(
            id=uuid,
            index=index,
            count=10,
            devmem=32768,
            devcore=100,
            type="NVIDIA-Tesla V100-PCIE-32GB",
            mode=MODE_HAMI_CORE,
            health=True,
        )
        for index, uuid in enumerate((V100_A, V100_B))
    ]
    assert codec.encode_node_devices(devices) == value
    assert codec.decode_node_devices(value) == devices


def test_json_keys_match_case_insensitively_like_the_ascend_test() -> None:
    value = '[{"ID":"GPU-0","Count":4,"Devmem":8738,"Devcore":8,"Type":"huawei.com/Ascend910","Numa":0,"Health":true}]'
    assert codec.decode_node_devices(value) == [
        DeviceInfo(id="GPU-0", count=4, devmem=8738, devcore=8, type="huawei.com/Ascend910", health=True)
    ]


def test_json_key_folding_follows_go_for_the_long_s_and_kelvin_sign() -> None:
    value = '[{"\u212aey":1,"migProfiles":[{"name":"x","placement\u017f":[{"start":2,"size":1}]}]}]'
    (device,) = codec.decode_node_devices(value)
    assert device.mig_profiles[0].placements == (MigPlacement(2, 1),)


def test_absent_json_mode_stays_empty_unlike_the_legacy_default() -> None:
    (device,) = codec.decode_node_devices('[{"id":"GPU-0"}]')
    assert device.mode == ""


def test_a_repeated_json_key_overwrites_but_null_leaves_a_number_alone() -> None:
    (device,) = codec.decode_node_devices('[{"count":1,"count":5,"count":null,"type":"a","TYPE":"b"}]')
    assert (device.count, device.type) == (5, "b")


def test_custominfo_and_devicevendor_are_read_but_never_written() -> None:
    (device,) = codec.decode_node_devices(
        '[{"id":"npu-0","devicevendor":"Ascend","custominfo":{"NetworkID":3,"tags":["a",null]}}]'
    )
    assert device.device_vendor == "Ascend"
    assert device.custom_info == {"NetworkID": 3.0, "tags": ["a", None]}
    assert codec.encode_node_devices([device]) == '[{"id":"npu-0"}]'


def test_deprecated_migtemplate_is_type_checked_and_dropped() -> None:
    (device,) = codec.decode_node_devices(
        '[{"id":"g","migtemplate":[[{"Name":"1g","Core":1,"Memory":5,"Count":7}]]}]'
    )
    assert device == DeviceInfo(id="g")


def test_a_profile_without_placements_is_written_as_go_writes_a_nil_slice() -> None:
    encoded = codec.encode_node_devices([DeviceInfo(id="g", mig_profiles=(MigProfile(name="7g.40gb"),))])
    assert encoded == (
        '[{"id":"g","migProfiles":[{"name":"7g.40gb","memoryMB":0,"core":0,"sliceCount":0,"placements":null}]}]'
    )
    assert codec.decode_node_devices(encoded)[0].mig_profiles == (MigProfile(name="7g.40gb"),)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            '[{"count":"5"}]',
            "json: cannot unmarshal string into Go struct field DeviceInfo.count of type int32",
            id="string-for-int",
        ),
        pytest.param(
            '[{"count":5.0}]',
            "json: cannot unmarshal number 5.0 into Go struct field DeviceInfo.count of type int32",
            id="float-for-int",
        ),
        pytest.param(
            '[{"devmem":2147483648}]',
            "json: cannot unmarshal number 2147483648 into Go struct field DeviceInfo.devmem of type int32",
            id="int32-overflow",
        ),
        pytest.param(
            '[{"index":-1}]',
            "json: cannot unmarshal number -1 into Go struct field DeviceInfo.index of type uint",
            id="negative-uint",
        ),
        pytest.param(
            '[{"numa":9223372036854775808}]',
            "json: cannot unmarshal number 9223372036854775808 into Go struct field DeviceInfo.numa of type int",
            id="int-overflow",
        ),
        pytest.param(
            '[{"health":"true"}]',
            "json: cannot unmarshal string into Go struct field DeviceInfo.health of type bool",
            id="string-for-bool",
        ),
        pytest.param(
            '[{"id":7}]',
            "json: cannot unmarshal number into Go struct field DeviceInfo.id of type string",
            id="number-for-string",
        ),
        pytest.param(
            '[{"migProfiles":{}}]',
            "json: cannot unmarshal object into Go struct field DeviceInfo.migProfiles of type []device.MigProfile",
            id="object-for-list",
        ),
        pytest.param(
            '[{"migProfiles":[{"placements":[{"start":-1}]}]}]',
            "json: cannot unmarshal number -1 into Go struct field MigPlacement.migProfiles.placements.start of type uint32",
            id="nested-placement",
        ),
        pytest.param(
            '[{"custominfo":[]}]',
            "json: cannot unmarshal array into Go struct field DeviceInfo.custominfo of type map[string]interface {}",
            id="array-for-map",
        ),
        pytest.param(
            '["GPU-0"]',
            "json: cannot unmarshal string into Go value of type device.DeviceInfo",
            id="string-device",
        ),
        pytest.param("[null]", "device entry 0 is null", id="null-device"),
    ],
)
def test_json_values_of_the_wrong_type_are_codec_errors(value: str, message: str) -> None:
    with pytest.raises(CodecError) as caught:
        codec.decode_node_devices(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "value", ["[", "[1,]", "[NaN]", "[Infinity]", "[] x", '[{"id":"a\x01"}]', "[" * 5000 + "]" * 5000]
)
def test_malformed_json_is_a_codec_error(value: str) -> None:
    with pytest.raises(CodecError):
        codec.decode_node_devices(value)


def test_json_encoding_escapes_like_go_json_marshal() -> None:
    type_ = 'a<&>b "q" \\ é中\U0001f600 \u2028\u2029 \n\r\t\b\f\x01\x1f\x7f \ud800'
    assert codec.encode_node_devices([DeviceInfo(id="g", type=type_)]) == (
        '[{"id":"g","type":"a\\u003c\\u0026\\u003eb \\"q\\" \\\\ é中\U0001f600 \\u2028\\u2029 '
        '\\n\\r\\t\\b\\f\\u0001\\u001f\x7f \\ufffd"}]'
    )


def test_escaped_json_strings_decode_back_and_lone_surrogates_become_replacement_chars() -> None:
    (device,) = codec.decode_node_devices(
        '[{"id":"\\u003c\\u0026\\u003e\\u2028","type":"\\ud800x\\ud83d\\ude00"}]'
    )
    assert (device.id, device.type) == ("<&>\u2028", "\ufffdx\U0001f600")


@pytest.mark.parametrize(
    "device",
    [
        pytest.param(DeviceInfo(id="g", index=-1), id="negative-index"),
        pytest.param(DeviceInfo(id="g", count=1 << 31), id="count-over-int32"),
        pytest.param(
            DeviceInfo(id="g", mig_profiles=(MigProfile("p", placements=(MigPlacement(-1, 1),)),)),
            id="placement",
        ),
    ],
)
def test_json_encoding_refuses_numbers_go_cannot_hold(device: DeviceInfo) -> None:
    with pytest.raises(CodecError):
        codec.encode_node_devices([device])


# --- 1.4.2 node registration, legacy colon form ---------------------------------------------------

P4_LEGACY = DeviceInfo(
    id=P4,
    index=0,
    count=10,
    devmem=7680,
    devcore=100,
    type="NVIDIA-Tesla P4",
    mode=MODE_HAMI_CORE,
    numa=0,
    health=True,
)


def test_legacy_example_1_seven_fields_default_index_0_and_mode_hami_core() -> None:
    assert codec.decode_node_devices(f"{P4},10,7680,100,NVIDIA-Tesla P4,0,true:") == [P4_LEGACY]


def test_legacy_example_2_nine_fields_carry_index_and_mode() -> None:
    decoded = codec.decode_node_devices(f"{P4},10,7680,100,NVIDIA-Tesla P4,0,true,1,hami-core:")
    assert decoded == [attrs.evolve(P4_LEGACY, index=1)]


def test_legacy_example_3_encoding_writes_nine_fields_and_a_trailing_colon() -> None:
    assert (
        codec.encode_node_devices_legacy([P4_LEGACY])
        == f"{P4},10,7680,100,NVIDIA-Tesla P4,0,true,0,hami-core:"
    )


@pytest.mark.parametrize("value", [":", "::"])
def test_legacy_example_4_bare_separators_decode_to_no_devices(value: str) -> None:
    assert codec.decode_node_devices(value) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("", "node annotation missing device separator", id="empty"),
        pytest.param(",", "node annotation missing device separator", id="comma"),
        pytest.param("a", "node annotation missing device separator", id="word"),
        pytest.param(",:", "unexpected field count 2 in node annotation", id="two-fields"),
        pytest.param("garbage:", 'malformed node annotation segment: "garbage"', id="no-comma"),
        pytest.param(
            f"{P4},10,7680,100,NVIDIA-Tesla P4:", "unexpected field count 5 in node annotation", id="five"
        ),
        pytest.param(
            f"{P4},10,7680,100,NVIDIA-Tesla P4,0,true,-1,hami-core:",
            "index field must not be negative: -1",
            id="neg-index",
        ),
        pytest.param(
            f"{P4},notanint,7680,100,NVIDIA-Tesla P4,0,true:",
            'invalid count field: strconv.ParseInt: parsing "notanint": invalid syntax',
            id="count",
        ),
        pytest.param(
            "g,1,2147483648,100,T,0,true:",
            'invalid memory field: strconv.ParseInt: parsing "2147483648": value out of range',
            id="memory-range",
        ),
        pytest.param(
            "g,1,1,+,T,0,true:",
            'invalid core field: strconv.ParseInt: parsing "+": invalid syntax',
            id="core",
        ),
        pytest.param(
            "g,1,1,1,T,0,yes:",
            'invalid health field: strconv.ParseBool: parsing "yes": invalid syntax',
            id="health",
        ),
        pytest.param(
            "g,1,1,1,T,1.5,true:",
            'invalid numa field: strconv.Atoi: parsing "1.5": invalid syntax',
            id="numa",
        ),
        pytest.param(
            "g,1,1,1,T,0,true,x,m:",
            'invalid index field: strconv.Atoi: parsing "x": invalid syntax',
            id="index",
        ),
        pytest.param(
            "g,1,1,1,T,0,true,99999999999999999999,m:",
            'invalid index field: strconv.Atoi: parsing "99999999999999999999": value out of range',
            id="index-range",
        ),
        pytest.param(
            "g,\t\u00e9\u200b\x7f,1,1,T,0,true:",
            'invalid count field: strconv.ParseInt: parsing "\\té\\u200b\\x7f": invalid syntax',
            id="go-quoting",
        ),
        pytest.param(
            "ok,1,1,1,T,0,true:bad,1,1,1,T,0,maybe:",
            'invalid health field: strconv.ParseBool: parsing "maybe": invalid syntax',
            id="second-segment-fails-all",
        ),
    ],
)
def test_legacy_example_4_and_5_errors_use_hamis_messages(value: str, message: str) -> None:
    with pytest.raises(CodecError) as caught:
        codec.decode_node_devices(value)
    assert str(caught.value) == message


def test_legacy_parse_order_reports_health_before_numa() -> None:
    with pytest.raises(CodecError, match="health"):
        codec.decode_node_devices("g,1,1,1,T,x,maybe:")


def test_legacy_example_6_hygon_device_keeps_its_mode_verbatim() -> None:
    assert codec.decode_node_devices("test-0,1,1024,100,DCU,0,true,0,test:") == [
        DeviceInfo(
            id="test-0",
            count=1,
            devmem=1024,
            devcore=100,
            type="DCU",
            numa=0,
            health=True,
            index=0,
            mode="test",
        )
    ]
    with pytest.raises(CodecError, match="unexpected field count 5"):
        codec.decode_node_devices("test-0,1,1024,100,DCU:")


def test_legacy_example_7_protocol_doc_two_v100s() -> None:
    value = (
        f"{V100_A},10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:"
        f"{V100_B},10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:"
    )
    decoded = codec.decode_node_devices(value)
    assert [d.id for d in decoded] == [V100_A, V100_B]
    assert {(d.count, d.devmem, d.devcore, d.mode, d.health) for d in decoded} == {
        (10, 32768, 100, "hami-core", True)
    }


def test_legacy_decoder_alone_refuses_json() -> None:
    with pytest.raises(CodecError, match="missing device separator"):
        codec.decode_node_devices_legacy("[]")


def test_legacy_encoding_refuses_separators_in_text_fields() -> None:
    with pytest.raises(CodecError, match="separators"):
        codec.encode_node_devices_legacy([DeviceInfo(id="GPU:0")])


# --- 1.4.3 pod devices ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("containers", "encoded"),
    [
        pytest.param([[dev("UUID1", "Type1", 1000, 30)]], "UUID1,Type1,1000,30:;", id="ex1-one-device"),
        pytest.param(
            [[dev("UUID1", "Type1", 1000, 30)], [dev("UUID1", "Type1", 1000, 30)]],
            "UUID1,Type1,1000,30:;UUID1,Type1,1000,30:;",
            id="ex2-two-containers",
        ),
        pytest.param(
            [[dev("UUID1", "Type1", 1000, 30), dev("UUID2", "Type1", 1000, 30)]],
            "UUID1,Type1,1000,30:UUID2,Type1,1000,30:;",
            id="ex3-two-devices",
        ),
        pytest.param([], "", id="ex4-no-containers"),
        pytest.param(
            [
                [dev("GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76", "NVIDIA", 500, 3)],
                [dev(P4, "NVIDIA", 500, 3)],
            ],
            f"GPU-8dcd427f-483b-b48f-d7e5-75fb19a52b76,NVIDIA,500,3:;{P4},NVIDIA,500,3:;",
            id="ex5-test-data",
        ),
        pytest.param(
            [[dev(V100_B, "NVIDIA", 3000, 0)], [dev(V100_B, "NVIDIA", 5000, 0)]],
            f"{V100_B},NVIDIA,3000,0:;{V100_B},NVIDIA,5000,0:;",
            id="ex7-protocol-doc",
        ),
        pytest.param(
            [[], [dev("uuid1", "NVIDIA", 1000, 30)]], ";uuid1,NVIDIA,1000,30:;", id="ex8-first-empty"
        ),
        pytest.param([[dev("device-0", "Ascend", 8738, 1)]], "device-0,Ascend,8738,1:;", id="ex9-ascend"),
    ],
)
def test_pod_devices_encode_and_decode_with_the_trailing_empty_container(
    containers: list[list[ContainerDevice]], encoded: str
) -> None:
    assert codec.encode_pod_devices(containers) == encoded
    assert codec.decode_pod_devices(encoded) == [*containers, []]


def test_pod_devices_example_6_three_fields_is_an_error() -> None:
    with pytest.raises(CodecError) as caught:
        codec.decode_pod_devices("uuid,type,100:;")
    assert (
        str(caught.value) == "pod annotation format error, missing fields, do not use nodeName in task spec"
    )


def test_pod_devices_example_10_erasing_the_only_container_writes_two_empties() -> None:
    containers = codec.decode_pod_devices("GPU-a,NVIDIA,1000,30:;")
    assert containers == [[dev("GPU-a", "NVIDIA", 1000, 30)], []]
    containers[0] = []
    assert codec.encode_pod_devices(containers) == ";;"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "u,t,x,1:;", 'invalid memory field: strconv.ParseInt: parsing "x": invalid syntax', id="memory"
        ),
        pytest.param(
            "u,t,1,2147483648:;",
            'invalid core field: strconv.ParseInt: parsing "2147483648": value out of range',
            id="core",
        ),
        pytest.param(
            "ok,t,1,1:;u,t,1,:;",
            'invalid core field: strconv.ParseInt: parsing "": invalid syntax',
            id="later",
        ),
    ],
)
def test_pod_device_numbers_must_be_int32_with_go_error_text(value: str, message: str) -> None:
    with pytest.raises(CodecError) as caught:
        codec.decode_pod_devices(value)
    assert str(caught.value) == message


def test_pod_device_pieces_without_commas_are_skipped_and_extra_fields_ignored() -> None:
    assert codec.decode_pod_devices("junk:u,t,-5,+7,extra:") == [[dev("u", "t", -5, 7)]]


def test_one_container_encodes_without_the_container_separator() -> None:
    assert (
        codec.encode_container_devices([dev("a", "NVIDIA", 1, 2), dev("b", "NVIDIA", 3, 4)])
        == "a,NVIDIA,1,2:b,NVIDIA,3,4:"
    )
    assert codec.decode_container_devices("") == []


@pytest.mark.parametrize("uuid", ["a,b", "a:b", "a;b"])
def test_pod_device_encoding_refuses_separators_in_the_uuid(uuid: str) -> None:
    with pytest.raises(CodecError, match="separators"):
        codec.encode_pod_devices([[dev(uuid, "NVIDIA", 1, 1)]])


# --- 1.4.4 node lock ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(
            datetime(2026, 8, 1, 6, 0, 0, tzinfo=UTC), "2026-08-01T06:00:00Z,ns,pod-a", id="utc-is-z"
        ),
        pytest.param(
            datetime(2026, 7, 3, 15, 35, 10, 999999, tzinfo=timezone(timedelta(hours=8))),
            "2026-07-03T15:35:10+08:00,ns,pod-a",
            id="offset-seconds-precision",
        ),
        pytest.param(
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
            "2026-01-02T03:04:05-05:30,ns,pod-a",
            id="negative-offset",
        ),
    ],
)
def test_node_lock_is_written_as_rfc3339_namespace_name(when: datetime, expected: str) -> None:
    assert codec.format_node_lock(when, "ns", "pod-a") == expected


def test_node_lock_with_owner_parses() -> None:
    lock = codec.parse_node_lock("2026-08-01T06:00:00Z,ns,pod-a")
    assert lock == codec.NodeLockState(datetime(2026, 8, 1, 6, 0, 0, tzinfo=UTC), "ns", "pod-a")
    assert lock.owner == ("ns", "pod-a")
    assert lock.owned_by("ns", "pod-a")
    assert not lock.owned_by("ns", "pod-b")


def test_legacy_timestamp_only_lock_has_no_owner() -> None:
    lock = codec.parse_node_lock("2026-07-03T15:35:10+08:00")
    assert lock.taken == datetime(2026, 7, 3, 7, 35, 10, tzinfo=UTC)
    assert lock.taken.utcoffset() == timedelta(hours=8)
    assert (lock.namespace, lock.name, lock.owner) == ("", "", None)
    assert not lock.owned_by("", "")


@pytest.mark.parametrize(
    "value", ["lock", "2026-08-01 06:00:00Z", "2026-08-01T06:00:00z", "2026-02-30T06:00:00Z", "x,ns,pod"]
)
def test_node_lock_with_a_bad_time_is_a_codec_error(value: str) -> None:
    with pytest.raises(CodecError, match=r'^parsing time ".*" as "2006-01-02T15:04:05Z07:00"'):
        codec.parse_node_lock(value)


def test_node_lock_time_accepts_what_go_time_parse_accepts() -> None:
    when = codec.parse_node_lock("2026-08-01T6:00:00.123456789Z,ns,pod").taken
    assert when == datetime(2026, 8, 1, 6, 0, 0, 123456, tzinfo=UTC)


def test_node_lock_with_two_parts_is_malformed() -> None:
    with pytest.raises(CodecError) as caught:
        codec.parse_node_lock("a,b")
    assert str(caught.value) == "malformed lock annotation: expected 3 parts, got 2 from a,b"


@pytest.mark.parametrize(
    ("value", "owned"),
    [
        pytest.param("2026-08-01T06:00:00Z,ns,pod-a", True, id="owner"),
        pytest.param("2026-08-01T06:00:00Z,ns,pod-b", False, id="other-pod"),
        pytest.param("2026-08-01T06:00:00Z,xns,pod-a", False, id="other-namespace"),
        pytest.param("2026-08-01T06:00:00Z", False, id="legacy"),
    ],
)
def test_node_lock_ownership_is_the_namespace_name_suffix(value: str, owned: bool) -> None:
    assert codec.node_lock_owned_by(value, "ns", "pod-a") is owned


# --- 1.4.5 handshake ------------------------------------------------------------------------------


def test_handshake_requesting_uses_go_datetime_layout() -> None:
    assert (
        codec.format_handshake_requesting(datetime(2025, 6, 13, 9, 7, 40, 999))
        == "Requesting_2025-06-13 09:07:40"
    )


def test_handshake_requesting_parses_in_the_given_zone() -> None:
    assert codec.parse_handshake("Requesting_2025-06-13 09:07:40", UTC) == codec.Handshake(
        "Requesting", datetime(2025, 6, 13, 9, 7, 40, tzinfo=UTC)
    )


def test_handshake_of_an_aware_time_round_trips_through_local_time() -> None:
    when = datetime(2025, 6, 13, 9, 7, 40, tzinfo=timezone(timedelta(hours=-3)))
    parsed = codec.parse_handshake(codec.format_handshake_requesting(when))
    assert parsed.state == "Requesting"
    assert parsed.time == when


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, codec.Handshake(""), id="absent"),
        pytest.param("", codec.Handshake(""), id="empty"),
        pytest.param("Requesting", codec.Handshake("Requesting"), id="requesting-without-time"),
        pytest.param("Requesting_garbage", codec.Handshake("Requesting"), id="requesting-bad-time"),
        pytest.param(
            "Reported 2024-01-23 04:30:04.434037031 +0000 UTC m=+1104711.777756895",
            codec.Handshake("Reported", datetime(2024, 1, 23, 4, 30, 4, 434037, tzinfo=UTC)),
            id="legacy-reported",
        ),
        pytest.param("Reported yesterday", codec.Handshake("Reported"), id="reported-bad-time"),
        pytest.param(
            "Deleted_2025-06-13 09:07:40",
            codec.Handshake("Deleted", datetime(2025, 6, 13, 9, 7, 40, tzinfo=UTC)),
            id="legacy-deleted",
        ),
        pytest.param("something else", codec.Handshake(""), id="unknown"),
    ],
)
def test_handshake_values_of_every_generation_parse(value: str | None, expected: codec.Handshake) -> None:
    assert codec.parse_handshake(value, UTC) == expected


def test_handshake_reported_is_written_like_go_time_string() -> None:
    when = datetime(2024, 1, 23, 4, 30, 4, 434037, tzinfo=UTC)
    assert codec.format_handshake_reported(when) == "Reported 2024-01-23 04:30:04.434037 +0000 UTC"
    assert codec.parse_handshake(codec.format_handshake_reported(when)).time == when


def test_handshake_reported_without_fraction_and_zone_name_uses_the_numeric_offset() -> None:
    when = datetime(2024, 1, 23, 4, 30, 4, tzinfo=timezone(timedelta(hours=-7)))
    assert codec.format_handshake_reported(when) == "Reported 2024-01-23 04:30:04 -0700 -0700"


# --- 1.4.8 filter reasons -------------------------------------------------------------------------


def test_gen_reason_sorts_items_as_strings() -> None:
    counts = {codec.CARD_INSUFFICIENT_MEMORY: 3, codec.CARD_INSUFFICIENT_CORE: 2, codec.CARD_NOT_HEALTH: 3}
    assert (
        codec.format_reasons(counts, 8)
        == "2/8 CardInsufficientCore, 3/8 CardInsufficientMemory, 3/8 CardNotHealth"
    )


def test_gen_reason_puts_10_before_2() -> None:
    counts = {codec.CARD_TYPE_MISMATCH: 2, codec.CARD_NOT_HEALTH: 10}
    assert codec.format_reasons(counts, 16) == "10/16 CardNotHealth, 2/16 CardTypeMismatch"


def test_parse_reason_accepts_any_order() -> None:
    assert codec.parse_reasons("3/8 CardInsufficientMemory, 2/8 CardInsufficientCore, 3/8 CardNotHealth") == {
        "CardInsufficientMemory": 3,
        "CardInsufficientCore": 2,
        "CardNotHealth": 3,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", {}, id="empty"),
        pytest.param("node unregistered", {}, id="node-level-string"),
        pytest.param("3/8X", {}, id="no-space-before-key"),
        pytest.param("1/2 \nX", {}, id="newline"),
        pytest.param("1_0/2 X", {}, id="underscore"),
        pytest.param("+4/ 5   Key trailing words", {"Key": 4}, id="sscanf-leniency"),
        pytest.param("99999999999999999999/1 X", {}, id="overflow"),
        pytest.param("1/2 A, 3/2 A", {"A": 3}, id="last-wins"),
    ],
)
def test_parse_reason_follows_sscanf_and_skips_what_it_cannot_read(
    text: str, expected: dict[str, int]
) -> None:
    assert codec.parse_reasons(text) == expected


@pytest.mark.parametrize(
    ("constant", "spelling"),
    [
        (codec.CARD_TYPE_MISMATCH, "CardTypeMismatch"),
        (codec.CARD_UUID_MISMATCH, "CardUuidMismatch"),
        (codec.CARD_TIME_SLICING_EXHAUSTED, "CardTimeSlicingExhausted"),
        (codec.CARD_COMPUTE_UNITS_EXHAUSTED, "CardComputeUnitsExhausted"),
        (codec.CARD_INSUFFICIENT_MEMORY, "CardInsufficientMemory"),
        (codec.CARD_INSUFFICIENT_CORE, "CardInsufficientCore"),
        (codec.CARD_NOT_HEALTH, "CardNotHealth"),
        (codec.CARD_CORDONED, "CardCordoned"),
        (codec.NUMA_NOT_FIT, "NumaNotFit"),
        (codec.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT, "ExclusiveDeviceAllocateConflict"),
        (codec.CARD_NOT_FOUND_CUSTOM_FILTER_RULE, "CardNotFoundCustomFilterRule"),
        (codec.CARD_MIG_TOPOLOGY_INFEASIBLE, "CardMigTopologyInfeasible"),
        (codec.NODE_INSUFFICIENT_DEVICE, "NodeInsufficientDevice"),
        (codec.ALLOCATED_CARDS_INSUFFICIENT_REQUEST, "AllocatedCardsInsufficientRequest"),
        (codec.RESOURCE_QUOTA_NOT_FIT, "ResourceQuotaNotFit"),
        (codec.MODE_NOT_FIT, "ModeNotFit"),
        (codec.NODE_UNFIT_POD, "NodeUnfitPod"),
        (codec.NODE_FIT_POD, "NodeFitPod"),
        (codec.NODE_UNREGISTERED, "node unregistered"),
        (codec.NODE_USAGE_UNAVAILABLE, "node usage unavailable"),
        (codec.DEVICE_TYPE_NOT_FOUND, "Device type not found"),
    ],
)
def test_reason_keys_are_spelled_as_in_hami(constant: str, spelling: str) -> None:
    assert constant == spelling


# --- 1.4.9 device scoring weights -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "weights"),
    [
        pytest.param("slot=1,core=2,memory=3", ScoringWeights(1, 2, 3), id="plain"),
        pytest.param(" memory = 3, slot = 1, core = 0 ", ScoringWeights(1, 0, 3), id="spaced-any-order"),
        pytest.param(None, ScoringWeights(1, 1, 1), id="absent"),
        pytest.param("slot=+1,core=\t2\u00a0,memory=3", ScoringWeights(1, 2, 3), id="go-trim-and-sign"),
    ],
)
def test_scoring_weights_parse(value: str | None, weights: ScoringWeights) -> None:
    assert codec.parse_device_scoring_weights(value) == weights


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        pytest.param("", "expected slot, core, and memory weights", id="empty"),
        pytest.param("slot=1,memory=3", "expected slot, core, and memory weights", id="two-items"),
        pytest.param("slot=1,core,memory=3", "expected key=value entries", id="no-equals"),
        pytest.param("slot=1,core=high,memory=3", '"core" weight must be an integer', id="not-integer"),
        pytest.param("slot=1,core=-1,memory=3", '"core" weight must not be negative', id="negative"),
        pytest.param("slot=1,bandwidth=2,memory=3", 'unknown weight "bandwidth"', id="unknown"),
        pytest.param("slot=1,slot=2,memory=3", 'duplicate "slot" weight', id="duplicate"),
        pytest.param("slot=0,core=0,memory=0", "at least one weight must be positive", id="all-zero"),
        pytest.param(
            "slot=1,bandwidth=x,memory=3", '"bandwidth" weight must be an integer', id="integer-checked-first"
        ),
    ],
)
def test_invalid_scoring_weights_use_hamis_message(value: str, detail: str) -> None:
    with pytest.raises(CodecError) as caught:
        codec.parse_device_scoring_weights(value)
    assert str(caught.value) == f'invalid hami.io/device-scoring-weights annotation "{value}": {detail}'


# --- Go helpers and comma lists -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_parse_bool_true_spellings(value: str) -> None:
    assert codec.parse_bool_go(value) is True


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_parse_bool_false_spellings(value: str) -> None:
    assert codec.parse_bool_go(value) is False


@pytest.mark.parametrize("value", ["", "yes", "tRUE", " true", "2"])
def test_go_parse_bool_refuses_other_spellings(value: str) -> None:
    with pytest.raises(CodecError, match=r"^strconv\.ParseBool: parsing "):
        codec.parse_bool_go(value)


USE, NOUSE = "nvidia.com/use-gpuuuid", "nvidia.com/nouse-gpuuuid"


@pytest.mark.parametrize(
    ("annotations", "uuid", "allowed"),
    [
        pytest.param({}, "GPU-1", True, id="no-lists"),
        pytest.param({USE: "  "}, "GPU-1", True, id="blank-use-is-no-constraint"),
        pytest.param({USE: " GPU-0 , GPU-1 "}, "GPU-1", True, id="listed-trimmed"),
        pytest.param({USE: "GPU-0"}, "GPU-1", False, id="not-listed"),
        pytest.param({USE: "gpu-1"}, "GPU-1", False, id="exact-case"),
        pytest.param({NOUSE: "GPU-1"}, "GPU-1", False, id="excluded"),
        pytest.param({USE: "GPU-1", NOUSE: "GPU-1"}, "GPU-1", False, id="exclusion-checked-after-use"),
        pytest.param({NOUSE: "GPU-10"}, "GPU-1", True, id="no-substring-match"),
    ],
)
def test_check_uuid_follows_hami(annotations: dict[str, str], uuid: str, allowed: bool) -> None:
    assert codec.check_uuid(annotations, uuid, USE, NOUSE) is allowed


USE_TYPE, NOUSE_TYPE = "nvidia.com/use-gputype", "nvidia.com/nouse-gputype"


@pytest.mark.parametrize(
    ("annotations", "allowed"),
    [
        pytest.param({}, True, id="no-lists"),
        pytest.param({USE_TYPE: "a100"}, True, id="case-insensitive-substring"),
        pytest.param({USE_TYPE: " ,v100"}, False, id="empty-items-never-match"),
        pytest.param({USE_TYPE: ""}, True, id="empty-is-no-constraint"),
        pytest.param({NOUSE_TYPE: "SXM4"}, False, id="excluded"),
        pytest.param({USE_TYPE: "A100", NOUSE_TYPE: "h100, ,"}, True, id="included-not-excluded"),
    ],
)
def test_check_type_follows_hami(annotations: dict[str, str], allowed: bool) -> None:
    assert codec.check_type(annotations, "NVIDIA A100-SXM4-40GB", USE_TYPE, NOUSE_TYPE) is allowed


def test_check_type_upper_cases_rune_by_rune_like_go() -> None:
    assert codec.check_type({USE_TYPE: "ss"}, "straße", USE_TYPE, NOUSE_TYPE) is False


@pytest.mark.parametrize(
    ("value", "uuids"),
    [
        pytest.param(None, frozenset(), id="absent"),
        pytest.param("", frozenset(), id="empty"),
        pytest.param(" GPU-1,, GPU-2 ,", frozenset({"GPU-1", "GPU-2"}), id="trimmed-empties-skipped"),
    ],
)
def test_cordon_list_is_a_set_of_trimmed_uuids(value: str | None, uuids: frozenset[str]) -> None:
    assert codec.parse_cordon(value) == uuids
    assert codec.parse_uuid_list(value) == tuple(sorted(uuids))
