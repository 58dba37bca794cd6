"""Node CPU bookkeeping: quantities, kube-scheduler's pod request rule, bound and reserved pods."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hami_core.kube.objects import Container
from hami_core.pods import PodView
from hami_core.scheduler.node_cpu import NodeCpu
from hami_core.scheduler.node_cpu import allocatable_cpu
from hami_core.scheduler.node_cpu import milli_cpu
from hami_core.scheduler.node_cpu import pod_cpu
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_pod


@pytest.mark.parametrize(
    ("value", "milli"),
    [("96", 96000), ("95500m", 95500), ("1.5", 1500), (2, 2000), ("100u", 1), ("1e1", 10000), (None, 0)],
)
def test_cpu_quantities_are_milli_cores_rounded_up(value: str | int | None, milli: int) -> None:
    assert milli_cpu(value) == milli


def test_a_node_without_a_readable_allocatable_cpu_is_unknown() -> None:
    assert allocatable_cpu({"cpu": "95500m", "memory": "1Ti"}) == 95500
    assert allocatable_cpu({"memory": "1Ti"}) is None
    assert allocatable_cpu({"cpu": "lots"}) is None
    assert milli_cpu("lots") == 0


def pod(
    app: Sequence[str | None],
    init: Sequence[str | None] = (),
    *,
    sidecars: tuple[int, ...] = (),
    overhead: str | None = None,
) -> PodView:
    """A pod whose containers request these CPUs (``None``: no request); ``sidecars`` index ``init``."""

    def container(name: str, cpu: str | None) -> Container:
        return make_container(name, requests={"cpu": cpu} if cpu else None)

    raw = make_pod(
        "p",
        containers=[container(f"c{i}", cpu) for i, cpu in enumerate(app)],
        init_containers=[container(f"i{i}", cpu) for i, cpu in enumerate(init)],
    )
    for index in sidecars:
        raw["spec"]["initContainers"][index]["restartPolicy"] = "Always"
    if overhead is not None:
        raw["spec"]["overhead"] = {"cpu": overhead}
    return PodView.from_object(raw)


def test_a_pod_asks_the_sum_of_its_app_containers_or_its_largest_init_container() -> None:
    assert pod_cpu(pod(["500m", "1500m", None])) == 2000
    assert pod_cpu(pod(["1", "1"], init=["3", "500m"])) == 3000
    assert pod_cpu(pod(["4"], init=["3", "500m"])) == 4000
    assert pod_cpu(pod([None])) == 0


def test_a_missing_request_defaults_to_the_limit_and_overhead_is_added() -> None:
    raw = make_pod(
        "p",
        containers=[
            make_container(limits={"cpu": "2"}),
            make_container("b", requests={"cpu": "1"}, limits={"cpu": "3"}),
        ],
    )
    assert pod_cpu(PodView.from_object(raw)) == 3000
    assert pod_cpu(pod(["1"], overhead="250m")) == 1250


def test_sidecars_keep_running_beside_later_init_containers_and_the_app() -> None:
    # Sidecar 1 CPU, then an init container of 2: 3 during init; the app (1) runs beside the sidecar: 2.
    assert pod_cpu(pod(["1"], init=["1", "2"], sidecars=(0,))) == 3000
    # An init container started before the sidecar does not run beside it.
    assert pod_cpu(pod(["1"], init=["2", "1"], sidecars=(1,))) == 2000
    assert pod_cpu(pod(["4"], init=["1", "2"], sidecars=(0,))) == 5000


def test_bound_pods_take_cpu_until_they_finish() -> None:
    cpu = NodeCpu()
    assert cpu.left("n") is None
    assert cpu.set_allocatable("n", 8000)
    assert not cpu.set_allocatable("n", 8000)
    assert cpu.observe("u1", "n", 3000) == {"n"}
    assert cpu.observe("u1", "n", 3000) == frozenset()  # the same pod again changes nothing
    assert cpu.observe("u2", "n", 2000) == {"n"}
    assert cpu.left("n") == 3000
    assert cpu.drop("u1") == {"n"}
    assert cpu.drop("u1") == frozenset()
    assert cpu.left("n") == 6000
    assert cpu.observe("u3", "n", 0) == frozenset()  # no request: nothing to count
    assert cpu.observe("u4", "n", 9000) == {"n"}
    assert cpu.left("n") == 0  # over-committed by pods bound past kube-scheduler: never below 0


def test_a_pod_seen_on_another_node_moves_its_cpu() -> None:
    cpu = NodeCpu()
    cpu.set_allocatable("a", 4000)
    cpu.set_allocatable("b", 4000)
    cpu.observe("u", "a", 1000)
    assert cpu.observe("u", "b", 1000) == {"a", "b"}
    assert (cpu.left("a"), cpu.left("b")) == (4000, 3000)
    assert cpu.observe("u", "b", 1500) == {"b"}  # resized in place
    assert cpu.left("b") == 2500


def test_a_reservation_counts_until_the_pod_is_bound_there() -> None:
    cpu = NodeCpu()
    cpu.set_allocatable("n", 8000)
    assert cpu.reserve("u", "n", 2000) == {"n"}
    assert cpu.observe("u", "", 0) == frozenset()  # still pending: the reservation holds
    assert cpu.left("n") == 6000
    assert cpu.observe("u", "n", 2000) == frozenset()  # bound where reserved: nothing moves
    assert cpu.unreserve("u") == frozenset()  # bound: a late forget does not free it
    assert cpu.reserve("u", "other", 2000) == frozenset()
    assert cpu.left("n") == 6000
    assert cpu.drop("u") == {"n"}
    assert cpu.left("n") == 8000


def test_a_dropped_reservation_frees_the_cpu_and_a_bind_elsewhere_moves_it() -> None:
    cpu = NodeCpu()
    cpu.set_allocatable("a", 8000)
    cpu.set_allocatable("b", 8000)
    cpu.reserve("u", "a", 2000)
    assert cpu.unreserve("u") == {"a"}
    assert cpu.left("a") == 8000
    cpu.reserve("u", "a", 2000)
    assert cpu.observe("u", "b", 2000) == {"a", "b"}  # another scheduler bound it elsewhere
    assert (cpu.left("a"), cpu.left("b")) == (8000, 6000)


def test_a_node_that_leaves_and_returns_still_counts_its_pods() -> None:
    cpu = NodeCpu()
    cpu.set_allocatable("n", 8000)
    cpu.observe("u", "n", 1000)
    assert cpu.set_allocatable("n", None)
    assert cpu.left("n") is None
    cpu.set_allocatable("n", 16000)
    assert cpu.left("n") == 15000
