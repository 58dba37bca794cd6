"""The cache's free CPU per node: every pod's request counts, and only real changes reach the log."""

from __future__ import annotations

from hami_core import codec
from hami_core.kube.objects import Node
from hami_core.kube.objects import Pod
from hami_core.pods import PodView
from hami_core.scheduler import scoring
from hami_core.scheduler.bookings import Placement
from hami_core.scheduler.bookings import PodAllocation
from hami_core.scheduler.cache import ClusterCache
from hami_core.testing.builders import make_container
from hami_core.testing.builders import make_node
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import registered_node

NVIDIA = NvidiaLikeBackend()
POLICIES = scoring.node_policies(
    {policy.name: policy for policy in scoring.BuiltinPolicies().hami_scoring_policies()}
)


def gpu_node(name: str, cpu: str | None = "8") -> Node:
    node = registered_node(name, gpus(name, 1))
    if cpu is not None:
        node["status"]["allocatable"]["cpu"] = cpu
    return node


def cpu_pod(name: str, node: str, cpu: str, *, phase: str = "Running", uid: str = "") -> PodView:
    """A pod without devices asking ``cpu``, bound to ``node`` (``""``: pending)."""
    pod: Pod = make_pod(
        name,
        containers=[make_container(requests={"cpu": cpu})],
        node_name=node,
        phase=phase,  # type: ignore[arg-type]
    )
    if uid:
        pod["metadata"]["uid"] = uid
    return PodView.from_object(pod)


def filled() -> ClusterCache:
    cache = ClusterCache([NVIDIA], POLICIES)
    cache.apply_node("ADDED", gpu_node("n"), NOW)
    cache.apply_node("ADDED", make_node("plain", allocatable={"cpu": "4"}), NOW)
    return cache


def cpu_left(cache: ClusterCache, name: str) -> int | None:
    view = cache.view(name)
    assert view is not None
    return view.cpu_left


def test_a_cpu_only_pod_landing_on_a_node_lowers_its_free_cpu_and_the_log_names_it() -> None:
    cache = filled()
    assert cpu_left(cache, "n") == 8000
    generation = cache.view("n").generation  # type: ignore[union-attr]
    seq = cache.seq
    cache.apply_pod("ADDED", cpu_pod("web", "", "1500m"))  # pending: nothing yet
    assert cache.changed_since(seq) == set()
    cache.apply_pod("MODIFIED", cpu_pod("web", "n", "1500m"))
    assert cpu_left(cache, "n") == 6500
    assert cache.changed_since(seq) == {"n"}
    assert cache.view("n").generation == generation  # type: ignore[union-attr]  # no fit depends on CPU
    seq = cache.seq
    cache.apply_pod("MODIFIED", cpu_pod("web", "n", "1500m"))  # a status update: CPU unchanged
    assert cache.changed_since(seq) == set()
    cache.apply_pod("MODIFIED", cpu_pod("web", "n", "1500m", phase="Succeeded"))
    assert cpu_left(cache, "n") == 8000
    cache.apply_pod("ADDED", cpu_pod("batch", "n", "2"))
    cache.apply_pod("DELETED", cpu_pod("batch", "n", "2"))
    assert cpu_left(cache, "n") == 8000
    assert cache.changed_since(seq) == {"n"}


def test_a_node_without_devices_is_not_refreshed_for_cpu() -> None:
    cache = filled()
    seq = cache.seq
    cache.apply_pod("ADDED", cpu_pod("web", "plain", "1"))
    assert cache.changed_since(seq) == set()
    assert cpu_left(cache, "plain") is None  # nothing is placed there: not kept


def test_a_hami_pod_binding_changes_devices_and_cpu_in_one_refresh() -> None:
    cache = filled()
    seq = cache.seq
    pod = make_pod(
        "gpu",
        containers=[make_container(requests={"cpu": "3"})],
        annotations={codec.VGPU_NODE: "n", NVIDIA.keys.allocated: "n-0,NVIDIA,1000,0:;"},
        node_name="n",
        phase="Running",
    )
    cache.apply_pod("ADDED", PodView.from_object(pod))
    assert cpu_left(cache, "n") == 5000
    assert cache.seq == seq + 1


def test_a_reserved_pod_counts_until_bound_and_a_forget_before_that_frees_it() -> None:
    cache = filled()
    pending = cpu_pod("p", "", "2", uid="uid-p")
    cache.apply_pod("ADDED", pending)
    placement = Placement(PodAllocation("default", "p", "n"))
    generation = cache.view("n").generation  # type: ignore[union-attr]
    assert cache.reserve("uid-p", placement, generation, cpu=2000) == "reserved"
    assert cpu_left(cache, "n") == 6000
    cache.apply_pod("MODIFIED", pending)  # the filter's annotations land: still pending
    assert cpu_left(cache, "n") == 6000
    seq = cache.seq
    cache.apply_pod("MODIFIED", cpu_pod("p", "n", "2", uid="uid-p"))
    assert cache.changed_since(seq) == set()  # bound where reserved
    cache.forget("uid-p")
    assert cpu_left(cache, "n") == 6000
    cache.apply_pod("ADDED", cpu_pod("q", "", "1", uid="uid-q"))
    generation = cache.view("n").generation  # type: ignore[union-attr]
    assert (
        cache.reserve("uid-q", Placement(PodAllocation("default", "q", "n")), generation, cpu=1000)
        == "reserved"
    )
    assert cpu_left(cache, "n") == 5000
    cache.forget("uid-q")
    assert cpu_left(cache, "n") == 6000


def test_a_relist_counts_each_pod_once_refreshes_each_node_once_and_drops_the_missing() -> None:
    cache = filled()
    cache.apply_node("ADDED", gpu_node("m"), NOW)
    cache.apply_pod("ADDED", cpu_pod("gone", "m", "4"))
    seq = cache.seq
    pods = [cpu_pod(f"p{i}", "n", "1") for i in range(5)]
    cache.replace_pods(pods)
    assert (cpu_left(cache, "n"), cpu_left(cache, "m")) == (3000, 8000)
    assert cache.seq - seq == 2  # one refresh per node, not one per pod
    seq = cache.seq
    cache.replace_pods(pods)
    assert cache.changed_since(seq) == set()


def test_a_pod_name_reused_by_a_new_pod_drops_the_old_pods_cpu() -> None:
    cache = filled()
    cache.apply_pod("ADDED", cpu_pod("a", "n", "3", uid="old"))
    cache.apply_pod("ADDED", cpu_pod("a", "", "1", uid="new"))
    assert cpu_left(cache, "n") == 8000


def test_allocatable_cpu_follows_the_node_object() -> None:
    cache = filled()
    cache.apply_pod("ADDED", cpu_pod("web", "n", "1"))
    seq = cache.seq
    cache.apply_node("MODIFIED", gpu_node("n", "16"), NOW)
    assert cpu_left(cache, "n") == 15000
    assert cache.changed_since(seq) == {"n"}
    seq = cache.seq
    cache.apply_node("MODIFIED", gpu_node("n", "16"), NOW)
    assert cache.changed_since(seq) == set()
    cache.apply_node("MODIFIED", gpu_node("n", None), NOW)
    assert cpu_left(cache, "n") is None
