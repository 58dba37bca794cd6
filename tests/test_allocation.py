"""Device scoring, ordering and fitting shared by every backend (``specs/hami-wire.md`` 3.4-3.7)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from hami_core import allocation
from hami_core.allocation import DevicePolicy
from hami_core.allocation import FitRules
from hami_core.devices import ContainerDevice
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceRequest
from hami_core.devices import DeviceUsage
from hami_core.devices import FitResult
from hami_core.devices import MigProfile
from hami_core.devices import PodDevices
from hami_core.devices import ScoringWeights
from hami_core.errors import BackendError

SPREAD = allocation.parse_device_policy("spread")
BINPACK = allocation.parse_device_policy("binpack")
WEIGHTS = ScoringWeights()
RULES = FitRules(request_type="NVIDIA")


def gpu(
    uuid: str,
    *,
    index: int = 0,
    count: int = 10,
    used: int = 0,
    totalmem: int = 8000,
    usedmem: int = 0,
    totalcore: int = 100,
    usedcores: int = 0,
    numa: int = 0,
    health: bool = True,
    type: str = "NVIDIA",
    mode: str = "hami-core",
) -> DeviceUsage:
    """An NVIDIA device with 10 slots, 8000 MiB and 100 cores unless told otherwise."""
    return DeviceUsage(
        id=uuid,
        index=index,
        count=count,
        used=used,
        totalmem=totalmem,
        usedmem=usedmem,
        totalcore=totalcore,
        usedcores=usedcores,
        numa=numa,
        health=health,
        type=type,
        mode=mode,
    )


def scored(uuid: str, score: float, *, numa: int = 0, index: int = 0, used: int = 0) -> DeviceUsage:
    """A device whose score with no request is ``score`` (memory 100 MiB, 10 per point) plus ``used``."""
    return DeviceUsage(
        id=uuid,
        index=index,
        count=10,
        used=used,
        totalmem=100,
        usedmem=round(score * 10),
        totalcore=100,
        numa=numa,
        type="NVIDIA",
    )


def ask(
    nums: int = 1, *, mem: int = 0, pct: int = 101, cores: int = 0, type: str = "NVIDIA"
) -> DeviceRequest:
    return DeviceRequest(nums=nums, type=type, memreq=mem, mem_percentage_req=pct, coresreq=cores)


def uuids(result: FitResult) -> list[str]:
    return [device.uuid for device in result.devices]


# --- device score (3.6) -------------------------------------------------------------------------

TYPE1 = DeviceUsage(
    id="d", type="type1", count=10, used=2, totalcore=4, usedcores=1, totalmem=8192, usedmem=2048
)
EMPTY_TYPE1 = DeviceUsage(id="d", type="type1", count=10, totalcore=10, totalmem=10000)


@pytest.mark.parametrize(
    ("device", "requests", "expected"),
    [
        pytest.param(DeviceUsage(id="d", type="type1"), [], 0.0, id="zero-capacity"),
        pytest.param(DeviceUsage(id="d", type="type1", totalcore=8, totalmem=4096), [], 0.0, id="zero-count"),
        pytest.param(TYPE1, [], 7.0, id="usage-only"),
        pytest.param(
            TYPE1,
            [
                DeviceRequest(nums=4, type="type1", memreq=1024, mem_percentage_req=0, coresreq=1),
                DeviceRequest(nums=2, type="type2", memreq=4096, mem_percentage_req=50, coresreq=2),
            ],
            11.75,
            id="other-types-ignored-and-nums-is-one-slot",
        ),
        pytest.param(
            EMPTY_TYPE1,
            [DeviceRequest(nums=1, type="type1", mem_percentage_req=50, coresreq=2)],
            8.0,
            id="memory-percentage",
        ),
        pytest.param(
            EMPTY_TYPE1,
            [
                DeviceRequest(nums=1, type="type1", mem_percentage_req=10, coresreq=1),
                DeviceRequest(nums=1, type="type1", mem_percentage_req=20, coresreq=2),
                DeviceRequest(nums=1, type="type2", memreq=1000, mem_percentage_req=50, coresreq=5),
            ],
            8.0,
            id="same-types-aggregate",
        ),
    ],
)
def test_device_score_matches_hami_compute_score(
    device: DeviceUsage, requests: list[DeviceRequest], expected: float
) -> None:
    assert allocation.device_score(device, requests, WEIGHTS) == expected


def weighted(uuid: str, used: int, usedcores: int, usedmem: int) -> DeviceUsage:
    return DeviceUsage(
        id=uuid,
        type="type1",
        count=10,
        totalcore=100,
        totalmem=100,
        used=used,
        usedcores=usedcores,
        usedmem=usedmem,
    )


@pytest.mark.parametrize(
    ("weights", "score_a", "score_b"),
    [
        pytest.param(ScoringWeights(), 16.0, 15.0, id="default"),
        pytest.param(ScoringWeights(slot=1, core=1, memory=3), 26.0, 27.0, id="memory-3"),
        pytest.param(ScoringWeights(slot=1, core=3, memory=1), 34.0, 17.0, id="core-3"),
    ],
)
def test_scoring_weights_scale_each_term(weights: ScoringWeights, score_a: float, score_b: float) -> None:
    request = [DeviceRequest(nums=1, type="type1", mem_percentage_req=40)]
    assert allocation.device_score(weighted("a", 1, 90, 10), request, weights) == score_a
    assert allocation.device_score(weighted("b", 7, 10, 20), request, weights) == score_b


def test_request_type_must_equal_device_type_exactly_to_weigh_in() -> None:
    model = gpu("g", type="NVIDIA A100-SXM4-40GB", used=2, usedmem=4000)
    with_request = allocation.device_score(model, [ask(mem=4000, cores=50)], WEIGHTS)
    assert with_request == allocation.device_score(model, [], WEIGHTS) == 7.0


def test_device_score_is_rounded_to_float32() -> None:
    third = DeviceUsage(id="d", type="t", count=3, used=1, totalcore=3, totalmem=3)
    assert allocation.device_score(third, [], WEIGHTS) == pytest.approx(3.3333333, abs=1e-6)
    assert allocation.device_score(third, [], WEIGHTS) != 10 * (1 / 3)


# --- policy parsing and device order (3.6) ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", DevicePolicy(keys=("spread",)), id="empty-is-spread"),
        pytest.param("spread", DevicePolicy(keys=("spread",)), id="spread"),
        pytest.param("binpack", DevicePolicy(keys=("binpack",)), id="binpack"),
        pytest.param("mutex", DevicePolicy(keys=("mutex",), mutex=True), id="mutex"),
        pytest.param(
            "topology-aware",
            DevicePolicy(keys=("spread",), topology_aware=True),
            id="topology-aware-sorts-as-spread",
        ),
        pytest.param("bogus", DevicePolicy(keys=("spread",)), id="unknown-is-spread"),
        pytest.param(" binpack", DevicePolicy(keys=("spread",)), id="single-value-is-not-trimmed"),
        pytest.param("numa", DevicePolicy(keys=("numa",), chain=True), id="bare-numa-is-a-chain"),
        pytest.param("binpack,numa", DevicePolicy(keys=("binpack", "numa"), chain=True), id="chain"),
        pytest.param(
            " numa , spread,numa",
            DevicePolicy(keys=("numa", "spread"), chain=True),
            id="chain-trimmed-deduplicated",
        ),
        pytest.param(
            "mutex,topology-aware",
            DevicePolicy(keys=("spread",), chain=True, mutex=True, topology_aware=True),
            id="chain-of-filters-sorts-as-spread",
        ),
        pytest.param(
            "binpack, mutex", DevicePolicy(keys=("binpack",), chain=True, mutex=True), id="chain-with-mutex"
        ),
    ],
)
def test_parse_device_policy(value: str, expected: DevicePolicy) -> None:
    assert allocation.parse_device_policy(value) == expected


@pytest.mark.parametrize(
    ("policy", "numa_bind", "first", "second", "tried_first"),
    [
        pytest.param("binpack", False, scored("a", 1), scored("b", 2), "b", id="binpack-higher-score"),
        pytest.param(
            "binpack",
            False,
            scored("a", 2, numa=0),
            scored("b", 1, numa=1),
            "a",
            id="binpack-score-over-numa",
        ),
        pytest.param(
            "binpack",
            False,
            scored("a", 1.5, numa=1),
            scored("b", 1.5, numa=0),
            "a",
            id="binpack-tie-higher-numa",
        ),
        pytest.param("spread", False, scored("a", 1), scored("b", 2), "a", id="spread-lower-score"),
        pytest.param(
            "spread", False, scored("a", 2, numa=0), scored("b", 1, numa=1), "b", id="spread-score-over-numa"
        ),
        pytest.param(
            "spread",
            False,
            scored("a", 1.5, numa=1),
            scored("b", 1.5, numa=0),
            "a",
            id="spread-tie-higher-numa",
        ),
        pytest.param(
            "binpack",
            True,
            scored("a", 9, numa=0),
            scored("b", 1, numa=1),
            "a",
            id="binpack-numa-bind-lower-numa",
        ),
        pytest.param(
            "binpack",
            True,
            scored("a", 1, numa=0),
            scored("b", 2, numa=0),
            "b",
            id="binpack-numa-bind-same-numa",
        ),
        pytest.param(
            "spread",
            True,
            scored("a", 1, numa=0),
            scored("b", 9, numa=1),
            "b",
            id="spread-numa-bind-higher-numa",
        ),
        pytest.param(
            "spread",
            True,
            scored("a", 2, numa=0),
            scored("b", 1, numa=0),
            "b",
            id="spread-numa-bind-same-numa",
        ),
        pytest.param("mutex", False, scored("a", 0, used=2), scored("b", 5), "b", id="mutex-idle-first"),
        pytest.param(
            "mutex",
            True,
            scored("a", 0, numa=0),
            scored("b", 0, numa=1, used=1),
            "a",
            id="mutex-ignores-numa-bind",
        ),
        pytest.param("numa", False, scored("a", 0.5, numa=1), scored("b", 9, numa=0), "a", id="bare-numa"),
        pytest.param(
            "numa",
            False,
            scored("a", 1, index=3),
            scored("b", 2, index=1),
            "a",
            id="bare-numa-index-tiebreak",
        ),
        pytest.param(
            "binpack,numa",
            False,
            scored("a", 1.5, numa=1),
            scored("b", 1.5, numa=0),
            "a",
            id="chain-numa-tiebreak",
        ),
        pytest.param(
            "numa,spread",
            False,
            scored("a", 0.5, numa=1),
            scored("b", 9, numa=0),
            "a",
            id="chain-numa-primary",
        ),
        pytest.param("numa,spread", False, scored("a", 2), scored("b", 1), "b", id="chain-numa-then-spread"),
        pytest.param(
            "mutex,spread",
            False,
            scored("a", 0, used=5),
            scored("b", 9),
            "a",
            id="chain-mutex-is-no-sort-key",
        ),
        pytest.param(
            "mutex,topology-aware", False, scored("a", 1), scored("b", 2), "a", id="chain-of-filters-spreads"
        ),
        pytest.param(
            "binpack,numa",
            False,
            scored("a", 1, index=5),
            scored("b", 1, index=2),
            "a",
            id="chain-index-tiebreak",
        ),
        pytest.param(
            "binpack,spread",
            True,
            scored("a", 9, numa=0),
            scored("b", 1, numa=1),
            "b",
            id="chain-numa-bind-forces-numa-first",
        ),
        pytest.param(
            "spread,numa",
            True,
            scored("a", 2, numa=0),
            scored("b", 1, numa=0),
            "b",
            id="chain-numa-bind-then-spread",
        ),
    ],
)
def test_order_devices_puts_the_preferred_device_last(
    policy: str, numa_bind: bool, first: DeviceUsage, second: DeviceUsage, tried_first: str
) -> None:
    for devices in ([first, second], [second, first]):
        ordered = allocation.order_devices(
            devices, [], allocation.parse_device_policy(policy), WEIGHTS, numa_bind
        )
        assert ordered[-1].id == tried_first


def test_single_policy_ties_keep_the_given_order() -> None:
    devices = [scored(name, 1) for name in "cab"]
    assert [d.id for d in allocation.order_devices(devices, [], SPREAD, WEIGHTS, False)] == ["c", "a", "b"]


def test_order_counts_the_containers_requests_in_the_score() -> None:
    # b is fuller by usage, but the request only weighs on a (type match) and pushes it ahead.
    a = DeviceUsage(id="a", type="small", count=10, totalmem=100, totalcore=100)
    b = DeviceUsage(id="b", type="big", count=10, totalmem=100, totalcore=100, used=1)
    request = [DeviceRequest(nums=1, type="small", memreq=50)]
    ordered = allocation.order_devices([a, b], request, BINPACK, WEIGHTS, False)
    assert [d.id for d in ordered] == ["b", "a"]


# --- node score (3.7) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        pytest.param(
            [
                DeviceUsage(
                    id="a", count=100, used=50, totalcore=100, usedcores=100, totalmem=100, usedmem=100
                ),
                DeviceUsage(
                    id="b", count=150, used=75, totalcore=200, usedcores=200, totalmem=200, usedmem=200
                ),
            ],
            25.0,
            id="compute-default-score",
        ),
        pytest.param([gpu("a", used=5, usedcores=50, usedmem=4000)], 15.0, id="half-used"),
        pytest.param([gpu("a")], 0.0, id="unused"),
        pytest.param([gpu("a", used=4, count=4), gpu("b", count=4)], 5.0, id="sums-over-devices"),
        pytest.param([gpu("a", used=1, totalmem=0)], 0.0, id="zero-total-is-zero"),
        pytest.param([], 0.0, id="no-devices"),
    ],
)
def test_node_score(devices: list[DeviceUsage], expected: float) -> None:
    assert allocation.node_score(devices) == expected


def test_node_score_docs_example_binpack_prefers_the_fuller_node() -> None:
    node1 = [gpu("a", count=4, used=4)]
    node2 = [gpu("b", count=4, used=3)]
    assert allocation.node_score(node1) == 10.0
    assert allocation.node_score(node2) == 7.5


def test_node_score_converts_large_totals_to_float32_like_go() -> None:
    # 2**24 + 1 MiB is not a float32: Go rounds both sides before dividing, which moves the result.
    device = DeviceUsage(id="a", count=1, totalcore=1, totalmem=50331655, usedmem=(1 << 24) + 1)
    assert allocation.node_score([device]) == pytest.approx(3.3333328, abs=1e-7)


# --- per-device fit (3.4) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "request_", "rules", "policy", "reason"),
    [
        pytest.param(gpu("g", health=False), ask(), RULES, SPREAD, "CardNotHealth", id="not-healthy"),
        pytest.param(
            gpu("g"),
            ask(),
            FitRules("NVIDIA", cordoned=frozenset({"g"})),
            SPREAD,
            "CardCordoned",
            id="cordoned",
        ),
        pytest.param(
            gpu("g"),
            ask(),
            FitRules("NVIDIA", type_ok=lambda d: d.type != "NVIDIA"),
            SPREAD,
            "CardTypeMismatch",
            id="type-excluded",
        ),
        pytest.param(
            gpu("g", type="NVIDIA-MLU"),
            ask(type="MLU"),
            RULES,
            SPREAD,
            "CardTypeMismatch",
            id="request-of-another-type",
        ),
        pytest.param(
            gpu("g"),
            ask(),
            FitRules("NVIDIA", uuid_ok=lambda u: u != "g"),
            SPREAD,
            "CardUuidMismatch",
            id="uuid",
        ),
        pytest.param(gpu("g", count=2, used=2), ask(), RULES, SPREAD, "CardTimeSlicingExhausted", id="slots"),
        pytest.param(
            gpu("g", used=1),
            ask(),
            RULES,
            allocation.parse_device_policy("mutex"),
            "ExclusiveDeviceAllocateConflict",
            id="mutex-busy",
        ),
        pytest.param(
            gpu("g", usedmem=7000), ask(mem=1001), RULES, SPREAD, "CardInsufficientMemory", id="memory"
        ),
        pytest.param(
            gpu("g", usedmem=4001),
            ask(pct=50),
            RULES,
            SPREAD,
            "CardInsufficientMemory",
            id="memory-percentage",
        ),
        pytest.param(
            gpu("g", usedcores=60), ask(cores=41), RULES, SPREAD, "CardInsufficientCore", id="cores"
        ),
        pytest.param(
            gpu("g", used=1),
            ask(cores=100),
            RULES,
            SPREAD,
            "ExclusiveDeviceAllocateConflict",
            id="exclusive-card-in-use",
        ),
        pytest.param(
            gpu("g", used=1, usedcores=100),
            ask(),
            RULES,
            SPREAD,
            "CardComputeUnitsExhausted",
            id="no-cores-left",
        ),
        pytest.param(
            gpu("g", mode="mig"),
            ask(mem=1000),
            RULES,
            SPREAD,
            "CardMigTopologyInfeasible",
            id="mig",
        ),
        pytest.param(
            gpu("g"),
            ask(),
            FitRules("NVIDIA", extra_check=lambda d, entry, picked: "ResourceQuotaNotFit"),
            SPREAD,
            "ResourceQuotaNotFit",
            id="extra-check",
        ),
    ],
)
def test_a_rejected_device_is_counted_under_its_reason(
    device: DeviceUsage, request_: DeviceRequest, rules: FitRules, policy: DevicePolicy, reason: str
) -> None:
    result = allocation.fit_container(request_, [device], rules, policy)
    assert result == FitResult(ok=False, reasons={reason: 1}, considered=1)


def test_the_first_failing_check_wins() -> None:
    tired = gpu("g", health=False, count=1, used=1, usedmem=8000)
    result = allocation.fit_container(ask(mem=1), [tired], RULES, SPREAD)
    assert dict(result.reasons) == {"CardNotHealth": 1}


def test_more_devices_than_the_node_has_fails_bare_node_insufficient_device() -> None:
    devices = [gpu("a"), gpu("b"), gpu("m", type="MLU")]
    result = allocation.fit_container(ask(3), devices, RULES, SPREAD)
    assert result == FitResult(ok=False, reasons={"NodeInsufficientDevice": 1}, considered=0)


def test_only_devices_of_the_request_type_are_considered() -> None:
    devices = [gpu("a", type="nvidia A100"), gpu("m", type="MLU370", health=False)]
    result = allocation.fit_container(ask(), devices, RULES, SPREAD)
    assert result.ok
    assert result.considered == 1
    assert uuids(result) == ["a"]


def test_fit_takes_devices_from_the_end_and_fills_each_entry() -> None:
    devices = [gpu("a", index=0), gpu("b", index=1), gpu("c", index=2)]
    result = allocation.fit_container(ask(2, mem=1000, cores=30), devices, RULES, SPREAD)
    assert result.ok
    assert result.devices == (
        ContainerDevice(uuid="c", type="NVIDIA", usedmem=1000, usedcores=30),
        ContainerDevice(uuid="b", type="NVIDIA", usedmem=1000, usedcores=30),
    )
    assert [d.idx for d in result.devices] == [2, 1]
    assert result.considered == 3


def test_result_type_is_what_the_entries_carry() -> None:
    rules = FitRules("Ascend910B3", result_type="Ascend910B3-vnpu")
    result = allocation.fit_container(ask(type="Ascend910B3"), [gpu("n", type="Ascend910B3")], rules, SPREAD)
    assert [d.type for d in result.devices] == ["Ascend910B3-vnpu"]


def test_memory_percentage_resolves_against_each_device() -> None:
    devices = [gpu("small", totalmem=4000), gpu("big", totalmem=16000)]
    result = allocation.fit_container(ask(2, pct=50), devices, RULES, SPREAD)
    assert {d.uuid: d.usedmem for d in result.devices} == {"big": 8000, "small": 2000}


def test_whole_device_by_default_percentage_is_all_its_memory() -> None:
    result = allocation.fit_container(ask(pct=100), [gpu("g", totalmem=24000)], RULES, SPREAD)
    assert result.devices[0].usedmem == 24000


def test_cores_above_100_are_clamped_to_100() -> None:
    result = allocation.fit_container(ask(cores=150), [gpu("g")], RULES, SPREAD)
    assert result.ok
    assert result.devices[0].usedcores == 100


def test_exclusive_cores_take_an_idle_card() -> None:
    devices = [gpu("idle"), gpu("busy", used=1, usedmem=100)]
    result = allocation.fit_container(ask(cores=100), devices, RULES, SPREAD)
    assert uuids(result) == ["idle"]
    assert result.reasons == {}


def test_exclusive_rule_applies_only_to_100_core_devices() -> None:
    result = allocation.fit_container(ask(cores=100), [gpu("g", totalcore=200, used=1)], RULES, SPREAD)
    assert result.ok


def test_mutex_takes_only_idle_devices() -> None:
    mutex = allocation.parse_device_policy("mutex")
    devices = [gpu("idle"), gpu("busy", used=1)]
    ordered = allocation.order_devices(devices, [ask()], mutex, WEIGHTS, False)
    assert uuids(allocation.fit_container(ask(), ordered, RULES, mutex)) == ["idle"]
    failed = allocation.fit_container(ask(2), ordered, RULES, mutex)
    assert dict(failed.reasons) == {
        "ExclusiveDeviceAllocateConflict": 1,
        "AllocatedCardsInsufficientRequest": 1,
    }


def test_partial_allocation_reports_allocated_cards_insufficient_request() -> None:
    devices = [gpu("a", usedmem=8000), gpu("b"), gpu("c")]
    result = allocation.fit_container(ask(3, mem=10), devices, RULES, SPREAD)
    assert result == FitResult(
        ok=False,
        reasons={"CardInsufficientMemory": 1, "AllocatedCardsInsufficientRequest": 2},
        considered=3,
    )


def test_extra_check_sees_the_entry_and_what_the_container_took() -> None:
    seen: list[tuple[str, int, tuple[str, ...]]] = []

    def quota(device: DeviceUsage, entry: ContainerDevice, picked: ContainerDevices) -> str | None:
        seen.append((device.id, entry.usedmem, tuple(p.uuid for p in picked)))
        return "ResourceQuotaNotFit" if len(picked) >= 1 else None

    rules = FitRules("NVIDIA", extra_check=quota)
    result = allocation.fit_container(ask(2, pct=25), [gpu("a"), gpu("b")], rules, SPREAD)
    assert seen == [("b", 2000, ()), ("a", 2000, ("b",))]
    assert dict(result.reasons) == {"ResourceQuotaNotFit": 1, "AllocatedCardsInsufficientRequest": 1}


def test_mig_devices_never_fit_and_other_devices_still_do() -> None:
    mig = gpu("mig", mode="mig")
    mig = attrs.evolve(mig, mig_profiles=(MigProfile(name="1g.10gb", memory_mb=10000),))
    result = allocation.fit_container(ask(mem=1000), [gpu("plain"), mig], RULES, SPREAD)
    assert uuids(result) == ["plain"]
    alone = allocation.fit_container(ask(mem=1000), [mig], RULES, SPREAD)
    assert dict(alone.reasons) == {"CardMigTopologyInfeasible": 1}


def test_zero_devices_asked_fits_with_nothing() -> None:
    assert allocation.fit_container(ask(0), [], RULES, SPREAD) == FitResult(ok=True)


# --- NUMA bind ----------------------------------------------------------------------------------

NUMA_RULES = FitRules("NVIDIA", numa_bind=True)


def numa_devices() -> list[DeviceUsage]:
    """HAMi's numa_sort_test: A(n0, score 5), B(n0, score 1), C(n1, score 3)."""
    return [scored("A", 5, numa=0, index=0), scored("B", 1, numa=0, index=1), scored("C", 3, numa=1, index=2)]


