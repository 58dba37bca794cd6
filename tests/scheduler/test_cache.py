"""The cluster cache: registrations, handshake health, usage from annotations, reservations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hami_core import codec
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.admission_view import AdmissionView
from hami_core.scheduler.bookings import Placement
from hami_core.scheduler.bookings import PodAllocation
from hami_core.scheduler.cache import ClusterCache
from hami_core.scheduler.capacity import ROOM_TIERS
from hami_core.scheduler.capacity import RoomTier
from hami_core.scheduler.nodes import assess_handshake
from hami_core.scheduler.quota import QuotaLimits
from hami_core.scheduler.quota import ResourceLimit
from hami_core.scheduler.quota import Usage
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import GPU
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import registered_node

NVIDIA = NvidiaLikeBackend()
KEYS = NVIDIA.keys
POLICIES = scoring.node_policies(
    {policy.name: policy for policy in scoring.BuiltinPolicies().hami_scoring_policies()}
)


def new_cache(**kwargs: object) -> ClusterCache:
    return ClusterCache([NVIDIA], POLICIES, **kwargs)  # type: ignore[arg-type]


def held_pod(
    name: str,
    node: str,
    allocated: str,
    *,
    phase: str = "Running",
    init: int = 0,
    init_statuses: list[dict[str, object]] | None = None,
    namespace: str = "default",
) -> dict[str, object]:
    pod = make_pod(
        name,
        namespace=namespace,
        annotations={codec.VGPU_NODE: node, KEYS.allocated: allocated},
        init_containers=[make_container(f"i{i}") for i in range(init)],
        node_name=node,
        phase=phase,  # type: ignore[arg-type]
    )
    if init_statuses is not None:
        pod["status"]["initContainerStatuses"] = init_statuses  # type: ignore[typeddict-unknown-key]
    return pod  # type: ignore[return-value]


def used(cache: ClusterCache, node: str) -> dict[str, tuple[int, int, int]]:
    view = cache.view(node)
    assert view is not None
    return {d.id: (d.used, d.usedmem, d.usedcores) for d in view.devices.get("nvidia", ())}


# --- registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(
            '[{"id":"GPU-0","count":5,"devmem":8192,"devcore":100,"type":"NVIDIA-Tesla P4","numa":0,"health":true,"index":0}]',
            id="hami-json",
        ),
        pytest.param("GPU-0,5,8192,100,NVIDIA-Tesla P4,0,true:", id="legacy-7-fields"),
        pytest.param("GPU-0,5,8192,100,NVIDIA-Tesla P4,0,true,0,hami-core:", id="legacy-9-fields"),
    ],
)
def test_a_node_registered_in_any_hami_format_shows_its_devices(value: str) -> None:
    cache = new_cache()
    cache.apply_node("ADDED", make_node("n", annotations={KEYS.register: value}), NOW)
    view = cache.view("n")
    assert view is not None
    (device,) = view.devices["nvidia"]
    assert (device.id, device.count, device.totalmem, device.totalcore, device.type) == (
        "GPU-0",
        5,
        8192,
        100,
        "NVIDIA-Tesla P4",
    )


def test_an_unreadable_registration_keeps_the_last_good_devices_and_warns_once() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 2)), NOW)
    bad = make_node("n", annotations={KEYS.register: "garbage:"})
    first = cache.apply_node("MODIFIED", bad, NOW)
    again = cache.apply_node("MODIFIED", bad, NOW)
    view = cache.view("n")
    assert view is not None
    assert len(view.devices["nvidia"]) == 2
    assert [w.reason for w in first.warnings] == ["InvalidDeviceRegistration"]
    assert "malformed node annotation segment" in first.warnings[0].message
    assert again.warnings == ()


def test_an_empty_registration_means_no_devices() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 2)), NOW)
    cache.apply_node("MODIFIED", make_node("n", annotations={KEYS.register: "[]"}), NOW)
    view = cache.view("n")
    assert view is not None
    assert view.devices == {}


def test_nodes_outside_the_label_selector_have_no_devices() -> None:
    cache = new_cache(node_selector={"gpu": "on"})
    cache.apply_node("ADDED", registered_node("off", gpus("A", 1)), NOW)
    cache.apply_node("ADDED", registered_node("on", gpus("B", 1), labels={"gpu": "on"}), NOW)
    assert cache.view("off").devices == {}  # type: ignore[union-attr]
    assert list(cache.view("on").devices) == ["nvidia"]  # type: ignore[union-attr]


def test_a_deleted_node_leaves_the_rankings() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    changes = cache.apply_node("DELETED", make_node("n"), NOW)
    assert cache.view("n") is None
    assert cache.ranking("binpack") == []
    assert changes.lock_nodes == {"n"}


# --- handshake ------------------------------------------------------------------------------------

REQUESTED = codec.format_handshake_requesting(NOW)


@pytest.mark.parametrize(
    ("value", "allocatable", "now", "healthy", "asks"),
    [
        pytest.param(None, 0, NOW, True, True, id="absent-is-requested"),
        pytest.param(
            "Reported 2024-01-23 04:30:04.434037031 +0000 UTC", 0, NOW, True, True, id="legacy-reported"
        ),
        pytest.param("Deleted_2024-01-23 04:30:04", 0, NOW, True, True, id="legacy-deleted"),
        pytest.param(REQUESTED, 0, NOW + timedelta(seconds=59), True, False, id="fresh-requesting"),
        pytest.param(
            REQUESTED, 0, NOW + timedelta(seconds=61), False, False, id="expired-without-allocatable"
        ),
        pytest.param(REQUESTED, 4, NOW + timedelta(seconds=61), True, False, id="expired-with-allocatable"),
        pytest.param("Requesting", 0, NOW, True, False, id="requesting-without-time"),
    ],
)
def test_the_handshake_rule_follows_hami_v2_10(
    value: str | None, allocatable: int, now: object, healthy: bool, asks: bool
) -> None:
    verdict = assess_handshake(value, allocatable, now)  # type: ignore[arg-type]
    assert (verdict.healthy, verdict.request) == (healthy, asks)


def test_a_node_without_a_handshake_asks_for_one_and_counts_as_healthy() -> None:
    cache = new_cache()
    node = make_node("n", annotations={KEYS.register: codec.encode_node_devices(gpus("GPU", 1))})
    changes = cache.apply_node("ADDED", node, NOW)
    assert changes.handshakes == (("n", "nvidia"),)
    assert "nvidia" in cache.view("n").devices  # type: ignore[union-attr]


def test_a_silent_node_loses_its_devices_once_the_handshake_expires_and_regains_them_with_allocatable() -> (
    None
):
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1), allocatable=0), NOW)
    assert cache.assess_health(NOW + timedelta(seconds=30)).handshakes == ()
    cache.assess_health(NOW + timedelta(seconds=61))
    assert cache.view("n").devices == {}  # type: ignore[union-attr]
    later = NOW + timedelta(seconds=90)
    changes = cache.apply_node("MODIFIED", registered_node("n", gpus("GPU", 1), allocatable=10), later)
    assert "nvidia" in cache.view("n").devices  # type: ignore[union-attr]
    assert changes.freed_nodes == {"n"}


# --- usage ------------------------------------------------------------------------------------------


def test_usage_comes_from_the_allocated_annotation_of_pods_that_hold_devices() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 2)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;")))
    cache.apply_pod(
        "ADDED", PodView.from_object(held_pod("b", "n", "GPU-0,NVIDIA,1000,10:GPU-1,NVIDIA,1000,10:;"))
    )
    assert used(cache, "n") == {"GPU-0": (2, 4000, 40), "GPU-1": (1, 1000, 10)}


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_frees_its_devices(phase: str) -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;")))
    changes = cache.apply_pod(
        "MODIFIED", PodView.from_object(held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;", phase=phase))
    )
    assert used(cache, "n") == {"GPU-0": (0, 0, 0)}
    assert changes.freed_nodes == {"n"}
    assert changes.settled_pods == {"default/a"}


def test_a_deleted_pod_frees_its_devices() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    pod = held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;")
    cache.apply_pod("ADDED", PodView.from_object(pod))
    changes = cache.apply_pod("DELETED", PodView.from_object(pod))
    assert used(cache, "n") == {"GPU-0": (0, 0, 0)}
    assert changes.freed_nodes == {"n"}


def test_a_pod_with_a_malformed_allocation_is_skipped_with_a_warning() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    changes = cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", "uuid,type,100:;")))
    assert used(cache, "n") == {"GPU-0": (0, 0, 0)}
    (warning,) = changes.warnings
    assert (warning.kind, warning.name, warning.reason) == ("Pod", "a", "InvalidDeviceAllocation")
    assert "missing fields" in warning.message


def test_init_containers_count_their_peak_and_app_containers_their_sum() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    allocated = "GPU-0,NVIDIA,5000,50:;GPU-0,NVIDIA,1000,10:;GPU-0,NVIDIA,1000,20:;"
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", allocated, init=1)))
    assert used(cache, "n") == {"GPU-0": (2, 5000, 50)}


def test_init_containers_stop_counting_once_they_all_exited_zero() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    allocated = "GPU-0,NVIDIA,5000,50:;GPU-0,NVIDIA,1000,10:;"
    done = [{"name": "i0", "state": {"terminated": {"exitCode": 0}}}]
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", allocated, init=1)))
    cache.apply_pod(
        "MODIFIED", PodView.from_object(held_pod("a", "n", allocated, init=1, init_statuses=done))
    )
    assert used(cache, "n") == {"GPU-0": (1, 1000, 10)}


def test_a_relist_drops_pods_and_nodes_that_are_gone() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    cache.apply_node("ADDED", registered_node("gone", gpus("X", 1)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;")))
    cache.replace_nodes([registered_node("n", gpus("GPU", 1))], NOW)
    changes = cache.replace_pods([])
    assert cache.view("gone") is None
    assert used(cache, "n") == {"GPU-0": (0, 0, 0)}
    assert changes.freed_nodes == {"n"}


# --- reservations -----------------------------------------------------------------------------------


def booking(node: str, uuid: str, mem: int, cores: int = 0, name: str = "p") -> Placement:
    from hami_core.allocation import DeviceBooking
    from hami_core.devices import ContainerDevice

    return Placement(
        PodAllocation(
            "default",
            name,
            node,
            {"nvidia": (DeviceBooking(ContainerDevice(uuid, "NVIDIA", mem, cores), 1),)},
        )
    )


def test_a_reservation_counts_at_once_and_a_stale_generation_is_refused() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    generation = cache.view("n").generation  # type: ignore[union-attr]
    assert cache.reserve("uid-1", booking("n", "GPU-0", 4000), generation) == "reserved"
    assert used(cache, "n") == {"GPU-0": (1, 4000, 0)}
    assert cache.reserve("uid-2", booking("n", "GPU-0", 4000, name="q"), generation) == "stale"
    assert used(cache, "n") == {"GPU-0": (1, 4000, 0)}


def test_a_reservation_wins_over_an_older_watch_event_until_the_watch_confirms_it() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("a", gpus("A", 1)), NOW)
    cache.apply_node("ADDED", registered_node("b", gpus("B", 1)), NOW)
    pod = held_pod("p", "a", "A-0,NVIDIA,1000,0:;")
    uid = pod["metadata"]["uid"]  # type: ignore[index]
    cache.apply_pod("ADDED", PodView.from_object(pod))
    cache.forget(uid)
    assert cache.reserve(uid, booking("b", "B-0", 2000), cache.view("b").generation) == "reserved"  # type: ignore[union-attr]
    stale = held_pod("p", "a", "A-0,NVIDIA,1000,0:;")
    stale["metadata"]["annotations"][codec.BIND_PHASE] = "failed"  # type: ignore[index]
    cache.apply_pod("MODIFIED", PodView.from_object(stale))
    assert used(cache, "a") == {"A-0": (0, 0, 0)}
    assert used(cache, "b") == {"B-0": (1, 2000, 0)}
    cache.apply_pod("MODIFIED", PodView.from_object(held_pod("p", "b", "B-0,NVIDIA,2000,0:;")))
    assert cache.allocation(uid) == booking("b", "B-0", 2000).booked
    assert used(cache, "b") == {"B-0": (1, 2000, 0)}


def test_forgetting_a_pod_frees_what_it_held() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    pod = held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;")
    cache.apply_pod("ADDED", PodView.from_object(pod))
    changes = cache.forget(pod["metadata"]["uid"])  # type: ignore[index]
    assert used(cache, "n") == {"GPU-0": (0, 0, 0)}
    assert changes.freed_nodes == {"n"}


def test_a_reservation_beyond_the_namespace_quota_is_refused() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 2)), NOW)
    cache.set_quotas(QuotaLimits(by_namespace={"default": {"nvidia": ResourceLimit(memory=5000)}}))
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", "GPU-0,NVIDIA,3000,0:;")))
    generation = cache.view("n").generation  # type: ignore[union-attr]
    assert cache.reserve("uid-2", booking("n", "GPU-1", 3000, name="q"), generation) == "quota"
    assert cache.reserve("uid-2", booking("n", "GPU-1", 2000, name="q"), generation) == "reserved"
    assert cache.namespace_usage("default", "nvidia") == Usage(5000, 0)
    webhook = AdmissionView(cache)
    assert webhook.quota_exceeded("default", "nvidia", 1, 0) is not None
    assert webhook.quota_exceeded("other", "nvidia", 10**6, 0) is None


# --- rankings, rooms and fleet ----------------------------------------------------------------------


def test_binpack_ranks_the_fullest_node_first_and_spread_the_emptiest() -> None:
    cache = new_cache()
    for name in ("empty", "half", "full"):
        cache.apply_node("ADDED", registered_node(name, gpus(name, 1)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "half", "half-0,NVIDIA,4000,50:;")))
    cache.apply_pod("ADDED", PodView.from_object(held_pod("b", "full", "full-0,NVIDIA,8000,100:;")))
    assert [name for _, name in cache.ranking("binpack")] == ["full", "half", "empty"]
    assert [name for _, name in cache.ranking("spread")] == ["empty", "half", "full"]
    assert cache.rank("spread", ["full", "empty"]) == ["empty", "full"]


def test_room_rankings_list_only_nodes_whose_devices_can_still_give_that_much() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("roomy", gpus("R", 2)), NOW)
    cache.apply_node("ADDED", registered_node("tight", gpus("T", 1)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "tight", "T-0,NVIDIA,7000,90:;")))
    half_memory = RoomTier("memory", 60)
    two_whole = RoomTier("memory", 100, 2)
    assert half_memory in ROOM_TIERS
    assert two_whole in ROOM_TIERS
    assert [name for _, name in cache.ranking("binpack", ("nvidia", half_memory))] == ["roomy"]
    assert [name for _, name in cache.ranking("binpack", ("nvidia", two_whole))] == ["roomy"]
    assert [name for _, name in cache.ranking("binpack", ("nvidia", RoomTier("cores", 20)))] == ["roomy"]


def test_the_fleet_answers_the_webhooks_capacity_questions() -> None:
    cache = new_cache()
    assert cache.largest_device_memory("nvidia") is None
    cache.apply_node("ADDED", registered_node("a", gpus("A", 2, memory=16000)), NOW)
    cache.apply_node("ADDED", registered_node("b", gpus("B", 4, memory=8000)), NOW)
    assert cache.largest_device_memory("nvidia") == 16000
    assert cache.largest_node_device_count("nvidia") == 4
    cache.apply_node("DELETED", make_node("b"), NOW)
    assert cache.largest_node_device_count("nvidia") == 2


def test_a_lock_change_is_reported_without_touching_the_node_generation() -> None:
    cache = new_cache()
    node = registered_node("n", gpus("GPU", 1))
    cache.apply_node("ADDED", node, NOW)
    generation = cache.view("n").generation  # type: ignore[union-attr]
    node["metadata"]["annotations"][codec.NODE_LOCK] = codec.format_node_lock(NOW, "default", "p")  # type: ignore[index]
    changes = cache.apply_node("MODIFIED", node, NOW)
    assert changes.lock_nodes == {"n"}
    assert cache.view("n").generation == generation  # type: ignore[union-attr]
    assert cache.node_metadata("n")["metadata"]["annotations"][codec.NODE_LOCK].endswith(",default,p")  # type: ignore[index]


def test_a_pod_name_reused_by_a_new_pod_drops_the_old_pods_booking() -> None:
    cache = new_cache()
    cache.apply_node("ADDED", registered_node("n", gpus("GPU", 1)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "n", "GPU-0,NVIDIA,3000,30:;")))
    fresh = make_pod("a", containers=[make_container(limits={GPU: 1})])
    fresh["metadata"]["uid"] = "another-uid"
    cache.apply_pod("ADDED", PodView.from_object(fresh))
    assert used(cache, "n") == {"GPU-0": (0, 0, 0)}
    assert cache.pod("default", "a").uid == "another-uid"  # type: ignore[union-attr]


def test_a_policy_nobody_used_yet_is_ranked_from_every_node_on_first_use() -> None:
    cache = ClusterCache([NVIDIA], POLICIES, active=["binpack"])
    for name in ("empty", "half"):
        cache.apply_node("ADDED", registered_node(name, gpus(name, 1)), NOW)
    cache.apply_pod("ADDED", PodView.from_object(held_pod("a", "half", "half-0,NVIDIA,4000,50:;")))
    assert [name for _, name in cache.ranking("spread")] == ["empty", "half"]
    assert [name for _, name in cache.ranking("spread", ("nvidia", RoomTier("memory", 100)))] == ["empty"]
    cache.apply_pod("ADDED", PodView.from_object(held_pod("b", "empty", "empty-0,NVIDIA,8000,100:;")))
    assert [name for _, name in cache.ranking("spread")] == ["half", "empty"]
    with pytest.raises(KeyError):
        cache.ranking("fastest")
