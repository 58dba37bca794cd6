"""Bind acts only on what the filter placed; filter books only under a pod's real uid."""

from __future__ import annotations

import pytest

from hami_core import codec
from hami_core.allocation import DeviceBooking
from hami_core.devices import ContainerDevice
from hami_core.errors import KubeError
from hami_core.kube.objects import Pod
from hami_core.pods import PodView
from hami_core.scheduler import usage
from hami_core.scheduler.binding import BindError
from hami_core.scheduler.filtering import StalePodError
from hami_core.scheduler.recording import EventRecorder
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.scheduler.fakes import Harness
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import annotations_of
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node
from tests.scheduler.test_extender import extender

KEYS = NvidiaLikeBackend().keys
#: One GPU of 8000 MiB, 100 cores, 10 slots on node "n".
FULL = "GPU-0,NVIDIA,8000,100:;"


def one_gpu(**kwargs: object) -> Harness:
    made = harness(**kwargs)  # type: ignore[arg-type]
    made.add_node(registered_node("n", gpus("GPU", 1)))
    return made


def placed(made: Harness, name: str, memory: int = 1000) -> Pod:
    pod = made.add_pod(gpu_pod(name, memory=memory))
    assert made.filter(pod).result == "scheduled"
    return pod


def forged(made: Harness, name: str, allocated: str, **annotations: str) -> Pod:
    """A pod that asks a GPU and carries allocation annotations no filter wrote."""
    values = {
        codec.VGPU_NODE: "n",
        codec.VGPU_TIME: "1785564000",
        KEYS.to_allocate: allocated,
        KEYS.allocated: allocated,
        **annotations,
    }
    pod = made.add_pod(gpu_pod(name, memory=8000, cores=100, annotations=values))
    made.sync()
    return pod


def refused(made: Harness, pod: Pod, node: str = "n", uid: str | None = None) -> BindError:
    """The bind's refusal, after checking it bound and locked nothing."""
    meta = pod["metadata"]
    lock = (made.kube.get_node("n")["metadata"].get("annotations") or {}).get(codec.NODE_LOCK)
    with pytest.raises(BindError) as caught:
        made.binding.bind("default", meta["name"], meta["uid"] if uid is None else uid, node)
    bound = made.kube.get_pod("default", meta["name"])
    assert not bound["spec"].get("nodeName")
    assert (made.kube.get_node("n")["metadata"].get("annotations") or {}).get(codec.NODE_LOCK) == lock
    return caught.value


def test_a_pod_the_filter_never_placed_is_refused() -> None:
    made = one_gpu()
    pod = made.add_pod(gpu_pod("p", memory=1000))
    assert refused(made, pod).reason == "not-filtered"


def test_a_forged_allocation_on_a_device_another_pod_holds_fully_is_refused() -> None:
    made = one_gpu()
    owner = forged(made, "owner", FULL)
    made.binding.bind("default", "owner", owner["metadata"]["uid"], "n")  # fits: nobody else there
    thief = forged(made, "thief", FULL)
    err = refused(made, thief)
    assert err.reason == "overcommit"
    assert "GPU-0" in str(err)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({KEYS.to_allocate: "GPU-0,NVIDIA,20,0:;"}, "forged-allocation"),
        ({codec.VGPU_TIME: "soon"}, "forged-allocation"),
        ({KEYS.allocated: "GPU-0,NVIDIA:;", KEYS.to_allocate: "GPU-0,NVIDIA:;"}, "forged-allocation"),
        ({KEYS.allocated: "GPU-9,NVIDIA,10,0:;", KEYS.to_allocate: "GPU-9,NVIDIA,10,0:;"}, "overcommit"),
        ({KEYS.allocated: "GPU-0,NVIDIA,9000,0:;", KEYS.to_allocate: "GPU-0,NVIDIA,9000,0:;"}, "overcommit"),
    ],
    ids=["to-allocate-differs", "no-filter-time", "unreadable", "unknown-device", "more-than-the-device"],
)
def test_an_allocation_unlike_a_filters_is_refused(extra: dict[str, str], reason: str) -> None:
    made = one_gpu()
    pod = forged(made, "p", "GPU-0,NVIDIA,10,0:;", **extra)
    assert refused(made, pod).reason == reason


def test_an_allocation_a_filter_wrote_before_a_restart_is_bound() -> None:
    made = one_gpu()
    pod = placed(made, "p")
    restarted = harness(kube=made.kube)
    restarted.sync()
    assert restarted.cache.placement(pod["metadata"]["uid"]) is None
    restarted.binding.bind("default", "p", pod["metadata"]["uid"], "n")
    assert made.kube.get_pod("default", "p")["spec"]["nodeName"] == "n"


def test_annotations_changed_after_the_filter_are_refused() -> None:
    made = one_gpu()
    pod = placed(made, "p")
    made.kube.patch_pod(
        "default", "p", {"metadata": {"annotations": {KEYS.to_allocate: FULL, KEYS.allocated: FULL}}}
    )
    made.sync()
    assert refused(made, pod).reason == "allocation-mismatch"
    assert made.cache.placement(pod["metadata"]["uid"]) is not None  # a refusal changes nothing