def test_numa_bind_ordering_keeps_a_numa_node_together_and_fits() -> None:
    ordered = allocation.order_devices(numa_devices(), [], SPREAD, WEIGHTS, True)
    result = allocation.fit_container(ask(2, mem=10), ordered, NUMA_RULES, SPREAD)
    assert result.ok
    assert sorted(uuids(result)) == ["A", "B"]


def test_numa_bind_fails_when_numa_runs_are_interleaved() -> None:
    ordered = allocation.order_devices(numa_devices(), [], SPREAD, WEIGHTS, False)
    assert [d.id for d in ordered] == ["A", "C", "B"]
    result = allocation.fit_container(ask(2, mem=10), ordered, NUMA_RULES, SPREAD)
    assert result == FitResult(
        ok=False, reasons={"NumaNotFit": 2, "AllocatedCardsInsufficientRequest": 1}, considered=3
    )


def test_without_numa_bind_the_idlest_device_wins_across_numa() -> None:
    devices = [scored("P", 1, numa=0), scored("Q", 8, numa=1), scored("R", 5, numa=1)]
    ordered = allocation.order_devices(devices, [], SPREAD, WEIGHTS, False)
    assert uuids(allocation.fit_container(ask(), ordered, RULES, SPREAD)) == ["P"]


def test_numa_bind_restarts_the_run_on_each_numa_node() -> None:
    devices = [gpu("a", numa=0), gpu("b", numa=0), gpu("c", numa=1, usedmem=8000), gpu("d", numa=1)]
    result = allocation.fit_container(ask(2, mem=10), devices, NUMA_RULES, SPREAD)
    assert uuids(result) == ["b", "a"]
    assert result.reasons == {}


