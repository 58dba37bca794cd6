"""The node register annotation: publishing this node's devices for the scheduler.

What the scheduler knows about a node's devices is the backend's register annotation (for the mock
``hami.io/node-mock-register``), in HAMi's JSON form with each device's current health
(``specs/hami-wire.md`` 1.4.1, 5.3). :func:`register_patch` decides, without I/O, whether the node
needs a new value: devices in a stable order, written only when the value differs from what the node
holds. A write also sets the backend's handshake annotation to ``Reported <time>``: a v2.10 scheduler
then re-reads the devices on its next pass (its generic handshake check ignores register changes
while a ``Requesting_`` value is fresh), and older schedulers see the plugin alive. Beyond that v2.10
needs nothing from the plugin: the node stays live while the kubelet advertises the resource.

:class:`RegisterLoop` runs it: every ``interval`` after a success, every ``retry_interval`` after a
failed read or patch, and at once when poked (a health change). Each pass also clears a node lock
left behind by an allocation that can no longer finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.deviceplugin.devices import ordered
from hami_core.devices import DeviceInfo
from hami_core.errors import HamiError
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import Node
from hami_core.looping import Loop

_log = logging.getLogger(__name__)

#: HAMi's NVIDIA plugin registers every 30 s after a success and retries 5 s after an error.
REGISTER_INTERVAL_SECONDS = 30.0
RETRY_INTERVAL_SECONDS = 5.0


def register_value(backend: DeviceBackend, devices: Sequence[DeviceInfo]) -> str:
    """The register annotation value of ``devices`` (with their current health), in stable order."""
    return backend.encode_node_devices(ordered(devices))


def register_patch(
    backend: DeviceBackend,
    value: str,
    node_annotations: Mapping[str, str],
    now: datetime,
    extra: Mapping[str, str] | None = None,
) -> dict[str, object] | None:
    """The node merge patch that publishes ``value``, or ``None`` when the node already holds it.

    Args:
        backend: whose register and handshake keys to write.
        value: the register annotation value (:func:`register_value`).
        node_annotations: the node's current annotations.
        now: the time written into the handshake.
        extra: the backend's other node annotations (:meth:`DeviceBackend.extra_node_annotations`).
    """
    extra = extra or {}
    if node_annotations.get(backend.keys.register) == value and all(
        node_annotations.get(key) == extra_value for key, extra_value in extra.items()
    ):
        return None
    return {
        "metadata": {
            "annotations": {
                backend.keys.register: value,
                backend.keys.handshake: codec.format_handshake_reported(now),
                **extra,
            }
        }
    }


def _annotations(node: Node) -> Mapping[str, str]:
    return (node.get("metadata") or {}).get("annotations") or {}


class RegisterLoop:
    """Keeps the node's register annotation equal to the plugin's devices, in a thread.

    Args:
        kube: the API client.
        backend: the backend whose annotation to write.
        node_name: the node.
        devices: returns the devices with current health.
        now: the clock for the handshake time.
        sweep: called on every pass to clear stale node locks; its errors count as a failed pass.
        interval: seconds between passes after a success.
        retry_interval: seconds before the next pass after a failure.
    """

    def __init__(
        self,
        kube: KubeClient,
        backend: DeviceBackend,
        node_name: str,
        devices: Callable[[], Sequence[DeviceInfo]],
        now: Callable[[], datetime],
        sweep: Callable[[], None],
        *,
        interval: float = REGISTER_INTERVAL_SECONDS,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
    ) -> None:
        self._kube = kube
        self._backend = backend
        self._node_name = node_name
        self._devices = devices
        self._now = now
        self._sweep = sweep
        self._retry_interval = retry_interval
        self._loop = Loop(
            f"register-{backend.name}-{node_name}",
            self._pass,
            interval=interval,
            retry=retry_interval,
            max_retry=retry_interval,
            log=_log,
        )
        self._passes = 0
        self._pass_done = threading.Condition()

    def start(self) -> None:
        """Run the first pass now and the next ones in a background thread."""
        self._loop.start()

    def stop(self) -> None:
        """Stop after the pass in progress, if any."""
        self._loop.stop()

    def poke(self) -> None:
        """Run a pass now (the devices changed)."""
        self._loop.wake()

    def wait_passes(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` passes have completed since start; for callers that need the write done."""
        with self._pass_done:
            return self._pass_done.wait_for(lambda: self._passes >= count, timeout)

    def run_once(self) -> None:
        """One pass: publish the devices if the node's value differs, then clear stale locks.

        Raises:
            HamiError: reading or patching the node failed.
        """
        devices = self._devices()
        value = register_value(self._backend, devices)
        node = self._kube.get_node(self._node_name)
        extra = self._backend.extra_node_annotations(devices)
        patch = register_patch(self._backend, value, _annotations(node), self._now(), extra)
        if patch is not None:
            self._kube.patch_node(self._node_name, patch)
            _log.info("node %s: registered %s devices: %s", self._node_name, self._backend.name, value)
        self._sweep()

    def _pass(self) -> float | None:
        """One pass of the loop; the next after ``interval``, or ``retry_interval`` after a failure."""
        try:
            self.run_once()
        except HamiError as err:
            _log.warning(
                "node %s: registering %s devices failed: %s", self._node_name, self._backend.name, err
            )
            return self._retry_interval
        finally:
            with self._pass_done:
                self._passes += 1
                self._pass_done.notify_all()
        return None
