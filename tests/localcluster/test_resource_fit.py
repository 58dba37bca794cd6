"""kube-scheduler's node filters, quantities and failure message, as pure functions."""

from __future__ import annotations

from fractions import Fraction

from hami_core.kube import objects
from hami_core.localcluster import resource_fit
from hami_core.pods import PodView
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod


def test_pod_requests_take_the_larger_of_containers_and_init_containers() -> None:
    pod = PodView.from_object(
        make_pod(
            "p",
            init_containers=[make_container("init", requests={"cpu": "3"})],
            containers=[
                make_container("a", requests={"cpu": "1"}),
                make_container("b", limits={"example.com/dev": 2}),
            ],
        )
    )
    assert resource_fit.pod_requests(pod) == {"cpu": Fraction(3), "example.com/dev": Fraction(2)}


def node(**allocatable: str | int) -> objects.Node:
    return make_node("n", allocatable={"pods": 10, **allocatable})


def test_a_pod_that_fits_has_no_failures() -> None:
    pod = PodView.from_object(
        make_pod("p", containers=[make_container(requests={"cpu": "1", "memory": "1Gi"})])
    )
    used = resource_fit.requested_on_node([pod])
    assert resource_fit.node_failures(pod, node(cpu=2, memory="2Gi"), used) == []


def test_resources_used_by_other_pods_count_against_allocatable() -> None:
    pod = PodView.from_object(
        make_pod("p", containers=[make_container(requests={"cpu": "1", "example.com/dev": 1})])
    )
    used = resource_fit.requested_on_node([pod])
    failures = resource_fit.node_failures(pod, node(cpu=1), used)
    assert failures == ["Insufficient cpu", "Insufficient example.com/dev"]


def test_resources_an_extender_manages_are_not_checked() -> None:
    pod = PodView.from_object(make_pod("p", containers=[make_container(limits={"nvidia.com/gpumem": 4000})]))
    failures = resource_fit.node_failures(
        pod,
        node(),
        {},
        ignored={"nvidia.com/gpumem"},
    )
    assert failures == []


def test_a_full_node_has_too_many_pods() -> None:
    pod = PodView.from_object(make_pod("p"))
    assert resource_fit.node_failures(pod, node(pods=0), {}) == ["Too many pods"]


def test_unschedulable_and_mismatched_nodes_are_reported_like_kube_scheduler() -> None:
    cordoned = make_node("n", allocatable={"pods": 10})
    cordoned["spec"] = {"unschedulable": True}
    assert resource_fit.node_failures(PodView.from_object(make_pod("p")), cordoned, {}) == [
        "node(s) were unschedulable"
    ]
    raw = make_pod("p")
    raw["spec"]["nodeSelector"] = {"gpu": "on"}
    picky = PodView.from_object(raw)
    assert resource_fit.node_failures(picky, make_node("n", allocatable={"pods": 10}), {}) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]


def test_the_fit_error_counts_equal_reasons_and_sorts_them() -> None:
    message = resource_fit.fit_error_message(
        3,
        {
            "a": ["Insufficient cpu"],
            "b": ["Insufficient cpu", "no GPU with 8000Mi free"],
            "c": ["Too many pods"],
        },
    )
    assert (
        message == "0/3 nodes are available: 1 Too many pods, 1 no GPU with 8000Mi free, 2 Insufficient cpu."
    )


def test_least_allocated_prefers_the_emptier_node() -> None:
    pod = PodView.from_object(
        make_pod("p", containers=[make_container(requests={"cpu": "1", "memory": "1Gi"})])
    )
    big = make_node("big", allocatable={"cpu": 8, "memory": "8Gi"})
    small = make_node("small", allocatable={"cpu": 2, "memory": "2Gi"})
    assert resource_fit.least_allocated_score(pod, big, {}) == 87
    assert resource_fit.least_allocated_score(pod, small, {}) == 50