# --- topology-aware -----------------------------------------------------------------------------

TOPOLOGY = allocation.parse_device_policy("topology-aware")
# a-b NVLink (100), c-d NVLink (200), everything else cross-CPU (10).
PAIRS = {
    "a": {"b": 100, "c": 10, "d": 10},
    "b": {"a": 100, "c": 10, "d": 10},
    "c": {"a": 10, "b": 10, "d": 200},
    "d": {"a": 10, "b": 10, "c": 200},
    "e": {},
}
TOPO_RULES = FitRules("NVIDIA", pair_scores=PAIRS)


def four_gpus() -> list[DeviceUsage]:
    return [gpu(name, index=i) for i, name in enumerate("abcd")]


def test_topology_aware_single_device_takes_the_worst_connected_card() -> None:
    devices = [*four_gpus(), gpu("e", index=4)]
    result = allocation.fit_container(ask(), devices, TOPO_RULES, TOPOLOGY)
    assert uuids(result) == ["e"]


def test_topology_aware_single_device_tie_goes_to_the_first_candidate() -> None:
    result = allocation.fit_container(ask(), four_gpus()[:2], TOPO_RULES, TOPOLOGY)
    assert uuids(result) == ["b"]


def test_topology_aware_group_takes_the_best_connected_combination() -> None:
    result = allocation.fit_container(ask(2), four_gpus(), TOPO_RULES, TOPOLOGY)
    assert uuids(result) == ["d", "c"]


