"""The kit's ``admit`` gives the pod as hami's webhook admits it, and refusals with their message."""

from __future__ import annotations

from hami_backend_mock.backend import MockBackend

from hami_core.testing import admit
from hami_core.testing import make_container
from hami_core.testing import make_pod

GPU = "mock.hami.io/gpu"


def test_a_device_pod_is_handed_to_hamis_scheduler_and_otherwise_unchanged() -> None:
    pod = make_pod(containers=[make_container(limits={GPU: 1})], scheduler_name="default-scheduler")
    admission = admit(pod, MockBackend())
    assert admission.allowed
    assert admission.pod == {**pod, "spec": {**pod["spec"], "schedulerName": "hami-scheduler"}}
    assert admission.limits() == {GPU: "1"}
    assert admission.requests() == {}
    assert pod["spec"]["schedulerName"] == "default-scheduler", "the pod sent is not modified"


def test_the_scheduler_name_is_the_one_given() -> None:
    pod = make_pod(containers=[make_container(limits={GPU: 1})])
    assert (
        admit(pod, MockBackend(), scheduler_name="gpu-scheduler").pod["spec"]["schedulerName"]
        == "gpu-scheduler"
    )


def test_a_pod_without_devices_is_admitted_as_sent() -> None:
    pod = make_pod(containers=[make_container(limits={"cpu": 1})])
    assert admit(pod, MockBackend()).pod == pod


def test_a_backend_error_is_a_denial_naming_the_container_and_resource() -> None:
    pod = make_pod(containers=[make_container(limits={GPU: "x"})])
    admission = admit(pod, MockBackend())
    assert not admission.allowed
    assert admission.message == f"container main: {GPU}: 'x' is not a quantity"
    assert admission.pod == pod
