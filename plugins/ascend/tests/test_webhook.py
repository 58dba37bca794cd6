"""The webhook's JSON patches for Ascend pods, with every chip backend loaded as in a real config."""

from __future__ import annotations

import pytest
from hami_backend_ascend import resources
from hami_backend_ascend.backend import AscendBackend
from hami_backend_ascend.settings import AscendSettings

from hami_core.testing import make_container
from hami_core.testing import make_pod
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.mutating import mutate_pod

BACKENDS = [AscendBackend(AscendSettings.for_chip(chip)) for chip in resources.CHIPS]
TO_HAMI = {"op": "replace", "path": "/spec/schedulerName", "value": "hami-scheduler"}


def admit(
    limits: dict[str, str | int], requests: dict[str, str | int] | None = None
) -> list[dict[str, object]]:
    pod = make_pod(
        containers=[make_container(limits=limits, requests=requests)], scheduler_name="default-scheduler"
    )
    outcome = mutate_pod(pod, BACKENDS, WebhookSettings())
    assert outcome.allowed, outcome.message
    return sorted((dict(op) for op in outcome.patch), key=lambda op: str(op["path"]))


def test_memory_between_templates_and_capacity_is_patched_to_the_whole_npu() -> None:
    # device_test.go Test_MutateAdmission: 910A, 1 device, 20000 MiB -> 32768 MiB.
    patch = admit(
        {"huawei.com/Ascend910A": 1, "huawei.com/Ascend910A-memory": 20000},
        {"huawei.com/Ascend910A-memory": 20000},
    )
    memory = "huawei.com~1Ascend910A-memory"
    assert patch == [
        {"op": "replace", "path": f"/spec/containers/0/resources/limits/{memory}", "value": "32768"},
        {"op": "replace", "path": f"/spec/containers/0/resources/requests/{memory}", "value": "32768"},
        TO_HAMI,
    ]


def test_a_count_only_container_gets_the_whole_npus_memory() -> None:
    patch = admit({"huawei.com/Ascend910B3": 1})
    memory = "huawei.com~1Ascend910B3-memory"
    assert patch == [
        {"op": "add", "path": f"/spec/containers/0/resources/limits/{memory}", "value": "65536"},
        {
            "op": "add",
            "path": "/spec/containers/0/resources/requests",
            "value": {"huawei.com/Ascend910B3-memory": "65536"},
        },
        TO_HAMI,
    ]


def test_910c_one_becomes_two() -> None:
    patch = admit({"huawei.com/Ascend910C": 1}, {"huawei.com/Ascend910C": 1})
    assert {
        "op": "replace",
        "path": "/spec/containers/0/resources/limits/huawei.com~1Ascend910C",
        "value": "2",
    } in patch
    assert {
        "op": "replace",
        "path": "/spec/containers/0/resources/requests/huawei.com~1Ascend910C",
        "value": "2",
    } in patch


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
    outcome = mutate_pod(pod, BACKENDS, WebhookSettings())
    assert not outcome.allowed
    assert message in outcome.message