def test_topology_aware_group_skips_devices_that_do_not_fit() -> None:
    devices = four_gpus()
    devices[3] = gpu("d", index=3, health=False)
    result = allocation.fit_container(ask(2), devices, TOPO_RULES, TOPOLOGY)
    assert uuids(result) == ["b", "a"]


def test_topology_aware_exact_count_takes_them_all() -> None:
    result = allocation.fit_container(ask(2), four_gpus()[:2], TOPO_RULES, TOPOLOGY)
    assert uuids(result) == ["b", "a"]


def test_topology_aware_with_too_few_candidates_fails() -> None:
    devices = [gpu("a"), gpu("b", usedmem=8000)]
    result = allocation.fit_container(ask(2, mem=10), devices, TOPO_RULES, TOPOLOGY)
    assert dict(result.reasons) == {"CardInsufficientMemory": 1, "AllocatedCardsInsufficientRequest": 1}


def test_unknown_pair_scores_count_as_zero() -> None:
    devices = [gpu("x"), gpu("y"), gpu("z")]
    result = allocation.fit_container(ask(2), devices, TOPO_RULES, TOPOLOGY)
    assert uuids(result) == ["z", "y"]


# --- per-node procedure (3.5) -------------------------------------------------------------------


def nvidia_fit(
    backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
) -> FitResult:
    return allocation.fit_container(request, devices, FitRules(backend.upper()), SPREAD)


