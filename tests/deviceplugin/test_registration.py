"""Registering with the kubelet and registering again after the kubelet comes back."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hami_core.deviceplugin.registration import KubeletRegistration
from hami_core.deviceplugin.registration import PluginOptions
from hami_core.deviceplugin.registration import socket_identity
from hami_core.localcluster.fleet import NodeSpec
from hami_core.localcluster.kubelet import Kubelet
from hami_core.testing.fake_kube import FakeKube
from tests.localcluster.fake_plugin import FakePlugin
from tests.localcluster.polling import eventually

RESOURCE = "example.com/dev"


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="h"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir: Path) -> Iterator[Kubelet]:
    node = Kubelet(FakeKube(), NodeSpec("node-0"), plugin_dir)
    node.start()
    yield node
    node.stop()


class Plugin:
    """A served plugin whose server can be re-created, counting how often that happened."""

    def __init__(self, plugin_dir: Path) -> None:
        self.fake = FakePlugin(plugin_dir, RESOURCE, endpoint="example-dev.sock")
        self.fake.serve()
        self.recreated = 0

    def recreate(self) -> None:
        self.recreated += 1
        self.fake.stop()
        self.fake.serve()


@pytest.fixture
def plugin(plugin_dir: Path) -> Iterator[Plugin]:
    served = Plugin(plugin_dir)
    yield served
    served.fake.stop()


def _registration(plugin_dir: Path, plugin: Plugin, resource: str = RESOURCE) -> KubeletRegistration:
    return KubeletRegistration(
        plugin_dir, "example-dev.sock", resource, PluginOptions(), plugin.recreate, poll_interval=0.01
    )


def test_a_socket_has_an_identity_until_removed_and_a_new_one_after_recreation(plugin_dir: Path) -> None:
    path = plugin_dir / "s.sock"
    assert socket_identity(path) is None
    with socket.socket(socket.AF_UNIX) as first:
        first.bind(str(path))
        before = socket_identity(path)
    path.unlink()
    with socket.socket(socket.AF_UNIX) as second:
        second.bind(str(path))
        assert socket_identity(path) not in (None, before)


def test_the_plugin_registers_once_and_stays_registered(
    kubelet: Kubelet, plugin_dir: Path, plugin: Plugin
) -> None:
    registration = _registration(plugin_dir, plugin)
    registration.start()
    try:
        assert registration.wait_registered(1)
        eventually(lambda: kubelet.devices(RESOURCE) == {"dev-0": True, "dev-1": True})
        assert not registration.wait_registered(2, timeout=0.2)
    finally:
        registration.stop()
    assert plugin.recreated == 0


def test_a_kubelet_restart_recreates_the_wiped_socket_and_registers_again(
    kubelet: Kubelet, plugin_dir: Path, plugin: Plugin
) -> None:
    registration = _registration(plugin_dir, plugin)
    registration.start()
    try:
        assert registration.wait_registered(1)
        kubelet.restart()
        assert registration.wait_registered(2)
        eventually(lambda: kubelet.registered_resources() == [RESOURCE])
    finally:
        registration.stop()
    assert plugin.recreated == 1
    assert (plugin_dir / "example-dev.sock").is_socket()


def test_a_refused_registration_is_retried_and_not_counted(
    kubelet: Kubelet, plugin_dir: Path, plugin: Plugin
) -> None:
    registration = _registration(plugin_dir, plugin, resource="not-an-extended-resource")
    registration.start()
    try:
        assert not registration.wait_registered(1, timeout=0.3)
    finally:
        registration.stop()
    assert registration.registrations == 0
    assert kubelet.registered_resources() == []
