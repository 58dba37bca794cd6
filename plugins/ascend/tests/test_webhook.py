"""Ascend pods as hami's webhook admits them, with every chip backend loaded as in a real config."""

from __future__ import annotations

import pytest
from hami_backend_ascend import resources
from hami_backend_ascend.backend import AscendBackend
from hami_backend_ascend.settings import AscendSettings

from hami_core.testing import Admission
from hami_core.testing import admit
from hami_core.testing import make_container
from hami_core.testing import make_pod

BACKENDS = [AscendBackend(AscendSettings.for_chip(chip)) for chip in resources.CHIPS]


def admitted(limits: dict[str, str | int], requests: dict[str, str | int] | None = None) -> Admission:
    pod = make_pod(
        containers=[make_container(limits=limits, requests=requests)], scheduler_name="default-scheduler"
    )
    admission = admit(pod, *BACKENDS)
    assert admission.allowed, admission.message
    assert admission.pod["spec"]["schedulerName"] == "hami-scheduler"
    return admission


def test_memory_between_templates_and_capacity_is_raised_to_the_whole_npu() -> None:
    # device_test.go Test_MutateAdmission: 910A, 1 device, 20000 MiB -> 32768 MiB.
    admission = admitted(
        {"huawei.com/Ascend910A": 1, "huawei.com/Ascend910A-memory": 20000},
        {"huawei.com/Ascend910A-memory": 20000},
    )
    assert admission.limits() == {"huawei.com/Ascend910A": "1", "huawei.com/Ascend910A-memory": "32768"}
    assert admission.requests() == {"huawei.com/Ascend910A-memory": "32768"}


def test_a_count_only_container_gets_the_whole_npus_memory() -> None:
    admission = admitted({"huawei.com/Ascend910B3": 1})
    assert admission.limits() == {"huawei.com/Ascend910B3": "1", "huawei.com/Ascend910B3-memory": "65536"}
    assert admission.requests() == {"huawei.com/Ascend910B3-memory": "65536"}


def test_910c_one_becomes_two() -> None:
    admission = admitted({"huawei.com/Ascend910C": 1}, {"huawei.com/Ascend910C": 1})
    assert admission.limits()["huawei.com/Ascend910C"] == "2"
    assert admission.requests()["huawei.com/Ascend910C"] == "2"


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"huawei.com/Ascend910A": 2, "huawei.com/Ascend910A-memory": 8738},
            "vNPU not supported for multiple devices",
        ),
        ({"huawei.com/Ascend910A": 2, "huawei.com/Ascend910A-memory": 40000}, "40000 is invalid"),
        ({"huawei.com/Ascend910C": 3}, "must be 1 or 2*n, got 3"),
        ({"huawei.com/Ascend910B3": 1, "huawei.com/Ascend910B3-core": 10}, "only supported in hami-core"),
    ],
)
def test_refusals_carry_the_message(limits: dict[str, str | int], message: str) -> None:
    pod = make_pod(containers=[make_container(limits=limits)], scheduler_name="default-scheduler")
    admission = admit(pod, *BACKENDS)
    assert not admission.allowed
    assert message in admission.message