def by_id(devices: Sequence[DeviceUsage]) -> dict[str, tuple[int, int, int]]:
    return {d.id: (d.used, d.usedmem, d.usedcores) for d in devices}


def test_app_containers_fit_cumulatively() -> None:
    node = {"nvidia": [gpu("a", count=2, totalmem=1000)]}
    containers = [{"nvidia": ask(mem=600)}, {"nvidia": ask(mem=400)}]
    fit = allocation.fit_pod(containers, 0, node, nvidia_fit, policy=SPREAD)
    assert fit.ok
    assert by_id(fit.usage["nvidia"]) == {"a": (2, 1000, 0)}
    over = allocation.fit_pod([*containers, {"nvidia": ask(mem=1)}], 0, node, nvidia_fit, policy=SPREAD)
    assert not over.ok
    assert over.reason == "1/1 CardTimeSlicingExhausted"


def test_spread_moves_the_next_container_to_the_idlest_device() -> None:
    node = {"nvidia": [gpu("a", index=0), gpu("b", index=1)]}
    containers = [{"nvidia": ask(mem=1000)}, {"nvidia": ask(mem=1000)}]
    fit = allocation.fit_pod(containers, 0, node, nvidia_fit, policy=SPREAD)
    assert [[d.uuid for d in c] for c in fit.devices.for_backend("nvidia")] == [["b"], ["a"]]


