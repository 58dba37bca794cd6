"""The scheduler's NVIDIA node health (hami-wire.md 3.9): the handshake rule plus allocatable tracking.

The second test drives the scheduler's node cache (``hami_core.scheduler``) directly, with a
handshake written by the core's codec: what it checks, that the cache drops a node at once when
its GPUs leave the kubelet, is the core acting on this backend's ``node_health``, and no public
interface feeds node updates to the cache at chosen times.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from hami_backend_nvidia import resources
from hami_backend_nvidia.backend import NvidiaBackend

from hami_core import codec
from hami_core.scheduler import scoring
from hami_core.scheduler.cache import ClusterCache
from hami_core.testing import make_node

NOW = datetime(2026, 8, 1, 6, 0, 0, tzinfo=UTC)
REGISTER = '[{"id":"GPU-0","count":5,"devmem":8192,"devcore":100,"type":"NVIDIA-Tesla P4","health":true}]'


@pytest.mark.parametrize(
    ("handshake", "allocatable", "peak", "healthy"),
    [
        (True, 10, 10, True),
        (True, 0, 10, False),  # the GPUs vanished from the kubelet: unhealthy at once
        (True, 0, 0, True),  # never allocatable (a node without a plugin yet): the handshake decides
        (False, 0, 0, False),
        (False, 10, 10, False),
    ],
)
def test_the_rule(handshake: bool, allocatable: int, peak: int, healthy: bool) -> None:
    assert NvidiaBackend().node_health(handshake, allocatable, peak) is healthy


def _node(allocatable: int) -> dict[str, object]:
    return dict(
        make_node(
            "gpu-1",
            annotations={
                resources.KEYS.register: REGISTER,
                resources.KEYS.handshake: codec.format_handshake_requesting(NOW),
            },
            allocatable={"nvidia.com/gpu": allocatable},
        )
    )


def test_the_cache_drops_a_node_whose_gpus_left_the_kubelet_without_waiting_for_the_handshake() -> None:
    policies = scoring.node_policies(
        {policy.name: policy for policy in scoring.BuiltinPolicies().hami_scoring_policies()}
    )
    cache = ClusterCache([NvidiaBackend()], policies)
    cache.apply_node("ADDED", _node(5), NOW)  # type: ignore[arg-type]
    view = cache.view("gpu-1")
    assert view is not None
    assert [device.id for device in view.all_devices()] == ["GPU-0"]
    cache.apply_node("MODIFIED", _node(0), NOW + timedelta(seconds=1))  # type: ignore[arg-type]
    view = cache.view("gpu-1")
    assert view is None or view.all_devices() == []
    cache.apply_node("MODIFIED", _node(5), NOW + timedelta(seconds=2))  # type: ignore[arg-type]
    view = cache.view("gpu-1")
    assert view is not None
    assert [device.id for device in view.all_devices()] == ["GPU-0"]
