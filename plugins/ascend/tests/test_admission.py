"""Ascend admission and request parsing against HAMi v2.10 (``device_test.go`` ``Test_MutateAdmission``,
``specs/hami-wire.md`` 2.4 and 6.1)."""

from __future__ import annotations

import attrs
import pytest
from hami_backend_ascend import resources
from hami_backend_ascend.backend import AscendBackend
from hami_backend_ascend.settings import AscendSettings

from hami_core.sdk import BackendError
from hami_core.sdk import ContainerView
from hami_core.sdk import DeviceRequest
from hami_core.sdk import PodView
from hami_core.testing import make_container
from hami_core.testing import make_pod

SOFT = {"huawei.com/vnpu-mode": "hami-core"}


def backend(name: str, **changes: object) -> AscendBackend:
    return AscendBackend(attrs.evolve(AscendSettings.for_chip(resources.CHIPS_BY_NAME[name]), **changes))


def mutate(
    name: str, limits: dict[str, str | int], annotations: dict[str, str] | None = None, **changes: object
):  # type: ignore[no-untyped-def]
    container = make_container(limits=limits)
    pod = PodView.from_object(make_pod(containers=[container], annotations=annotations))
    return backend(name, **changes).mutate_container(pod.containers[0], pod)


def test_per_chip_names_and_keys_are_hamis() -> None:
    b3 = backend("ascend910b3")
    assert b3.name == "ascend910b3"
    assert b3.resource_names.all() == (
        "huawei.com/Ascend910B3",
        "huawei.com/Ascend910B3-memory",
        "huawei.com/Ascend910B3-core",
    )
    assert attrs.astuple(b3.keys) == (
        "hami.io/node-register-Ascend910B3",
        "hami.io/node-handshake-Ascend910B3",
        "hami.io/Ascend910B3-devices-to-allocate",
        "hami.io/Ascend910B3-devices-allocated",
    )
    assert resources.use_uuid_key("Ascend910B3") == "hami.io/use-Ascend910B3-uuid"
    assert resources.no_use_uuid_key("Ascend910B3") == "hami.io/no-use-Ascend910B3-uuid"
    assert backend("ascend910b41").resource_names.count == "huawei.com/Ascend910B4-1"
    assert sorted(resources.CHIPS_BY_NAME) == [
        "ascend310p",
        "ascend910a",
        "ascend910b2",
        "ascend910b3",
        "ascend910b4",
        "ascend910b41",
        "ascend910c",
    ]


def test_the_default_chip_table_is_the_charts() -> None:
    table = {chip.common_word: chip for chip in resources.CHIPS}
    assert [(t.name, t.memory) for t in table["Ascend910A"].templates] == [
        ("vir02", 2184),
        ("vir04", 4369),
        ("vir08", 8738),
        ("vir16", 17476),
    ]
    # HAMi #1497: the 910B4-1 has the 910B3's 64 GiB templates, not the 910B4's.
    assert [(t.name, t.memory) for t in table["Ascend910B4-1"].templates] == [
        ("vir05_1c_16g", 16384),
        ("vir10_3c_32g", 32768),
    ]
    assert [(t.name, t.memory) for t in table["Ascend910B4"].templates] == [
        ("vir05_1c_8g", 8192),
        ("vir10_3c_16g", 16384),
    ]
    assert (
        table["Ascend310P"].chip_name,
        table["Ascend310P"].memory_allocatable,
        table["Ascend310P"].memory_capacity,
    ) == ("310P3", 21527, 24576)
    assert table["Ascend910C"].super_pod
    assert table["Ascend910C"].chip_name == "Ascend910"


# --- Test_MutateAdmission (910A, capacity 32768) --------------------------------------------------


def test_no_count_resource_is_not_a_resource() -> None:
    assert not mutate("ascend910a", {}).has_resource


def test_a_template_on_two_devices_is_refused_with_what_to_ask() -> None:
    with pytest.raises(BackendError, match=r"vNPU not supported for multiple devices.*whole NPUs"):
        mutate("ascend910a", {"huawei.com/Ascend910A": 2, "huawei.com/Ascend910A-memory": 8738})


def test_memory_beyond_the_npu_is_invalid() -> None:
    with pytest.raises(BackendError, match=r"huawei\.com/Ascend910A-memory 40000 is invalid"):
        mutate("ascend910a", {"huawei.com/Ascend910A": 2, "huawei.com/Ascend910A-memory": 40000})


def test_memory_between_templates_and_capacity_becomes_the_whole_npu() -> None:
    result = mutate("ascend910a", {"huawei.com/Ascend910A": 1, "huawei.com/Ascend910A-memory": 20000})
    assert result.has_resource
    assert result.container["resources"]["limits"]["huawei.com/Ascend910A-memory"] == "32768"
    assert result.container["resources"]["requests"]["huawei.com/Ascend910A-memory"] == "32768"