def test_binpack_keeps_the_next_container_on_the_fullest_device() -> None:
    node = {"nvidia": [gpu("a", index=0), gpu("b", index=1)]}
    containers = [{"nvidia": ask(mem=1000)}, {"nvidia": ask(mem=1000)}]
    fit = allocation.fit_pod(containers, 0, node, nvidia_fit, policy=BINPACK)
    assert [[d.uuid for d in c] for c in fit.devices.for_backend("nvidia")] == [["b"], ["b"]]


def test_init_containers_each_see_the_node_as_it_was_and_book_their_peak() -> None:
    node = {"nvidia": [gpu("a", totalmem=1000, used=1, usedmem=100)]}
    containers = [
        {"nvidia": ask(mem=900)},
        {"nvidia": ask(mem=800, cores=50)},
        {"nvidia": ask(mem=300, cores=10)},
    ]
    fit = allocation.fit_pod(containers, 2, node, nvidia_fit, policy=SPREAD)
    assert fit.ok
    # Init peak: used 2, mem 1000, cores 50; app: used 2, mem 400, cores 10.
    assert by_id(fit.usage["nvidia"]) == {"a": (2, 1000, 50)}


def test_an_init_container_that_does_not_fit_fails_the_node() -> None:
    node = {"nvidia": [gpu("a", totalmem=1000)]}
    containers = [{"nvidia": ask(mem=2000)}, {"nvidia": ask(mem=10)}]
    fit = allocation.fit_pod(containers, 1, node, nvidia_fit, policy=SPREAD)
    assert fit == allocation.PodFit(ok=False, reasons={"CardInsufficientMemory": 1}, considered=1)
    assert fit.reason == "1/1 CardInsufficientMemory"


