"""XID health: critical XIDs mark a GPU unhealthy until they stop; application XIDs never do."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hami_backend_nvidia.backend import NvidiaBackend
from hami_backend_nvidia.health import XidWatch
from hami_backend_nvidia.health import parse_disable_healthchecks
from hami_backend_nvidia.settings import NvidiaSettings

from plugins.nvidia.tests.conftest import UseNvml


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", (True, frozenset())),
        ("all", (False, frozenset())),
        ("XIDS", (False, frozenset())),
        ("48, 79,foo", (True, frozenset({48, 79}))),
    ],
)
def test_dp_disable_healthchecks(value: str, expected: tuple[bool, frozenset[int]]) -> None:
    assert parse_disable_healthchecks(value) == expected


def test_recovery_after_the_events_stop() -> None:
    now = [100.0]
    watch = XidWatch({13}, recovery_seconds=60, clock=lambda: now[0])
    watch.record("GPU-a", 13)
    assert watch.unhealthy() == frozenset()
    watch.record("GPU-a", 79)
    assert watch.unhealthy() == {"GPU-a"}
    now[0] += 59
    assert watch.unhealthy() == {"GPU-a"}
    now[0] += 1
    assert watch.unhealthy() == frozenset()


def test_an_injected_xid_makes_that_gpu_unhealthy(use_nvml: UseNvml, events_file: Path) -> None:
    use_nvml("t4-4")
    backend = NvidiaBackend(NvidiaSettings(health_recovery_seconds=1))
    devices = backend.discover("node")
    try:
        assert all(backend.health(devices).values())
        with events_file.open("a") as out:
            out.write(f"{devices[1].id} 31\n")  # an application error: ignored
            out.write(f"{devices[2].id} 79\n")  # fell off the bus
        assert _eventually(lambda: not backend.health(devices)[devices[2].id])
        health = backend.health(devices)
        assert [health[d.id] for d in devices] == [True, True, False, True]
        assert _eventually(lambda: all(backend.health(devices).values()))  # recovered once events stopped
    finally:
        backend.close()


def test_disabled_health_checks_ignore_xids(
    use_nvml: UseNvml, events_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_nvml("t4-4")
    watching = NvidiaBackend()
    devices = watching.discover("node")  # its watch starts here, before the switch below
    monkeypatch.setenv("DP_DISABLE_HEALTHCHECKS", "xids")
    disabled = NvidiaBackend()
    disabled.discover("node")
    try:
        events_file.write_text(f"{devices[0].id} 79\n")
        assert _eventually(lambda: not watching.health(devices)[devices[0].id])  # the event was delivered
        assert all(disabled.health(devices).values())
    finally:
        watching.close()
        disabled.close()
