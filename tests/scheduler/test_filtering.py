"""Filter: HAMi's per-device fit, node and device policies, reasons, annotations and reservations."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest

from hami_core import codec
from hami_core.config import SchedulerConfig
from hami_core.errors import BackendError
from hami_core.errors import CodecError
from hami_core.errors import NotFoundError
from hami_core.hookspecs import ScoringPolicy
from hami_core.kube.objects import ResourceQuota
from hami_core.pods import PodView
from hami_core.scheduler.filtering import FilterOutcome
from hami_core.scheduler.quota import limits_from_quotas
from hami_core.scheduler.recording import EventRecorder
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from hami_core.testing.fake_kube import FakeKube
from tests.scheduler.fakes import CORES
from tests.scheduler.fakes import GPU
from tests.scheduler.fakes import MEM
from tests.scheduler.fakes import MOCK_CORES
from tests.scheduler.fakes import MOCK_GPU
from tests.scheduler.fakes import MOCK_MEM
from tests.scheduler.fakes import MOCK_PCT
from tests.scheduler.fakes import NOUSE_TYPE
from tests.scheduler.fakes import NOUSE_UUID
from tests.scheduler.fakes import NUMA_BIND
from tests.scheduler.fakes import PAIR_SCORES
from tests.scheduler.fakes import USE_TYPE
from tests.scheduler.fakes import USE_UUID
from tests.scheduler.fakes import VGPU_MODE
from tests.scheduler.fakes import Harness
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import ScoringBackend
from tests.scheduler.fakes import annotations_of
from tests.scheduler.fakes import gpu
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import mock_backend
from tests.scheduler.fakes import registered_node

KEYS = NvidiaLikeBackend().keys


def one_node(devices: Sequence[object] | None = None, **kwargs: object) -> Harness:
    made = harness(**kwargs)  # type: ignore[arg-type]
    made.add_node(registered_node("node-a", devices or gpus("GPU", 2)))  # type: ignore[arg-type]
    return made


def schedule(made: Harness, pod: dict[str, object], names: Sequence[str] | None = None) -> FilterOutcome:
    created = made.add_pod(pod)  # type: ignore[arg-type]
    outcome = made.filtering.filter(
        PodView.from_object(created), names if names is not None else made.node_names()
    )
    made.sync()
    return outcome


def allocated(made: Harness, name: str) -> list[list[tuple[str, int, int]]]:
    value = annotations_of(made.kube, name)[KEYS.allocated]
    return [
        [(d.uuid, d.usedmem, d.usedcores) for d in container] for container in codec.decode_pod_devices(value)
    ]


# --- the verb's shape -------------------------------------------------------------------------------


def test_a_pod_asking_no_device_passes_every_candidate_through() -> None:
    made = one_node()
    outcome = schedule(made, make_pod("plain"), ["node-a", "elsewhere"])
    assert outcome.result == "passthrough"
    assert outcome.passed == ("node-a", "elsewhere")
    assert codec.VGPU_NODE not in annotations_of(made.kube, "plain")


def test_the_chosen_node_and_devices_are_written_to_the_pod_in_hamis_format() -> None:
    made = one_node()
    outcome = schedule(made, gpu_pod("p", memory=3000, cores=30))
    assert (outcome.result, outcome.node) == ("scheduled", "node-a")
    annotations = annotations_of(made.kube, "p")
    assert annotations[codec.VGPU_NODE] == "node-a"
    assert annotations[codec.VGPU_TIME].isdigit()
    assert annotations[KEYS.to_allocate] == annotations[KEYS.allocated]
    assert annotations[KEYS.allocated] in ("GPU-0,NVIDIA,3000,30:;", "GPU-1,NVIDIA,3000,30:;")
    assert made.kube.get_pod("default", "p")["metadata"]["labels"][codec.VGPU_NODE] == "node-a"


def test_every_container_gets_an_entry_init_containers_first() -> None:
    made = one_node()
    pod = make_pod(
        "p",
        init_containers=[make_container("setup", limits={GPU: 1, MEM: 1000})],
        containers=[make_container("plain"), make_container("main", limits={GPU: 1, MEM: 2000})],
    )
    schedule(made, pod)
    entries = allocated(made, "p")
    assert [len(entry) for entry in entries] == [1, 0, 1, 0]
    assert (entries[0][0][1], entries[2][0][1]) == (1000, 2000)


def test_unregistered_candidates_are_reported_as_hami_does() -> None:
    made = one_node()
    outcome = schedule(made, gpu_pod("p", memory=9000), ["node-a", "ghost"])
    assert outcome.result == "unschedulable"
    assert outcome.failed["ghost"] == "node unregistered"


# --- per-device rules (specs/hami-wire.md 3.4) -------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        pytest.param(gpu_pod("p", memory=9000), "2/2 CardInsufficientMemory", id="memory"),
        pytest.param(gpu_pod("p", cores=101, memory=100), None, id="cores-clamped-to-100"),
        pytest.param(gpu_pod("p", count=3), "NodeInsufficientDevice", id="too-many-devices"),
        pytest.param(
            gpu_pod("p", memory=100, annotations={USE_TYPE: "A100"}), "2/2 CardTypeMismatch", id="use-type"
        ),
        pytest.param(
            gpu_pod("p", memory=100, annotations={NOUSE_TYPE: "v100"}),
            "2/2 CardTypeMismatch",
            id="nouse-type",
        ),
        pytest.param(
            gpu_pod("p", memory=100, annotations={USE_UUID: "GPU-9"}), "2/2 CardUuidMismatch", id="use-uuid"
        ),
        pytest.param(
            gpu_pod("p", memory=100, annotations={VGPU_MODE: "mig"}), "2/2 CardTypeMismatch", id="vgpu-mode"
        ),
    ],
)
def test_per_device_rules_give_hamis_reason_strings(pod: dict[str, object], reason: str | None) -> None:
    made = one_node()
    outcome = schedule(made, pod)
    if reason is None:
        assert outcome.result == "scheduled"
    else:
        assert outcome.failed == {"node-a": reason}


def test_the_nouse_uuid_list_steers_the_pod_to_the_other_device() -> None:
    made = one_node()
    schedule(made, gpu_pod("p", memory=100, annotations={NOUSE_UUID: " GPU-0 , "}))
    assert allocated(made, "p")[0][0][0] == "GPU-1"


def test_memory_percentage_is_resolved_per_device() -> None:
    made = one_node([gpu("GPU-0", memory=16000)])
    schedule(made, gpu_pod("p", percent=25))
    assert allocated(made, "p")[0] == [("GPU-0", 4000, 0)]


def test_a_request_for_all_cores_wants_an_idle_device() -> None:
    made = one_node([gpu("GPU-0")])
    schedule(made, gpu_pod("first", memory=100, cores=0))
    outcome = schedule(made, gpu_pod("second", memory=100, cores=100))
    assert outcome.failed == {"node-a": "1/1 ExclusiveDeviceAllocateConflict"}


def test_the_split_count_limits_how_many_containers_share_a_device() -> None:
    made = one_node([gpu("GPU-0", count=2)])
    schedule(made, gpu_pod("a", memory=100))
    schedule(made, gpu_pod("b", memory=100))
    outcome = schedule(made, gpu_pod("c", memory=100))
    assert outcome.failed == {"node-a": "1/1 CardTimeSlicingExhausted"}


def test_a_cordoned_device_is_skipped_for_a_backend_with_the_shared_fit() -> None:
    backend = mock_backend()
    made = harness([backend])
    devices = [gpu(f"M-{i}", index=i, type="MOCK-GPU") for i in range(2)]
    made.add_node(
        registered_node("m", devices, backend=backend, annotations={codec.DEVICE_CORDON: "M-0, M-1"})
    )
    outcome = schedule(made, gpu_pod("p", memory=100, names=(MOCK_GPU, MOCK_MEM, MOCK_PCT, MOCK_CORES)))
    assert outcome.failed == {"m": "2/2 CardCordoned"}


def test_numa_bind_keeps_a_containers_devices_on_one_numa_node() -> None:
    devices = [gpu("A", index=0, numa=0), gpu("B", index=1, numa=1), gpu("C", index=2, numa=1)]
    made = one_node(devices)
    schedule(made, gpu_pod("p", count=2, memory=100, annotations={NUMA_BIND: "true"}))
    assert sorted(uuid for uuid, _, _ in allocated(made, "p")[0]) == ["B", "C"]
    outcome = schedule(made, gpu_pod("q", count=3, memory=100, annotations={NUMA_BIND: "true"}))
    assert outcome.result == "unschedulable"
    assert "NumaNotFit" in outcome.failed["node-a"]


def test_an_unhealthy_device_is_refused() -> None:
    made = one_node([gpu("GPU-0", health=False), gpu("GPU-1", index=1)])
    outcome = schedule(made, gpu_pod("p", count=2, memory=100))
    # GenReason sorts the items as strings.
    assert outcome.failed == {"node-a": "1/2 AllocatedCardsInsufficientRequest, 1/2 CardNotHealth"}


# --- policies (3.6, 3.7) ------------------------------------------------------------------------------


def fleet_with_usage(config: SchedulerConfig | None = None) -> Harness:
    """Node ``busy`` has half its memory taken, ``idle`` none."""
    made = harness(config=config)
    made.add_node(registered_node("busy", gpus("B", 1)))
    made.add_node(registered_node("idle", gpus("I", 1)))
    schedule(made, gpu_pod("seed", memory=4000), ["busy"])
    return made


def test_the_default_binpack_policy_picks_the_fullest_node_that_fits() -> None:
    made = fleet_with_usage()
    assert schedule(made, gpu_pod("p", memory=1000)).node == "busy"


def test_the_config_default_can_be_spread() -> None:
    made = fleet_with_usage(SchedulerConfig(node_scheduler_policy="spread"))
    assert schedule(made, gpu_pod("p", memory=1000)).node == "idle"


def test_a_pod_annotation_overrides_the_node_policy() -> None:
    made = fleet_with_usage()
    pod = gpu_pod("p", memory=1000, annotations={codec.NODE_SCHEDULER_POLICY: "spread"})
    assert schedule(made, pod).node == "idle"


def test_binpack_falls_through_to_the_next_node_when_the_fullest_cannot_fit() -> None:
    made = fleet_with_usage()
    assert schedule(made, gpu_pod("p", memory=6000)).node == "idle"


@pytest.mark.parametrize(("policy", "expected"), [("binpack", "GPU-0"), ("spread", "GPU-1")])
def test_the_device_policy_chooses_the_fuller_or_emptier_device(policy: str, expected: str) -> None:
    made = one_node()
    schedule(made, gpu_pod("seed", memory=4000, annotations={USE_UUID: "GPU-0"}))
    schedule(made, gpu_pod("p", memory=100, annotations={codec.GPU_SCHEDULER_POLICY: policy}))
    assert allocated(made, "p")[0][0][0] == expected


def test_topology_aware_picks_the_best_connected_pair() -> None:
    scores = {
        "GPU-0": {"GPU-1": 10, "GPU-2": 100},
        "GPU-1": {"GPU-0": 10, "GPU-2": 10},
        "GPU-2": {"GPU-0": 100, "GPU-1": 10},
    }
    made = harness()
    made.add_node(registered_node("node-a", gpus("GPU", 3), annotations={PAIR_SCORES: json.dumps(scores)}))
    pod = gpu_pod("p", count=2, memory=100, annotations={codec.GPU_SCHEDULER_POLICY: "topology-aware"})
    schedule(made, pod)
    assert sorted(uuid for uuid, _, _ in allocated(made, "p")[0]) == ["GPU-0", "GPU-2"]


def test_scoring_weights_change_which_device_is_preferred() -> None:
    made = one_node()
    for name in ("small-1", "small-2"):
        schedule(made, gpu_pod(name, memory=100, annotations={USE_UUID: "GPU-0"}))
    schedule(made, gpu_pod("large", memory=7000, annotations={USE_UUID: "GPU-1"}))
    weights = {codec.GPU_SCHEDULER_POLICY: "binpack", codec.DEVICE_SCORING_WEIGHTS: "slot=1,core=0,memory=0"}
    schedule(made, gpu_pod("by-slots", memory=100, annotations=weights))
    weights[codec.DEVICE_SCORING_WEIGHTS] = "slot=0,core=0,memory=1"
    schedule(made, gpu_pod("by-memory", memory=100, annotations=weights))
    assert allocated(made, "by-slots")[0][0][0] == "GPU-0"
    assert allocated(made, "by-memory")[0][0][0] == "GPU-1"


def test_a_plugin_device_policy_orders_the_devices_a_fit_tries_first() -> None:
    made = one_node()
    lowest_index = ScoringPolicy(name="lowest-index", kind="device", score=lambda devices: -devices[0].index)
    made.filtering._policies["lowest-index"] = lowest_index
    schedule(made, gpu_pod("p", memory=100, annotations={codec.GPU_SCHEDULER_POLICY: "lowest-index"}))
    assert allocated(made, "p")[0][0][0] == "GPU-0"


def test_a_backend_with_its_own_node_score_is_ranked_on_every_node() -> None:
    made = harness([ScoringBackend()])
    made.add_node(registered_node("plain", gpus("P", 1)))
    made.add_node(registered_node("favoured", gpus("F", 1)))
    outcome = schedule(made, gpu_pod("p", memory=100))
    assert outcome.node in ("plain", "favoured")
    assert outcome.evaluated == 2


def test_a_malformed_scoring_weights_annotation_is_an_error_naming_it() -> None:
    made = one_node()
    message = 'invalid hami.io/device-scoring-weights annotation "slot=1,core=high,memory=3": "core" weight must be an integer'
    with pytest.raises(CodecError, match=message):
        schedule(
            made,
            gpu_pod("p", memory=100, annotations={codec.DEVICE_SCORING_WEIGHTS: "slot=1,core=high,memory=3"}),
        )


def test_a_pod_naming_an_unknown_node_policy_gets_the_default_and_a_warning_event() -> None:
    kube = FakeKube()
    recorder = EventRecorder(kube)
    made = harness(kube=kube, recorder=recorder, config=SchedulerConfig(node_scheduler_policy="spread"))
    made.add_node(registered_node("empty", gpus("E", 1)))
    made.add_node(registered_node("busy", gpus("B", 1)))
    schedule(made, gpu_pod("first", memory=1000), ["busy"])
    recorder.start()
    outcome = schedule(made, gpu_pod("p", memory=1000, annotations={codec.NODE_SCHEDULER_POLICY: "fastest"}))
    recorder.stop()
    assert (outcome.result, outcome.node) == ("scheduled", "empty")  # spread, the configured default
    warnings = [e for e in kube.list_events("default")["items"] if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["UnknownSchedulerPolicy"]
    assert warnings[0]["message"] == (
        "unknown node scheduler policy 'fastest' (known: bestfit, binpack, dotprod, fgd, fgd-strand, gpu-clustering, gpu-packing, random, spread); scheduled with spread"
    )


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_or_absent_node_policy_means_the_configured_default(value: str | None) -> None:
    made = harness(config=SchedulerConfig(node_scheduler_policy="spread"))
    made.add_node(registered_node("empty", gpus("E", 1)))
    made.add_node(registered_node("busy", gpus("B", 1)))
    schedule(made, gpu_pod("first", memory=1000), ["busy"])
    annotations = {codec.NODE_SCHEDULER_POLICY: value} if value is not None else {}
    outcome = schedule(made, gpu_pod("p", memory=1000, annotations=annotations))
    assert outcome.node == "empty"


def test_a_node_without_devices_is_reported_unregistered() -> None:
    made = one_node()
    made.add_node(make_node("plain"))  # no register annotation
    outcome = schedule(made, gpu_pod("p", memory=100_000), ["node-a", "plain", "ghost"])
    assert outcome.result == "unschedulable"
    assert outcome.failed == {
        "node-a": "2/2 CardInsufficientMemory",
        "plain": codec.NODE_UNREGISTERED,
        "ghost": codec.NODE_UNREGISTERED,
    }


def test_a_malformed_resource_is_an_error_naming_the_pod_and_container() -> None:
    made = one_node()
    pod = make_pod("p", containers=[make_container("main", limits={GPU: 1, MEM: "16Gi"})])
    with pytest.raises(BackendError, match="pod default/p: backend nvidia: container main"):
        schedule(made, pod)


def test_a_pod_with_bad_input_gets_a_warning_event() -> None:
    kube = FakeKube()
    recorder = EventRecorder(kube)
    made = harness(kube=kube, recorder=recorder)
    made.add_node(registered_node("node-a", gpus("GPU", 1)))
    pod = gpu_pod("p", memory=100, annotations={codec.DEVICE_SCORING_WEIGHTS: ""})
    recorder.start()
    with pytest.raises(CodecError):
        schedule(made, pod)
    recorder.stop()
    (event,) = kube.list_events("default")["items"]
    assert (event["type"], event["reason"]) == ("Warning", "FilteringFailed")
    assert "expected slot, core, and memory weights" in event["message"]


# --- failures, reservations and concurrency -------------------------------------------------------------


def test_when_nothing_fits_every_candidate_gets_a_reason() -> None:
    made = harness()
    for name in ("a", "b", "c"):
        made.add_node(registered_node(name, gpus(name, 1)))
        schedule(made, gpu_pod(f"big-{name}", memory=7000), [name])
    outcome = schedule(made, gpu_pod("p", memory=2000))
    assert outcome.result == "unschedulable"
    assert outcome.failed == dict.fromkeys(("a", "b", "c"), "1/1 CardInsufficientMemory")
    assert outcome.evaluated == 3


def test_failed_nodes_list_only_the_nodes_fitted_before_the_chosen_one() -> None:
    made = fleet_with_usage()
    outcome = schedule(made, gpu_pod("p", memory=3000))
    assert outcome.node == "busy"
    assert outcome.failed == {}


def test_re_filtering_a_pod_does_not_count_its_previous_choice() -> None:
    made = one_node([gpu("GPU-0")])
    pod = made.add_pod(gpu_pod("p", memory=8000))
    made.filtering.filter(PodView.from_object(pod), ["node-a"])
    made.sync()
    again = made.filtering.filter(PodView.from_object(made.kube.get_pod("default", "p")), ["node-a"])
    assert again.node == "node-a"


def test_a_pod_deleted_before_its_annotation_releases_its_reservation() -> None:
    made = one_node([gpu("GPU-0")])
    pod = made.add_pod(gpu_pod("p", memory=8000))
    made.kube.delete_pod("default", "p")
    with pytest.raises(NotFoundError):
        made.filtering.filter(PodView.from_object(pod), ["node-a"])
    assert made.cache.allocation(pod["metadata"]["uid"]) is None


def test_concurrent_filters_never_book_more_than_a_device_has() -> None:
    made = one_node([gpu("GPU-0", memory=8000, count=100)])
    pods = [made.add_pod(gpu_pod(f"p{i}", memory=1000)) for i in range(20)]
    outcomes: list[FilterOutcome] = []
    lock = threading.Lock()

    def run(chunk: Sequence[dict[str, object]]) -> None:
        for pod in chunk:
            outcome = made.filtering.filter(PodView.from_object(pod), ["node-a"])  # type: ignore[arg-type]
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(pods[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(outcome.result == "scheduled" for outcome in outcomes) == 8
    view = made.cache.view("node-a")
    assert view is not None
    assert view.devices["nvidia"][0].usedmem == 8000


def test_the_namespace_quota_counts_every_device_of_a_multi_device_pod() -> None:
    made = one_node(gpus("GPU", 4))
    quota: ResourceQuota = {
        "metadata": {"name": "q", "namespace": "default"},
        "spec": {"hard": {f"limits.{MEM}": "10000", f"limits.{CORES}": "1000"}},
    }
    made.cache.set_quotas(limits_from_quotas([quota], [NvidiaLikeBackend()]))
    assert schedule(made, gpu_pod("two", count=2, memory=4000)).result == "scheduled"
    outcome = schedule(made, gpu_pod("again", count=2, memory=4000))
    assert outcome.result == "unschedulable"
    assert "ResourceQuotaNotFit" in outcome.failed["node-a"]
    assert schedule(made, gpu_pod("small", count=1, memory=2000)).result == "scheduled"


# --- registrations HAMi's Go device plugin writes ------------------------------------------------------


@pytest.mark.parametrize(
    "register",
    [
        pytest.param(
            '[{"id":"GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec","count":10,"devmem":32768,"devcore":100,'
            '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true},'
            '{"id":"GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448","index":1,"count":10,"devmem":32768,"devcore":100,'
            '"type":"NVIDIA-Tesla V100-PCIE-32GB","mode":"hami-core","health":true}]',
            id="go-json",
        ),
        pytest.param(
            "GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:"
            "GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:",
            id="legacy-colon",
        ),
    ],
)
def test_a_node_registered_by_hamis_go_plugin_is_scheduled(register: str) -> None:
    from hami_core.testing.builders import make_node

    made = harness()
    node = make_node(
        "v100",
        annotations={
            KEYS.register: register,
            KEYS.handshake: "Reported 2024-01-23 04:30:04.434037031 +0000 UTC",
        },
        allocatable={GPU: 20},
    )
    made.add_node(node)
    outcome = schedule(made, gpu_pod("p", count=2, memory=3000, cores=25))
    assert outcome.node == "v100"
    assert sorted(allocated(made, "p")[0]) == [
        ("GPU-00552014-5c87-89ac-b1a6-7b53aa24b0ec", 3000, 25),
        ("GPU-0fc3eda5-e98b-a25b-5b0d-cf5c855d1448", 3000, 25),
    ]


# --- dry run -------------------------------------------------------------------------------------------


def test_the_dry_run_path_scores_the_given_nodes_and_writes_nothing() -> None:
    made = harness()
    pod = made.add_pod(gpu_pod("p", memory=20000))
    nodes = [registered_node("small", gpus("S", 1)), registered_node("large", [gpu("L-0", memory=32000)])]
    outcome = made.filtering.dry_run(PodView.from_object(pod), nodes)
    assert (outcome.result, outcome.node) == ("scheduled", "large")
    assert outcome.node_object is nodes[1]
    assert outcome.failed == {"small": "1/1 CardInsufficientMemory"}
    assert codec.VGPU_NODE not in annotations_of(made.kube, "p")
