"""The one background loop: steps repeat, wake, back off on errors and stop cleanly."""

from __future__ import annotations

import logging
import threading

import pytest

from hami_core.looping import Loop


def test_steps_repeat_after_the_wait_they_ask_for_until_stopped() -> None:
    ran = threading.Semaphore(0)

    def step() -> float:
        ran.release()
        return 0.001

    loop = Loop("repeating", step)
    loop.start()
    for _ in range(5):
        assert ran.acquire(timeout=5)
    loop.stop()
    assert not loop.running


def test_a_step_waiting_for_ever_runs_again_when_woken() -> None:
    calls: list[int] = []
    ran = threading.Semaphore(0)

    def step() -> None:
        calls.append(1)
        ran.release()

    loop = Loop("woken", step)  # no interval: wait until woken
    loop.start()
    assert ran.acquire(timeout=5)
    assert not ran.acquire(timeout=0.05), "no interval: the loop waits for a wake"
    loop.wake()
    assert ran.acquire(timeout=5)
    loop.stop()
    assert len(calls) == 2


def test_a_wake_during_a_step_is_not_lost() -> None:
    inside, release = threading.Event(), threading.Event()
    count = 0

    def step() -> None:
        nonlocal count
        count += 1
        if count == 1:
            inside.set()
            release.wait(5)

    loop = Loop("busy", step, interval=60)
    loop.start()
    assert inside.wait(5)
    loop.wake()
    release.set()
    for _ in range(500):
        if count >= 2:
            break
        threading.Event().wait(0.01)
    loop.stop()
    assert count == 2


def test_a_failing_step_is_logged_and_retried_with_doubling_backoff(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float | None] = []
    attempts = 0

    def step() -> float:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise RuntimeError(f"boom {attempts}")
        loop.request_stop()
        return 0

    loop = Loop("flaky", step, retry=0.5, max_retry=1.5)
    loop._signal.wait = lambda timeout=None: bool(waits.append(timeout))  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        loop.run()
    assert waits == [0.5, 1.0, 1.5]
    assert loop.failures == 0
    assert [record.getMessage() for record in caplog.records] == [
        "flaky failed (1 in a row); retrying in 0.5s",
        "flaky failed (2 in a row); retrying in 1s",
        "flaky failed (3 in a row); retrying in 1.5s",
    ]


def test_none_from_a_step_waits_the_interval() -> None:
    waits: list[float | None] = []
    loop = Loop("periodic", lambda: None, interval=15.0)

    def wait(timeout: float | None = None) -> bool:
        waits.append(timeout)
        loop.request_stop()
        return True

    loop._signal.wait = wait  # type: ignore[method-assign]
    loop.run()
    assert waits == [15.0]


def test_stop_ends_a_long_wait_at_once_and_a_loop_cannot_start_twice() -> None:
    loop = Loop("idle", lambda: 3600.0)
    loop.start()
    with pytest.raises(RuntimeError, match="already running"):
        loop.start()
    loop.stop()
    assert not loop.running
