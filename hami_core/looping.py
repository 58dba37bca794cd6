"""One background loop for every long-running thread of hami: start, wake, back off, stop.

The scheduler's housekeeping and retries, the informers, leader election, the device plugin's
registration and health loops and the local cluster's stand-ins all repeat one step in a daemon
thread. :class:`Loop` owns that thread: it runs ``step`` and waits for as long as the step asks
(or until :meth:`Loop.wake`), logs a step that raises and retries it with exponential backoff
instead of dying, and :meth:`Loop.stop` wakes it and joins it. Steps decide what to do; the loop
only decides when.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_log = logging.getLogger(__name__)

#: What a step returns: seconds to wait before the next step; ``None`` waits for the loop's
#: ``interval`` (forever, until woken, when that is ``None`` too).
Step = Callable[[], float | None]


class Loop:
    """A named daemon thread running ``step`` until stopped.

    Args:
        name: the thread's name, also used in log messages.
        step: one round of work; returns how long to wait before the next (see :data:`Step`).
        interval: seconds waited after a step that returns ``None``; ``None`` waits until woken.
        retry: seconds waited after the first failing step; doubled after each further failure.
        max_retry: the longest wait after a failure.
        log: where failures are logged (the owner's logger, so messages name the component).
    """

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        interval: float | None = None,
        retry: float = 1.0,
        max_retry: float = 30.0,
        log: logging.Logger = _log,
    ) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._retry = retry
        self._max_retry = max(retry, max_retry)
        self._log = log
        self._stopping = threading.Event()
        self._signal = threading.Event()  # set by wake() and stop(): ends the current wait
        self._thread: threading.Thread | None = None
        self.failures = 0

    @property
    def stopping(self) -> bool:
        """Whether :meth:`request_stop` (or :meth:`stop`) was called; long steps check it."""
        return self._stopping.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, after: float = 0.0) -> None:
        """Run the steps in a new daemon thread, the first one ``after`` seconds from now (or when woken).

        Raises:
            RuntimeError: the loop is already running.
        """
        if self._thread is not None:
            raise RuntimeError(f"loop {self.name} is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, kwargs={"after": after}, name=self.name, daemon=True)
        self._thread.start()

    def run(self, *, after: float = 0.0) -> None:
        """Run steps in the calling thread until :meth:`request_stop`, the first ``after`` seconds from now."""
        if after > 0:
            self._signal.wait(after)
        while not self._stopping.is_set():
            self._signal.clear()  # a wake during the step below makes the next one start at once
            try:
                pause = self._step()
            except Exception:
                self.failures += 1
                pause = min(self._max_retry, self._retry * 2 ** (self.failures - 1))
                self._log.exception(
                    "%s failed (%d in a row); retrying in %.3gs", self.name, self.failures, pause
                )
            else:
                self.failures = 0
                if pause is None:
                    pause = self._interval
            if self._stopping.is_set():
                return
            if pause is None or pause > 0:
                self._signal.wait(pause)

    def wake(self) -> None:
        """End the current wait: the next step runs now (or right after the one in progress)."""
        self._signal.set()

    def request_stop(self) -> None:
        """Ask the loop to end after the step in progress; does not wait (see :meth:`join`)."""
        self._stopping.set()
        self._signal.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread has ended (after :meth:`request_stop`, or a step that asked for it)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    def stop(self) -> None:
        """Stop after the step in progress and wait for the thread to end."""
        self.request_stop()
        self.join()
