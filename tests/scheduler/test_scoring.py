"""Scoring policies: the built-ins through the hook, per-pod choice, and the incremental ranking."""

from __future__ import annotations

import pytest

from hami_core import codec
from hami_core.config import HamiConfig
from hami_core.devices import DeviceUsage
from hami_core.errors import BackendLoadError
from hami_core.errors import CodecError
from hami_core.hookspecs import ScoringPolicy
from hami_core.hookspecs import hookimpl
from hami_core.plugins import load_backends
from hami_core.scheduler import scoring

POLICIES = {policy.name: policy for policy in scoring.BuiltinPolicies().hami_scoring_policies()}


def device(
    *, used: int, count: int, usedcores: int, usedmem: int, totalmem: int, totalcore: int = 100
) -> DeviceUsage:
    return DeviceUsage(
        id="d",
        count=count,
        used=used,
        usedcores=usedcores,
        totalcore=totalcore,
        usedmem=usedmem,
        totalmem=totalmem,
    )


def test_the_built_in_node_policies_come_through_the_policy_hook() -> None:
    loaded = load_backends(HamiConfig(), plugins=[scoring.BuiltinPolicies()])
    assert {name: policy.kind for name, policy in loaded.scoring_policies.items()} == {
        "binpack": "node",
        "spread": "node",
    }


def test_a_plugin_cannot_reuse_a_built_in_policy_name() -> None:
    class Rival:
        @hookimpl
        def hami_scoring_policies(self) -> list[ScoringPolicy]:
            return [ScoringPolicy(name="binpack", kind="node", score=lambda devices: 0.0)]

    with pytest.raises(BackendLoadError, match="binpack"):
        load_backends(HamiConfig(), plugins=[scoring.BuiltinPolicies(), Rival()])


def test_binpack_scores_hamis_example_and_spread_negates_it() -> None:
    devices = [
        device(used=50, count=100, usedcores=100, totalcore=100, usedmem=100, totalmem=100),
        device(used=75, count=150, usedcores=200, totalcore=200, usedmem=200, totalmem=200),
    ]
    assert scoring.binpack_score(devices) == 25.0
    assert scoring.spread_score(devices) == -25.0


def test_pod_annotations_choose_the_policies_and_config_fills_the_rest() -> None:
    chosen = scoring.pod_policies(
        {codec.NODE_SCHEDULER_POLICY: "spread", codec.DEVICE_SCORING_WEIGHTS: "slot=1,core=2,memory=3"},
        POLICIES,
        default_node="binpack",
        default_device="binpack,numa",
    )
    assert chosen.node.name == "spread"
    assert chosen.device.text == "binpack,numa"
    assert chosen.device.policy.keys == ("binpack", "numa")
    assert (chosen.weights.slot, chosen.weights.core, chosen.weights.memory) == (1, 2, 3)


def test_an_unknown_node_policy_names_the_known_ones() -> None:
    with pytest.raises(
        CodecError, match=r"unknown node scheduler policy 'Binpack' \(known: binpack, spread\)"
    ):
        scoring.pod_policies(
            {codec.NODE_SCHEDULER_POLICY: "Binpack"},
            POLICIES,
            default_node="binpack",
            default_device="spread",
        )


def test_a_plugin_device_policy_orders_devices_by_its_score() -> None:
    fewest_used = ScoringPolicy(name="fewest-used", kind="device", score=lambda devices: -devices[0].used)
    chosen = scoring.pod_policies(
        {codec.GPU_SCHEDULER_POLICY: "fewest-used"},
        {**POLICIES, "fewest-used": fewest_used},
        default_node="binpack",
        default_device="spread",
    )
    busy, idle = DeviceUsage(id="busy", used=3, count=10), DeviceUsage(id="idle", count=10)
    assert [d.id for d in chosen.device.order([idle, busy])] == ["busy", "idle"]


def test_the_ranking_keeps_nodes_in_policy_order_as_they_change() -> None:
    ranking = scoring.Ranking(POLICIES["binpack"])
    empty = [device(used=0, count=10, usedcores=0, usedmem=0, totalmem=100)]
    half = [device(used=5, count=10, usedcores=50, usedmem=50, totalmem=100)]
    ranking.update("b", empty)
    ranking.update("a", empty)
    ranking.update("c", half)
    assert [name for _, name in ranking.entries()] == ["c", "a", "b"]
    ranking.update("b", half)
    assert [name for _, name in ranking.entries()] == ["b", "c", "a"]
    assert ranking.order(["a", "b", "zz"]) == ["b", "a"]
    assert ranking.score("b") == 15.0
    ranking.remove("b")
    assert [name for _, name in ranking.entries()] == ["c", "a"]
    assert len(ranking) == 2


def test_a_failing_plugin_node_policy_ranks_the_node_last_instead_of_breaking() -> None:
    def broken(devices: object) -> float:
        raise ValueError("boom")

    ranking = scoring.Ranking(ScoringPolicy(name="broken", kind="node", score=broken))
    ranking.update("n", [])
    assert [name for _, name in ranking.entries()] == ["n"]
    assert ranking.score("n") == float("-inf")
