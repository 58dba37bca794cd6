"""hami's pytest plugin (entry point ``pytest11: hami``): fixtures for backend and core tests.

Registered for every pytest run in an environment with hami-core installed, so it imports the
core only inside fixtures: loading it must not import hami (which would skew coverage and slow
unrelated test runs). It also asks pytest to rewrite ``assert`` in the test kit, so
``BackendContract`` failures show values.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pluggy

    from hami_core.backend import DeviceBackend
    from hami_core.config import HamiConfig
    from hami_core.plugins import Backends
    from hami_core.testing.cluster import HamiCluster
    from hami_core.testing.fake_kube import FakeKube

pytest.register_assert_rewrite("hami_core.testing")


@pytest.fixture
def hami_config() -> HamiConfig:
    """The default configuration: no backend enabled, scheduler defaults."""
    from hami_core.config import HamiConfig

    return HamiConfig()


@pytest.fixture
def fake_kube() -> FakeKube:
    """A fresh, empty in-memory API server (:class:`~hami_core.testing.fake_kube.FakeKube`) for one test."""
    from hami_core.testing.fake_kube import FakeKube

    return FakeKube()


@pytest.fixture
def plugin_manager(hami_config: HamiConfig) -> pluggy.PluginManager:
    """A plugin manager for ``hami_config`` (only its enabled backends are imported)."""
    from hami_core.plugins import make_plugin_manager

    return make_plugin_manager(hami_config)


@pytest.fixture
def load_hami_backends(hami_config: HamiConfig) -> Callable[[Iterable[str]], Backends]:
    """A function loading the named backends through their entry points, on top of ``hami_config``.

    ``load_hami_backends(["mock"]).get("mock")`` is the installed mock backend.
    """
    from hami_core.plugins import load_backends

    def load(names: Iterable[str]) -> Backends:
        return load_backends(hami_config.with_enabled(names))

    return load


@pytest.fixture
def hami_cluster(backend: DeviceBackend, hami_config: HamiConfig) -> Iterator[HamiCluster]:
    """A one-node local cluster running hami with the test's ``backend`` fixture, started and ready.

    Every part runs in this process (:class:`~hami_core.testing.cluster.HamiCluster`); the backend
    object is used as is, so it may run on its fakes. ``hami_cluster.run_pod(make_pod(...))`` sends a
    pod through webhook, filter, bind and the kubelet's ``Allocate`` and returns what it got.
    Override ``hami_config`` for scheduler settings; build a ``HamiCluster`` yourself for more nodes
    or a wider scope.
    """
    from hami_core.testing.cluster import HamiCluster

    with HamiCluster(backend, config=hami_config) as cluster:
        yield cluster