@pytest.mark.parametrize(
    ("node", "uid", "reason"),
    [("ghost", None, "unknown-node"), ("n", "made-up", "uid-mismatch"), ("n", "", "uid-mismatch")],
)
def test_a_bind_naming_an_unknown_node_or_another_uid_is_refused(
    node: str, uid: str | None, reason: str
) -> None:
    made = one_gpu()
    pod = placed(made, "p")
    assert refused(made, pod, node=node, uid=uid).reason == reason
    made.binding.bind("default", "p", pod["metadata"]["uid"], "n")  # the real bind still goes through


def test_a_refused_bind_is_an_error_reply_a_warning_event_and_a_metric() -> None:
    kube = FakeKube()
    recorder = EventRecorder(kube)
    made = one_gpu(kube=kube, recorder=recorder)
    made.add_pod(gpu_pod("p", memory=1000))
    verbs, metrics = extender(made)
    recorder.start()
    reply = verbs.bind("default", "p", made.kube.get_pod("default", "p")["metadata"]["uid"], "n")
    recorder.stop()
    assert "was never filtered" in reply["Error"]
    assert (
        metrics.registry.get_sample_value("hami_scheduler_bind_refused_total", {"reason": "not-filtered"})
        == 1
    )
    events = [e for e in kube.list_events("default")["items"] if e["type"] == "Warning"]
    assert [e["reason"] for e in events] == ["BindingRefused"]


def test_a_pod_asking_no_device_is_still_bound() -> None:
    made = one_gpu()
    pod = made.add_pod(make_pod("plain"))
    made.binding.bind("default", "plain", pod["metadata"]["uid"], "n")
    assert made.kube.get_pod("default", "plain")["spec"]["nodeName"] == "n"


def test_filters_with_made_up_uids_reserve_nothing() -> None:
    made = one_gpu()
    pod = made.add_pod(gpu_pod("p", memory=8000, cores=100))
    for uid in ("made-up-1", "made-up-2"):
        body = PodView.from_object({**pod, "metadata": {**pod["metadata"], "uid": uid}})  # type: ignore[typeddict-item]
        with pytest.raises(StalePodError, match="not made-up"):
            made.filtering.filter(body, ["n"])
    assert made.cache.allocations() == []
    assert KEYS.allocated not in annotations_of(made.kube, "p")
    assert made.filter(pod).result == "scheduled"  # the device is still free for the real pod


def test_the_filter_patch_does_not_touch_a_pod_recreated_under_the_same_name() -> None:
    made = one_gpu()
    old = made.add_pod(gpu_pod("p", memory=1000))
    made.kube.delete_pod("default", "p")
    made.kube.create_pod("default", gpu_pod("p", memory=1000))  # the cache has not seen it yet
    with pytest.raises(KubeError, match="field is immutable"):
        made.filtering.filter(PodView.from_object(old), ["n"])
    assert KEYS.allocated not in annotations_of(made.kube, "p")
    assert made.cache.allocations() == []


@pytest.mark.parametrize(
    ("others", "own", "why"),
    [
        ([], [("GPU-0", 8000, 100)], ""),
        ([[("GPU-0", 4000, 50)]], [("GPU-0", 4000, 50)], ""),
        ([[("GPU-0", 4000, 50)]], [("GPU-0", 4001, 0)], "8001/8000 MiB"),
        ([[("GPU-0", 100, 60)]], [("GPU-0", 100, 50)], "110/100 cores"),
        ([[("GPU-0", 100, 100)]], [("GPU-0", 100, 0)], "shared with a pod that booked all its cores"),
        ([[("GPU-0", 100, 0)]], [("GPU-0", 100, 100)], "shared with a pod that booked all its cores"),
        ([[("GPU-0", 1, 0)]] * 10, [("GPU-0", 1, 0)], "11/10 slots"),
        ([], [("GPU-7", 1, 0)], "not a healthy registered device"),
    ],
)
def test_overbooked_checks_every_device_beside_the_other_pods(
    others: list[list[tuple[str, int, int]]], own: list[tuple[str, int, int]], why: str
) -> None:
    def bookings(devices: list[tuple[str, int, int]]) -> tuple[DeviceBooking, ...]:
        return tuple(
            DeviceBooking(ContainerDevice(uuid, "NVIDIA", mem, cores), 1) for uuid, mem, cores in devices
        )

    found = usage.overbooked(gpus("GPU", 1), "nvidia", [bookings(pod) for pod in others], bookings(own))
    assert (why in found) if why else found == ""


def test_a_huge_node_name_or_uid_is_cut_short_in_the_refusal() -> None:
    made = one_gpu()
    pod = placed(made, "p")
    for node, uid in (("x" * 1_000_000, pod["metadata"]["uid"]), ("n", "u" * 1_000_000)):
        err = refused(made, pod, node=node, uid=uid)
        assert len(str(err)) < 300
        assert "(1000000 characters)" in str(err)
