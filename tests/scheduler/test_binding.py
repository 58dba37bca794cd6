"""Bind: node lock, Binding with bind-phase, waiting for and taking over locks, failure cleanup."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from hami_core import codec
from hami_core.errors import LockError
from hami_core.errors import NotFoundError
from hami_core.kube.nodelock import NodeLock
from hami_core.pods import PodView
from hami_core.scheduler.binding import BindError
from hami_core.testing.builders import make_pod
from tests.scheduler.fakes import NOW
from tests.scheduler.fakes import Harness
from tests.scheduler.fakes import NvidiaLikeBackend
from tests.scheduler.fakes import annotations_of
from tests.scheduler.fakes import gpu_pod
from tests.scheduler.fakes import gpus
from tests.scheduler.fakes import harness
from tests.scheduler.fakes import registered_node

KEYS = NvidiaLikeBackend().keys


def filtered(made: Harness, name: str, **kwargs: object) -> dict[str, str]:
    """Create and filter pod ``name``; returns its metadata name, uid and node."""
    pod = made.add_pod(gpu_pod(name, memory=1000, **kwargs))  # type: ignore[arg-type]
    outcome = made.filtering.filter(PodView.from_object(pod), made.node_names())
    made.sync()
    assert outcome.result == "scheduled"
    return {"name": name, "uid": pod["metadata"]["uid"], "node": outcome.node}


def with_node(**kwargs: object) -> Harness:
    made = harness(**kwargs)  # type: ignore[arg-type]
    made.add_node(registered_node("n", gpus("GPU", 2)))
    return made


def lock_of(made: Harness) -> str | None:
    return (made.kube.get_node("n")["metadata"].get("annotations") or {}).get(codec.NODE_LOCK)


def test_bind_locks_the_node_and_binds_with_the_allocating_phase() -> None:
    made = with_node()
    pod = filtered(made, "p")
    made.binding.bind("default", "p", pod["uid"], "n")
    bound = made.kube.get_pod("default", "p")
    assert bound["spec"]["nodeName"] == "n"
    assert bound["metadata"]["annotations"][codec.BIND_PHASE] == codec.BIND_PHASE_ALLOCATING
    assert bound["metadata"]["annotations"][codec.BIND_TIME] == str(int(NOW.timestamp()))
    assert lock_of(made) == "2026-08-01T06:00:00Z,default,p"


def test_a_pod_without_devices_is_bound_without_lock_or_phase() -> None:
    made = with_node()
    pod = made.add_pod(make_pod("plain"))
    made.binding.bind("default", "plain", pod["metadata"]["uid"], "n")
    assert made.kube.get_pod("default", "plain")["spec"]["nodeName"] == "n"
    assert lock_of(made) is None
    assert codec.BIND_PHASE not in annotations_of(made.kube, "plain")


def test_bind_reads_the_filter_choice_from_the_pod_after_a_restart() -> None:
    made = with_node()
    made.add_node(registered_node("other", gpus("O", 1)))
    pod = filtered(made, "p")
    restarted = harness(kube=made.kube)
    restarted.sync()
    restarted.cache.forget(pod["uid"])
    with pytest.raises(BindError, match="filtered for node n, not other"):
        restarted.binding.bind("default", "p", pod["uid"], "other")


def test_bind_to_another_node_than_filtered_is_refused() -> None:
    made = with_node()
    made.add_node(registered_node("elsewhere", gpus("E", 1)))
    pod = filtered(made, "p", count=2)
    with pytest.raises(BindError, match="filtered for node n, not elsewhere"):
        made.binding.bind("default", "p", pod["uid"], "elsewhere")


def test_bind_of_a_pod_that_is_gone_is_not_found() -> None:
    made = with_node()
    with pytest.raises(NotFoundError):
        made.binding.bind("default", "ghost", "", "n")


def test_a_repeated_bind_of_an_already_bound_pod_succeeds() -> None:
    made = with_node()
    pod = filtered(made, "p")
    made.binding.bind("default", "p", pod["uid"], "n")
    made.binding.bind("default", "p", pod["uid"], "n")
    assert made.kube.get_pod("default", "p")["spec"]["nodeName"] == "n"


def test_bind_waits_for_another_pods_lock_and_goes_on_once_it_is_released() -> None:
    made = with_node(lock_wait=10.0)
    first, second = filtered(made, "first"), filtered(made, "second")
    made.binding.bind("default", "first", first["uid"], "n")

    def device_plugin_finishes() -> None:
        time.sleep(0.2)
        NodeLock(made.kube).release("n", "default", "first")
        made.sync()

    releaser = threading.Thread(target=device_plugin_finishes)
    releaser.start()
    started = time.monotonic()
    made.binding.bind("default", "second", second["uid"], "n")
    waited = time.monotonic() - started
    releaser.join()
    assert 0.15 < waited < 5
    assert lock_of(made) == "2026-08-01T06:00:00Z,default,second"


@pytest.mark.parametrize(
    "finish",
    [
        pytest.param(lambda kube: kube.delete_pod("default", "first"), id="holder-deleted"),
        pytest.param(
            lambda kube: kube.patch_pod(
                "default",
                "first",
                {"metadata": {"annotations": {codec.BIND_PHASE: codec.BIND_PHASE_SUCCESS}}},
            ),
            id="holder-allocated",
        ),
        pytest.param(
            lambda kube: kube.patch_pod_status("default", "first", {"status": {"phase": "Failed"}}),
            id="holder-failed",
        ),
    ],
)
def test_a_lock_whose_holder_no_longer_needs_it_is_taken_over_at_once(finish: object) -> None:
    made = with_node()
    first, second = filtered(made, "first"), filtered(made, "second")
    made.binding.bind("default", "first", first["uid"], "n")
    finish(made.kube)  # type: ignore[operator]
    made.sync()
    made.binding.bind("default", "second", second["uid"], "n")
    assert lock_of(made) == "2026-08-01T06:00:00Z,default,second"


def test_a_holder_unknown_to_the_cache_is_checked_against_the_api() -> None:
    made = with_node()
    made.kube.patch_node(
        "n", {"metadata": {"annotations": {codec.NODE_LOCK: "2026-08-01T05:59:59Z,default,ghost"}}}
    )
    second = filtered(made, "second")
    made.binding.bind("default", "second", second["uid"], "n")
    assert lock_of(made) == "2026-08-01T06:00:00Z,default,second"


def test_an_expired_lock_is_taken_over() -> None:
    made = with_node(clock_offset=timedelta(minutes=6))
    first, second = filtered(made, "first"), filtered(made, "second")
    made.kube.patch_node(
        "n", {"metadata": {"annotations": {codec.NODE_LOCK: "2026-08-01T06:00:00Z,default,first"}}}
    )
    made.sync()
    made.binding.bind("default", "second", second["uid"], "n")
    assert lock_of(made).endswith(",default,second")  # type: ignore[union-attr]
    assert first["node"] == "n"


def test_a_bind_that_gives_up_frees_the_devices_and_cleans_the_pod() -> None:
    made = with_node(lock_wait=0.0)
    first, second = filtered(made, "first"), filtered(made, "second")
    made.binding.bind("default", "first", first["uid"], "n")
    with pytest.raises(LockError, match="locked by default/first"):
        made.binding.bind("default", "second", second["uid"], "n")
    annotations = annotations_of(made.kube, "second")
    for key in (codec.VGPU_NODE, KEYS.allocated, KEYS.to_allocate, codec.BIND_PHASE):
        assert key not in annotations
    assert codec.VGPU_NODE not in (made.kube.get_pod("default", "second")["metadata"].get("labels") or {})
    assert made.cache.allocation(second["uid"]) is None
    assert any("n" in changes.freed_nodes for changes in made.changes)
    assert lock_of(made) == "2026-08-01T06:00:00Z,default,first"


def test_a_bind_that_fails_after_locking_releases_the_lock() -> None:
    made = with_node()
    pod = filtered(made, "p")
    made.kube.patch_pod("default", "p", {"metadata": {"finalizers": ["hold"]}})
    made.kube.delete_pod("default", "p")
    with pytest.raises(Exception, match="being deleted"):
        made.binding.bind("default", "p", pod["uid"], "n")
    assert lock_of(made) is None
