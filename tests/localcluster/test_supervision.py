"""The supervisor: a child that dies is reported with its status and restarted after a growing wait."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hami_core.localcluster.supervision import Backoff
from hami_core.localcluster.supervision import Death
from hami_core.localcluster.supervision import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def supervisor(clock: Clock) -> Iterator[Supervisor]:
    running = Supervisor(Backoff(initial=1, factor=2, cap=5, stable_after=60), clock=clock)
    yield running
    running.stop()


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2, cap=3)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_a_child_that_keeps_dying_is_restarted_after_growing_waits(
    supervisor: Supervisor, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor.start("crasher", lambda: python("raise SystemExit(3)"))
    with caplog.at_level(logging.WARNING, logger="hami_core.localcluster.supervision"):
        for expected_wait in (1, 2, 4, 5):
            supervisor.process("crasher").wait(timeout=30)
            supervisor.step()  # reports the death, not yet due
            assert supervisor.restarts("crasher") == len(supervisor.deaths) - 1
            clock.now += expected_wait
            supervisor.step()  # due: started again
    assert supervisor.deaths == [
        Death("crasher", 3, 1, 1),
        Death("crasher", 3, 2, 2),
        Death("crasher", 3, 3, 4),
        Death("crasher", 3, 4, 5),
    ]
    assert supervisor.restarts("crasher") == 4
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("crasher exited with status 3 after ")
    assert messages[0].endswith("restart 1 in 1.0s")


def test_a_child_that_ran_long_enough_starts_again_from_the_first_wait(
    supervisor: Supervisor, clock: Clock
) -> None:
    supervisor.start("once", lambda: python("raise SystemExit(1)"))
    for _ in range(2):
        supervisor.process("once").wait(timeout=30)
        supervisor.step()
        clock.now += 10
        supervisor.step()
    supervisor.process("once").wait(timeout=30)
    clock.now += 120  # ran "two minutes" before this death
    supervisor.step()
    assert [death.delay for death in supervisor.deaths] == [1, 2, 1]


def test_a_killed_child_is_restarted_by_the_background_loop() -> None:
    supervisor = Supervisor(Backoff(initial=0.1), poll=0.05)
    first = supervisor.start("sleeper", lambda: python("import time; time.sleep(60)"))
    supervisor.run()
    try:
        first.kill()
        first.wait(timeout=30)
        started = time.monotonic()
        while supervisor.restarts("sleeper") == 0 and time.monotonic() - started < 60:
            time.sleep(0.05)
        assert supervisor.restarts("sleeper") == 1
        assert supervisor.deaths[0].status == -9
        assert supervisor.process("sleeper").poll() is None
    finally:
        supervisor.stop()
    assert first.returncode == -9


def test_a_held_child_is_not_restarted(supervisor: Supervisor, clock: Clock) -> None:
    supervisor.start("plugin", lambda: python("import time; time.sleep(60)"))
    process = supervisor.hold("plugin")
    process.kill()
    process.wait(timeout=30)
    clock.now += 100
    supervisor.step()
    assert supervisor.deaths == []
    supervisor.start("plugin", lambda: python("import time; time.sleep(60)"))
    assert supervisor.process("plugin").poll() is None


def test_stop_ends_every_child(clock: Clock) -> None:
    supervisor = Supervisor(clock=clock)
    process = supervisor.start("sleeper", lambda: python("import time; time.sleep(60)"))
    supervisor.stop()
    assert process.poll() is not None
    assert supervisor.processes() == {}