def test_every_requested_backend_gets_one_entry_per_container() -> None:
    node = {"nvidia": [gpu("g")], "mlu": [gpu("m", type="MLU")], "dcu": [gpu("d", type="DCU")]}
    containers = [
        {"mlu": ask(type="MLU")},
        {},
        {"nvidia": ask(), "mlu": ask(0, type="MLU")},
    ]
    fit = allocation.fit_pod(containers, 1, node, nvidia_fit, policy=SPREAD)
    assert fit.ok
    assert set(fit.devices.by_backend) == {"mlu", "nvidia"}
    assert [[d.uuid for d in c] for c in fit.devices.for_backend("nvidia")] == [[], [], ["g"]]
    assert [[d.uuid for d in c] for c in fit.devices.for_backend("mlu")] == [["m"], [], []]
    assert by_id(fit.usage["dcu"]) == {"d": (0, 0, 0)}


def test_usage_keeps_the_given_device_order() -> None:
    node = {"nvidia": [gpu("a", index=0, used=3), gpu("b", index=1), gpu("c", index=2, used=1)]}
    fit = allocation.fit_pod([{"nvidia": ask()}, {"nvidia": ask()}], 0, node, nvidia_fit, policy=SPREAD)
    assert [d.id for d in fit.usage["nvidia"]] == ["a", "b", "c"]
    # The second container ties b and c; the order the first one left (c before b) keeps b last.
    assert [d.used for d in fit.usage["nvidia"]] == [3, 2, 1]


def test_a_request_for_a_backend_without_devices_is_node_insufficient_device() -> None:
    fit = allocation.fit_pod([{"nvidia": ask()}], 0, {}, nvidia_fit, policy=SPREAD)
    assert not fit.ok
    assert fit.reason == "NodeInsufficientDevice"


def test_the_fitter_gets_sorted_devices_and_earlier_containers_devices() -> None:
    calls: list[tuple[str, list[str], PodDevices]] = []

    def spy(
        backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
    ) -> FitResult:
        calls.append((backend, [d.id for d in devices], earlier))
        return nvidia_fit(backend, request, devices, earlier)

    node = {"nvidia": [gpu("idle"), gpu("busy", used=5)]}
    allocation.fit_pod([{"nvidia": ask()}, {}, {"nvidia": ask()}], 1, node, spy, policy=SPREAD)
    first_entry = ContainerDevice(uuid="idle", type="NVIDIA", usedmem=0, usedcores=0)
    assert calls == [
        ("nvidia", ["busy", "idle"], PodDevices(by_backend={"nvidia": ()})),
        ("nvidia", ["busy", "idle"], PodDevices(by_backend={"nvidia": ((first_entry,), ())})),
    ]


