"""GPU health from NVML XID events (``specs/hami-wire.md`` 5.5).

A thread waits on an NVML event set registered for XID critical errors on every GPU; an XID that
is not an application error (HAMi's ignored list: 13, 31, 43, 45, 68, 109, plus configured ones)
marks its GPU unhealthy. Unlike HAMi, whose devices stay unhealthy until the plugin restarts, a
GPU recovers once no critical XID has arrived for ``recovery_seconds``. GPUs whose driver cannot
deliver XID events stay healthy, as in NVIDIA's plugin. NVML is imported inside the thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Collection

_log = logging.getLogger(__name__)

#: How long one ``nvmlEventSetWait`` blocks before checking whether to stop, in milliseconds.
_WAIT_MS = 100


def parse_disable_healthchecks(value: str) -> tuple[bool, frozenset[int]]:
    """``DP_DISABLE_HEALTHCHECKS``: whether XID checks stay on, and XIDs to ignore besides HAMi's.

    ``all`` or ``xids`` (in a comma list, any case) switch the checks off; numbers add to the
    ignored XIDs; other items are ignored, as NVIDIA's plugin does.
    """
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    if "all" in items or "xids" in items:
        return False, frozenset()
    return True, frozenset(int(item) for item in items if item.isdigit())


class XidWatch:
    """Watches XID events for a set of GPUs and answers which are unhealthy now.

    Args:
        ignored: XIDs that never make a GPU unhealthy.
        recovery_seconds: a GPU is healthy again this long after its last critical XID.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        ignored: Collection[int],
        recovery_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ignored = frozenset(ignored)
        self._recovery = recovery_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_critical: dict[str, float] = {}
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, uuids: Collection[str]) -> None:
        """Start watching ``uuids``; returns once the event set is registered (or failed)."""
        self._thread = threading.Thread(
            target=self._run, args=(tuple(uuids),), name="nvidia-xid-watch", daemon=True
        )
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        """Stop the watch thread."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def record(self, uuid: str, xid: int) -> None:
        """Account one XID event on ``uuid`` (the thread calls it; tests may too)."""
        if xid in self._ignored:
            _log.info("GPU %s: XID %d is an application error, health unchanged", uuid, xid)
            return
        _log.warning("GPU %s: critical XID %d, marking it unhealthy", uuid, xid)
        with self._lock:
            self._last_critical[uuid] = self._clock()

    def unhealthy(self) -> frozenset[str]:
        """The GPUs with a critical XID in the last ``recovery_seconds``."""
        now = self._clock()
        with self._lock:
            return frozenset(
                uuid for uuid, when in self._last_critical.items() if now - when < self._recovery
            )

    def _run(self, uuids: tuple[str, ...]) -> None:
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            _log.error("XID watch: NVML is not available (%s); health comes from discovery only", err)
            self._ready.set()
            return
        try:
            events = pynvml.nvmlEventSetCreate()
            for uuid in uuids:
                try:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
                    pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, events)
                except pynvml.NVMLError_NotSupported:
                    _log.warning("GPU %s cannot report XID events; it is not health-checked", uuid)
            self._ready.set()
            while not self._stopped.is_set():
                try:
                    data = pynvml.nvmlEventSetWait(events, _WAIT_MS)
                except pynvml.NVMLError_Timeout:
                    continue
                if data.eventType != pynvml.nvmlEventTypeXidCriticalError:
                    continue
                uuid = pynvml.nvmlDeviceGetUUID(data.device)
                self.record(uuid.decode() if isinstance(uuid, bytes) else uuid, int(data.eventData))
            pynvml.nvmlEventSetFree(events)
        except pynvml.NVMLError as err:
            _log.error("XID watch stopped: %s", err)
        finally:
            self._ready.set()
            pynvml.nvmlShutdown()