@pytest.mark.parametrize(
    ("asked", "rounded"), [(1, "2184"), (2184, "2184"), (2185, "4369"), (17476, "17476")]
)
def test_memory_is_rounded_up_to_a_template(asked: int, rounded: str) -> None:
    result = mutate("ascend910a", {"huawei.com/Ascend910A": 1, "huawei.com/Ascend910A-memory": asked})
    assert result.container["resources"]["limits"]["huawei.com/Ascend910A-memory"] == rounded


def test_count_only_gets_the_whole_npus_memory_in_limits_and_requests() -> None:
    result = mutate("ascend910a", {"huawei.com/Ascend910A": 1})
    assert result.container["resources"]["limits"]["huawei.com/Ascend910A-memory"] == "32768"
    assert result.container["resources"]["requests"]["huawei.com/Ascend910A-memory"] == "32768"


def test_310p_between_templates_and_capacity_gets_the_allocatable_memory() -> None:
    result = mutate("ascend310p", {"huawei.com/Ascend310P": 1, "huawei.com/Ascend310P-memory": 22000})
    assert result.container["resources"]["limits"]["huawei.com/Ascend310P-memory"] == "21527"


def test_two_whole_npus_are_fine() -> None:
    result = mutate("ascend910b3", {"huawei.com/Ascend910B3": 2, "huawei.com/Ascend910B3-memory": 65536})
    assert result.has_resource


# --- soft split, 910C pairs, runtime class, overwriteEnv ------------------------------------------


def test_cores_outside_soft_split_are_refused_with_the_annotation_to_add() -> None:
    with pytest.raises(
        BackendError, match=r"only supported in hami-core \(soft split\) mode.*huawei\.com/vnpu-mode"
    ):
        mutate("ascend910b3", {"huawei.com/Ascend910B3": 1, "huawei.com/Ascend910B3-core": 20})


def test_soft_split_keeps_the_memory_asked() -> None:
    result = mutate(
        "ascend910b3",
        {
            "huawei.com/Ascend910B3": 1,
            "huawei.com/Ascend910B3-memory": 10000,
            "huawei.com/Ascend910B3-core": 25,
        },
        SOFT,
    )
    assert result.container["resources"]["limits"]["huawei.com/Ascend910B3-memory"] == "10000"


def test_910c_one_becomes_one_module_of_two() -> None:
    container = make_container(limits={"huawei.com/Ascend910C": 1}, requests={"huawei.com/Ascend910C": 1})
    pod = PodView.from_object(make_pod(containers=[container]))
    result = backend("ascend910c").mutate_container(pod.containers[0], pod)
    assert result.container["resources"]["limits"]["huawei.com/Ascend910C"] == "2"
    assert result.container["resources"]["requests"]["huawei.com/Ascend910C"] == "2"


def test_910c_odd_counts_are_refused() -> None:
    with pytest.raises(BackendError, match="Ascend910C device request must be 1 or 2\\*n, got 3"):
        mutate("ascend910c", {"huawei.com/Ascend910C": 3})
    assert mutate("ascend910c", {"huawei.com/Ascend910C": 4}).has_resource


def test_runtime_class_is_offered() -> None:
    assert (
        mutate("ascend910b3", {"huawei.com/Ascend910B3": 1}, runtime_class_name="ascend").runtime_class_name
        == "ascend"
    )


def test_overwrite_env_clears_visible_devices_only_for_containers_asking_no_ascend_chip() -> None:
    plain = mutate("ascend910a", {"cpu": "1"}, overwrite_env=True)
    assert not plain.has_resource
    assert plain.container["env"] == [{"name": "ASCEND_VISIBLE_DEVICES", "value": ""}]
    other_chip = mutate("ascend910a", {"huawei.com/Ascend910B4": 1}, overwrite_env=True)
    assert other_chip.container is None


# --- requests ------------------------------------------------------------------------------------


def request(name: str, limits: dict[str, str | int]) -> DeviceRequest | None:
    return backend(name).parse_request(ContainerView.from_object(make_container(limits=limits)))


def test_requests_follow_hamis_ascend_rules() -> None:
    assert request("ascend910b3", {"huawei.com/Ascend910B3": 1}) == DeviceRequest(1, "Ascend910B3", 0, 100, 0)
    assert request(
        "ascend910b3", {"huawei.com/Ascend910B3": 1, "huawei.com/Ascend910B3-memory": 1000}
    ) == DeviceRequest(1, "Ascend910B3", 16384, 0, 0)
    assert request(
        "ascend910b3",
        {
            "huawei.com/Ascend910B3": 1,
            "huawei.com/Ascend910B3-memory": 1000,
            "huawei.com/Ascend910B3-core": 10,
        },
    ) == DeviceRequest(1, "Ascend910B3", 1000, 0, 10)
    with pytest.raises(BackendError, match="more than the Ascend910B3 NPU"):
        request("ascend910b3", {"huawei.com/Ascend910B3": 1, "huawei.com/Ascend910B3-memory": 70000})


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(BackendError, match="must not be negative"):
        mutate("ascend910c", {"huawei.com/Ascend910C": -1})
