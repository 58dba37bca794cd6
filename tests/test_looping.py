"""The one background loop: steps repeat, wake, back off on errors and stop cleanly."""

from __future__ import annotations

import itertools
import logging
import threading
import time

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
    attempts: list[float] = []

    def step() -> float:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise RuntimeError(f"boom {len(attempts)}")
        loop.request_stop()
        return 0

    loop = Loop("flaky", step, retry=0.02, max_retry=0.05)
    with caplog.at_level(logging.ERROR):
        loop.run()
    assert len(attempts) == 4
    assert loop.failures == 0, "a success resets the count"
    assert [record.getMessage() for record in caplog.records] == [
        "flaky failed (1 in a row); retrying in 0.02s",
        "flaky failed (2 in a row); retrying in 0.04s",
        "flaky failed (3 in a row); retrying in 0.05s",
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= wanted for gap, wanted in zip(gaps, [0.02, 0.04, 0.05], strict=True))


def test_none_from_a_step_waits_the_interval() -> None:
    steps: list[float] = []

    def step() -> None:
        steps.append(time.monotonic())
        if len(steps) == 2:
            loop.request_stop()

    loop = Loop("periodic", step, interval=0.05)
    loop.run()
    assert steps[1] - steps[0] >= 0.05


def test_the_first_step_can_wait() -> None:
    started = time.monotonic()
    ran: list[float] = []
    loop = Loop("later", lambda: ran.append(time.monotonic()) or loop.request_stop())
    loop.run(after=0.05)
    assert ran[0] - started >= 0.05


def test_stop_ends_a_long_wait_at_once_and_a_loop_cannot_start_twice() -> None:
    loop = Loop("idle", lambda: 3600.0)
    loop.start()
    with pytest.raises(RuntimeError, match="already running"):
        loop.start()
    loop.stop()
    assert not loop.running
