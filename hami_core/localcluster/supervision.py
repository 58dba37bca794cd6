"""Child processes kept running: a child that dies is reported and started again, with backoff.

``hami local-cluster up --hami`` runs the scheduler and one device plugin per node and backend as
processes (:mod:`~hami_core.localcluster.stack`), like the Deployment and DaemonSets of the chart, and
``--real`` runs etcd, kube-apiserver and kube-scheduler (:mod:`~hami_core.localcluster.controlplane`);
kubelet restarts a container that exits, so :class:`Supervisor` does the same here: each death is
logged as a WARNING with the exit status and the restart count, and the child starts again after
:meth:`Backoff.delay` (doubling from ``initial`` up to ``cap``, as kubelet's CrashLoopBackOff; a child
that ran ``stable_after`` seconds starts again from ``initial``). :meth:`Supervisor.hold` stops
restarting a child that a caller ends on purpose (a recovery test that wants a plugin to stay dead).
The polling runs in a :class:`~hami_core.looping.Loop`; :meth:`Supervisor.step` is one round, with an
injectable clock, so tests drive it without waiting out the backoff.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable

import attrs

from hami_core.looping import Loop

_log = logging.getLogger(__name__)

#: Starts (or starts again) one child and returns its process.
Launch = Callable[[], "subprocess.Popen[bytes]"]
#: Ends one child and waits for it.
Halt = Callable[["subprocess.Popen[bytes]"], None]


@attrs.frozen
class Backoff:
    """How long a dead child waits before it starts again.

    Args:
        initial: the wait after the first death (or after a death that followed a stable run).
        factor: each further death in a row multiplies the wait by this.
        cap: the longest wait.
        stable_after: a child that ran this many seconds counts as healthy again.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    stable_after: float = 60.0

    def delay(self, deaths_in_a_row: int) -> float:
        """Seconds to wait before the restart that follows the ``deaths_in_a_row``-th death (1-based)."""
        return float(min(self.cap, self.initial * self.factor ** max(0, deaths_in_a_row - 1)))


@attrs.frozen
class Death:
    """One reported death: which child, its exit status, and the how-many-th restart follows it."""

    name: str
    status: int
    restart: int
    delay: float


@attrs.define(eq=False)
class _Child:
    launch: Launch
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    in_a_row: int = 0
    due: float | None = None  # when a dead child starts again
    held: bool = False


class Supervisor:
    """Starts named children and restarts each one that exits, until :meth:`stop`.

    Args:
        backoff: the restart waits.
        poll: seconds between checks of the children.
        clock: monotonic seconds (tests pass a virtual clock and call :meth:`step`).
        halt: ends one child at :meth:`stop` (children are ended newest first); by default SIGTERM,
            then SIGKILL after 10 s.
    """

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        poll: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        halt: Halt | None = None,
    ) -> None:
        self.backoff = backoff if backoff is not None else Backoff()
        self._halt = halt if halt is not None else terminate
        self._poll = poll
        self._clock = clock
        self._children: dict[str, _Child] = {}
        self._lock = threading.Lock()
        self._loop = Loop("hami-supervisor", self.step, log=_log)
        #: Every death reported so far, oldest first.
        self.deaths: list[Death] = []

    def start(self, name: str, launch: Launch) -> subprocess.Popen[bytes]:
        """Start child ``name`` now (replacing a held or dead one of that name) and supervise it."""
        with self._lock:
            child = _Child(launch, launch(), self._clock())
            self._children[name] = child
            return child.process

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The current process of child ``name``.

        Raises:
            KeyError: there is no such child.
        """
        return self._children[name].process

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Every child's current process by name."""
        with self._lock:
            return {name: child.process for name, child in self._children.items()}

    def restarts(self, name: str) -> int:
        """How many times child ``name`` has been started again."""
        return self._children[name].restarts

    def hold(self, name: str) -> subprocess.Popen[bytes]:
        """Stop restarting child ``name`` (its caller ends it); :meth:`start` supervises it again."""
        with self._lock:
            child = self._children[name]
            child.held = True
            return child.process

    def run(self) -> None:
        """Check the children in a background thread until :meth:`stop`."""
        self._loop.start()

    def step(self) -> float:
        """One round: report children that died, start those whose wait is over; returns the next wait."""
        now = self._clock()
        with self._lock:
            for name, child in self._children.items():
                self._check(name, child, now)
        return self._poll

    def _check(self, name: str, child: _Child, now: float) -> None:
        if child.held:
            return
        if child.due is None:
            status = child.process.poll()
            if status is None:
                return
            ran = now - child.started_at
            child.in_a_row = 1 if ran >= self.backoff.stable_after else child.in_a_row + 1
            delay = self.backoff.delay(child.in_a_row)
            child.due = now + delay
            death = Death(name, status, child.restarts + 1, delay)
            self.deaths.append(death)
            _log.warning(
                "%s exited with status %d after %.1fs; restart %d in %.1fs",
                name,
                status,
                ran,
                death.restart,
                delay,
            )
        if now >= child.due:
            child.process = (
                child.launch()
            )  # when this raises, the loop logs it and the next round tries again
            child.due = None
            child.restarts += 1
            child.started_at = now
            _log.info("%s started again (restart %d, pid %d)", name, child.restarts, child.process.pid)

    def stop(self) -> None:
        """Stop supervising, then end every child, newest first; idempotent."""
        self._loop.stop()
        with self._lock:
            processes = [child.process for child in self._children.values()]
            self._children = {}
        for process in reversed(processes):
            self._halt(process)


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM ``process``, SIGKILL it if it outlives ``timeout`` seconds, and wait for it."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