def test_a_fitter_returning_a_foreign_device_is_a_backend_error() -> None:
    def rogue(
        backend: str, request: DeviceRequest, devices: Sequence[DeviceUsage], earlier: PodDevices
    ) -> FitResult:
        return FitResult(
            ok=True, devices=(ContainerDevice(uuid="elsewhere", type="NVIDIA", usedmem=0, usedcores=0),)
        )

    with pytest.raises(BackendError, match="elsewhere"):
        allocation.fit_pod([{"nvidia": ask()}], 0, {"nvidia": [gpu("g")]}, rogue, policy=SPREAD)


def test_fit_pod_leaves_its_inputs_untouched() -> None:
    devices = [gpu("a", index=0), gpu("b", index=1)]
    node = {"nvidia": devices}
    allocation.fit_pod([{"nvidia": ask(mem=100)}], 0, node, nvidia_fit, policy=SPREAD)
    assert node == {"nvidia": [gpu("a", index=0), gpu("b", index=1)]}


@pytest.mark.parametrize(
    ("reasons", "considered", "expected"),
    [
        pytest.param(
            {"CardInsufficientMemory": 3, "CardInsufficientCore": 2, "CardNotHealth": 3},
            8,
            "2/8 CardInsufficientCore, 3/8 CardInsufficientMemory, 3/8 CardNotHealth",
            id="gen-reason",
        ),
        pytest.param(
            {"CardNotHealth": 2, "CardInsufficientMemory": 10},
            16,
            "10/16 CardInsufficientMemory, 2/16 CardNotHealth",
            id="sorted-as-strings",
        ),
        pytest.param({"NodeInsufficientDevice": 1}, 0, "NodeInsufficientDevice", id="bare"),
    ],
)
def test_pod_fit_reason_is_hami_gen_reason(reasons: dict[str, int], considered: int, expected: str) -> None:
    assert allocation.PodFit(ok=False, reasons=reasons, considered=considered).reason == expected


# --- collapse (3.2) -----------------------------------------------------------------------------


def entry(uuid: str, mem: int, cores: int = 0) -> ContainerDevice:
    return ContainerDevice(uuid=uuid, type="NVIDIA", usedmem=mem, usedcores=cores)


def booked(bookings: Sequence[allocation.DeviceBooking]) -> list[tuple[str, int, int, int]]:
    return [(b.device.uuid, b.device.usedmem, b.device.usedcores, b.slots) for b in bookings]


@pytest.mark.parametrize(
    ("containers", "n_init", "expected"),
    [
        pytest.param([], 0, [], id="nothing"),
        pytest.param(
            [(entry("b", 100, 10),), (entry("a", 200, 20), entry("b", 50, 5))],
            0,
            [("a", 200, 20, 1), ("b", 150, 15, 2)],
            id="app-containers-add-up",
        ),
        pytest.param(
            [(entry("a", 300, 10),), (entry("a", 100, 40),)],
            2,
            [("a", 300, 40, 1)],
            id="init-containers-take-the-max-and-one-slot",
        ),
        pytest.param(
            [(entry("a", 900),), (entry("a", 200),), (entry("a", 300),)],
            1,
            [("a", 900, 0, 2)],
            id="init-peak-over-app-sum",
        ),
        pytest.param(
            [(entry("a", 100, 60),), (entry("a", 200, 10),), (entry("a", 300, 10),)],
            1,
            [("a", 500, 60, 2)],
            id="element-wise-max",
        ),
        pytest.param(
            [(entry("a", 100),), (), (entry("b", 100),)],
            2,
            [("a", 100, 0, 1), ("b", 100, 0, 1)],
            id="empty-containers-and-init-only-devices",
        ),
    ],
)
def test_collapse_usage(
    containers: list[ContainerDevices], n_init: int, expected: list[tuple[str, int, int, int]]
) -> None:
    assert booked(allocation.collapse_usage(containers, n_init)) == expected


def test_app_only_footprint_drops_the_init_containers() -> None:
    containers = [(entry("a", 900),), (entry("a", 200),)]
    assert booked(allocation.collapse_usage(containers[1:], 0)) == [("a", 200, 0, 1)]


def test_bookings_add_to_device_usage_with_their_slots() -> None:
    (booking,) = allocation.collapse_usage([(entry("a", 100, 10),), (entry("a", 100, 10),)], 0)
    device = gpu("a").add(booking.device, booking.slots)
    assert (device.used, device.usedmem, device.usedcores) == (2, 200, 20)


def test_booking_a_device_keeps_every_field_but_the_usage() -> None:
    device = DeviceUsage(
        id="a",
        index=3,
        count=4,
        used=1,
        totalmem=8000,
        usedmem=100,
        totalcore=100,
        usedcores=5,
        type="NVIDIA-A100",
        numa=1,
        mode="hami-core",
        health=False,
        mig_profiles=(MigProfile(name="1g.10gb", memory_mb=10240, core=14, slice_count=1),),
        custom_info={"k": "v"},
        device_vendor="nvidia",
    )
    added = device.add(entry("a", 300, 20), 2)
    changed = {"used": 3, "usedmem": 400, "usedcores": 25}
    assert attrs.asdict(added, recurse=False) == {**attrs.asdict(device, recurse=False), **changed}
