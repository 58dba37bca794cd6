"""The node register annotation: stable value, written only on change, retried after failures."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime

import attrs
from hami_backend_mock.backend import MockBackend

from hami_core import codec
from hami_core.deviceplugin.registering import RegisterLoop
from hami_core.deviceplugin.registering import register_patch
from hami_core.deviceplugin.registering import register_value
from hami_core.devices import DeviceInfo
from hami_core.errors import KubeError
from hami_core.kube.objects import Node
from hami_core.testing.builders import make_node
from hami_core.testing.fake_kube import FakeKube

NOW = datetime(2024, 1, 23, 4, 30, 4, 434037, tzinfo=UTC)
BACKEND = MockBackend()
DEVICES = BACKEND.discover("n1")


def test_the_value_lists_devices_in_stable_order_in_hamis_json() -> None:
    assert register_value(BACKEND, list(reversed(DEVICES))) == codec.encode_node_devices(DEVICES)
    assert codec.decode_node_devices(register_value(BACKEND, DEVICES))[0].id == DEVICES[0].id


def test_a_new_value_is_written_with_a_reported_handshake() -> None:
    value = register_value(BACKEND, DEVICES)
    assert register_patch(BACKEND, value, {}, NOW) == {
        "metadata": {
            "annotations": {
                "hami.io/node-mock-register": value,
                "hami.io/node-handshake-mock": "Reported 2024-01-23 04:30:04.434037 +0000 UTC",
            }
        }
    }


def test_an_unchanged_value_is_not_written_again() -> None:
    value = register_value(BACKEND, DEVICES)
    assert register_patch(BACKEND, value, {BACKEND.keys.register: value}, NOW) is None


def _loop(kube: FakeKube, devices: list[DeviceInfo], swept: list[int] | None = None) -> RegisterLoop:
    return RegisterLoop(
        kube,
        BACKEND,
        "n1",
        lambda: devices,
        lambda: NOW,
        (lambda: swept.append(1)) if swept is not None else (lambda: None),
        interval=60,
        retry_interval=0.01,
    )


def test_a_pass_publishes_the_devices_and_sweeps_locks() -> None:
    kube = FakeKube()
    kube.create_node(make_node("n1"))
    swept: list[int] = []
    loop = _loop(kube, DEVICES, swept)
    loop.run_once()
    annotations = kube.get_node("n1")["metadata"]["annotations"]
    # The vendor name is never on the wire: the scheduler stamps it when decoding.
    assert codec.decode_node_devices(annotations[BACKEND.keys.register]) == [
        attrs.evolve(device, device_vendor="") for device in DEVICES
    ]
    version = kube.resource_version
    loop.run_once()
    assert kube.resource_version == version
    assert swept == [1, 1]


def test_a_health_change_poked_into_the_loop_is_published_at_once() -> None:
    kube = FakeKube()
    kube.create_node(make_node("n1"))
    devices = list(DEVICES)
    loop = _loop(kube, devices)
    loop.start()
    try:
        assert loop.wait_passes(1, timeout=10)
        devices[1] = attrs.evolve(devices[1], health=False)
        loop.poke()
        assert loop.wait_passes(2, timeout=10)
    finally:
        loop.stop()
    registered = codec.decode_node_devices(
        kube.get_node("n1")["metadata"]["annotations"][BACKEND.keys.register]
    )
    assert [device.health for device in registered] == [True, False]


class _FlakyKube(FakeKube):
    """Fails the first ``failures`` node patches, as an API server under load would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0
        self.done = threading.Event()

    def patch_node(self, name: str, patch: Mapping[str, object], *, resource_version: str = "") -> Node:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise KubeError(
                "PATCH /api/v1/nodes/n1: the server is currently unable to handle the request", status=503
            )
        node = super().patch_node(name, patch, resource_version=resource_version)
        self.done.set()
        return node


def test_a_failed_patch_is_retried_after_the_retry_interval() -> None:
    kube = _FlakyKube(failures=2)
    kube.create_node(make_node("n1"))
    loop = _loop(kube, DEVICES)
    loop.start()
    try:
        assert kube.done.wait(timeout=10)
    finally:
        loop.stop()
    assert kube.attempts == 3
    assert BACKEND.keys.register in kube.get_node("n1")["metadata"]["annotations"]
