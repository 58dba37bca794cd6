"""Plugin loading: only enabled entry points, strict validation, clear errors, the registry."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from hami_core import codec
from hami_core.backend import DeviceBackend
from hami_core.backend import ResourceNames
from hami_core.codec import VendorKeys
from hami_core.config import HamiConfig
from hami_core.config import load_config
from hami_core.devices import ContainerAllocation
from hami_core.devices import ContainerDevices
from hami_core.devices import DeviceInfo
from hami_core.devices import DeviceUsage
from hami_core.errors import BackendLoadError
from hami_core.hookspecs import ScoringPolicy
from hami_core.plugins import ENTRY_POINT_GROUP
from hami_core.plugins import TRACE_ENV
from hami_core.plugins import installed_backends
from hami_core.plugins import load_backends
from hami_core.plugins import make_plugin_manager
from hami_core.pods import ContainerView
from hami_core.pods import PodView
from hami_core.sdk import hookimpl

Install = Callable[..., None]


class TinyBackend(DeviceBackend):
    """A backend with a configurable name, resources and contract version."""

    contract_version: ClassVar[str] = "3.0"

    def __init__(self, name: str, *resources: str) -> None:
        self._name = name
        self._resources = resources or (f"{name}.example.com/gpu",)

    @property
    def name(self) -> str:
        return self._name

    @property
    def resource_names(self) -> ResourceNames:
        return ResourceNames(*self._resources)

    @property
    def keys(self) -> VendorKeys:
        return codec.vendor_keys(
            register_word=self._name, devices_word=self._name, handshake_suffix=self._name
        )

    def discover(self, node_name: str) -> list[DeviceInfo]:
        return []

    def allocate(
        self, devices: ContainerDevices, container: ContainerView, pod: PodView
    ) -> ContainerAllocation:
        return ContainerAllocation()


class FutureBackend(TinyBackend):
    contract_version: ClassVar[str] = "4.0"


class PastBackend(TinyBackend):
    """Written for contract 2.0, before ``isolation_env`` was dropped: refused by a 3.x core."""

    contract_version: ClassVar[str] = "2.0"


class BackendsPlugin:
    """A built-in-style plugin object contributing fixed backends."""

    def __init__(self, *backends: object) -> None:
        self.backends = list(backends)

    @hookimpl
    def hami_register_backends(self, config: HamiConfig) -> list[object]:
        return self.backends


class PoliciesPlugin:
    def __init__(self, *policies: ScoringPolicy) -> None:
        self.policies = list(policies)

    @hookimpl
    def hami_scoring_policies(self) -> list[ScoringPolicy]:
        return self.policies


def _fullness(devices: Sequence[DeviceUsage]) -> float:
    return float(sum(device.used for device in devices))


def _backend_module(
    name: str, *, resource: str = "", registered_name: str = "", contract: str = "3.0"
) -> str:
    """Source of a plugin module holding one tiny backend, as a third party would write it."""
    return textwrap.dedent(
        f"""
        from __future__ import annotations

        from hami_core.sdk import ContainerAllocation
        from hami_core.sdk import DeviceBackend
        from hami_core.sdk import ResourceNames
        from hami_core.sdk import hookimpl
        from hami_core.sdk import vendor_keys


        class Backend(DeviceBackend):
            contract_version = {contract!r}
            name = {registered_name or name!r}
            resource_names = ResourceNames(count={resource or f"{name}.example.com/gpu"!r})
            keys = vendor_keys(register_word={name!r}, devices_word={name!r}, handshake_suffix={name!r})

            def discover(self, node_name):
                return []

            def allocate(self, devices, container, pod):
                return ContainerAllocation()


        @hookimpl
        def hami_register_backends(config):
            return [Backend()]
        """
    )


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install throwaway distributions for this test only: a module plus a dist-info on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(distribution: str, module: str, source: str, entry_points: Mapping[str, str]) -> None:
        (site / f"{module}.py").write_text(source)
        info = site / f"{distribution.replace('-', '_')}-0.3.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.3.0\n")
        lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")
        importlib.invalidate_caches()
        modules.append(module)

    yield install
    for module in modules:
        sys.modules.pop(module, None)


def _config_file(tmp_path: Path, *enabled: str) -> HamiConfig:
    path = tmp_path / "hami.yaml"
    sections = "".join(f"  {name}:\n    enabled: true\n" for name in enabled)
    path.write_text(f"version: v1\nbackends:\n{sections}")
    return load_config(path)


def test_hook_hami_register_backends() -> None:
    backends = load_backends(
        HamiConfig().with_enabled(["mock"]), plugins=[BackendsPlugin(TinyBackend("extra"))]
    )
    assert list(backends.by_name) == ["extra", "mock"]
    assert backends.for_resource("mock.hami.io/gpumem") is backends.get("mock")
    assert backends.for_resource("extra.example.com/gpu") is backends.get("extra")
    assert backends.for_resource("nvidia.com/gpu") is None
    assert len(backends) == 2
    assert [backend.name for backend in backends] == ["extra", "mock"]


def test_hook_hami_scoring_policies() -> None:
    policy = ScoringPolicy(name="fullest", kind="node", score=_fullness)
    backends = load_backends(HamiConfig(), plugins=[PoliciesPlugin(policy)])
    assert backends.scoring_policies == {"fullest": policy}
    assert backends.scoring_policies["fullest"].score([DeviceUsage(id="a", used=3)]) == 3.0


def test_nothing_is_loaded_without_config(install: Install) -> None:
    install(
        "hami-backend-broken",
        "broken_plugin_a",
        "raise RuntimeError('imported')\n",
        {"broken": "broken_plugin_a"},
    )
    backends = load_backends(HamiConfig())
    assert len(backends) == 0
    assert "broken_plugin_a" not in sys.modules


def test_enabled_but_not_installed_is_one_line_naming_the_file_and_remedy(tmp_path: Path) -> None:
    config = _config_file(tmp_path, "nosuchvendor")
    with pytest.raises(BackendLoadError) as caught:
        load_backends(config)
    assert str(caught.value) == (
        f'backend "nosuchvendor" is enabled in {tmp_path / "hami.yaml"} but not installed: '
        "pip install hami-backend-nosuchvendor"
    )


def test_enabled_on_the_command_line_but_not_installed_names_the_remedy() -> None:
    with pytest.raises(
        BackendLoadError, match=r'^backend "nosuchvendor" is enabled but not installed: pip install'
    ):
        make_plugin_manager(HamiConfig().with_enabled(["nosuchvendor"]))


def test_import_failure_names_distribution_and_entry_point(install: Install) -> None:
    install(
        "hami-backend-broken",
        "broken_plugin_b",
        "raise RuntimeError('no driver')\n",
        {"broken": "broken_plugin_b"},
    )
    with pytest.raises(
        BackendLoadError,
        match=r'^backend "broken": entry point broken = broken_plugin_b from hami-backend-broken 0\.3\.0 '
        r"failed to load: RuntimeError: no driver$",
    ):
        load_backends(HamiConfig().with_enabled(["broken"]))


def test_a_distribution_installed_later_loads_without_core_changes(install: Install) -> None:
    install("hami-backend-acme", "acme_plugin", _backend_module("acme"), {"acme": "acme_plugin"})
    backends = load_backends(HamiConfig().with_enabled(["acme"]))
    assert backends.get("acme").resource_names.count == "acme.example.com/gpu"


def test_two_distributions_providing_one_backend_are_refused(install: Install) -> None:
    install("hami-backend-acme", "acme_plugin_one", _backend_module("acme"), {"acme": "acme_plugin_one"})
    install("acme-fork", "acme_plugin_two", _backend_module("acme"), {"acme": "acme_plugin_two"})
    with pytest.raises(
        BackendLoadError,
        match=r'^backend "acme" is provided by several distributions \(acme-fork, hami-backend-acme\)',
    ):
        load_backends(HamiConfig().with_enabled(["acme"]))


def test_entry_point_registering_another_name_is_refused(install: Install) -> None:
    install(
        "hami-backend-alpha",
        "alpha_plugin",
        _backend_module("alpha", registered_name="beta"),
        {"alpha": "alpha_plugin"},
    )
    with pytest.raises(
        BackendLoadError,
        match=r'^backend "alpha": its entry point \(hami-backend-alpha 0\.3\.0\) registered no backend named "alpha" \(registered: beta\)',
    ):
        load_backends(HamiConfig().with_enabled(["alpha"]))


@pytest.mark.parametrize(
    ("backend", "stated"),
    [(FutureBackend("future"), "4.0"), (PastBackend("past"), "2.0")],
    ids=["newer", "older"],
)
def test_another_contract_major_version_is_refused_with_the_versions(
    backend: TinyBackend, stated: str
) -> None:
    name = type(backend).__name__
    with pytest.raises(
        BackendLoadError, match=rf"{name} was written for contract {stated}, but this hami-core speaks 3\.0"
    ):
        load_backends(HamiConfig(), plugins=[BackendsPlugin(backend)])


def test_a_backend_without_contract_version_is_refused() -> None:
    class Unversioned(TinyBackend):
        contract_version = None  # type: ignore[assignment]

    with pytest.raises(BackendLoadError, match="Unversioned does not state its contract_version"):
        load_backends(HamiConfig(), plugins=[BackendsPlugin(Unversioned("plain"))])


def test_duplicate_backend_names_are_refused() -> None:
    plugins = [
        BackendsPlugin(TinyBackend("twin", "a.example.com/gpu")),
        BackendsPlugin(TinyBackend("twin", "b.example.com/gpu")),
    ]
    with pytest.raises(BackendLoadError, match="backend 'twin' is already provided by plugin"):
        load_backends(HamiConfig(), plugins=plugins)


def test_duplicate_resource_names_are_refused() -> None:
    with pytest.raises(
        BackendLoadError,
        match=r"^backends 'copycat' and 'mock' both serve resource 'mock\.hami\.io/gpu'; rename it",
    ):
        load_backends(
            HamiConfig().with_enabled(["mock"]),
            plugins=[BackendsPlugin(TinyBackend("copycat", "mock.hami.io/gpu"))],
        )


def test_a_backend_listing_a_resource_twice_is_refused() -> None:
    with pytest.raises(BackendLoadError, match="lists a resource name twice"):
        load_backends(HamiConfig(), plugins=[BackendsPlugin(TinyBackend("echo", "e.io/gpu", "e.io/gpu"))])


@pytest.mark.parametrize(
    ("contributed", "message"),
    [
        pytest.param("not-a-backend", "which is not a DeviceBackend", id="not-a-backend"),
        pytest.param(
            TinyBackend("Bad_Name"),
            "backend name 'Bad_Name' must be lowercase letters and digits",
            id="bad-name",
        ),
        pytest.param(TinyBackend("nocount", ""), "has no count resource name", id="no-count"),
    ],
)
def test_invalid_backends_are_refused(contributed: object, message: str) -> None:
    with pytest.raises(BackendLoadError, match=message):
        load_backends(HamiConfig(), plugins=[BackendsPlugin(contributed)])


def test_a_failing_hook_names_the_plugin() -> None:
    class Exploding:
        @hookimpl
        def hami_register_backends(self, config: HamiConfig) -> list[DeviceBackend]:
            raise RuntimeError("boom")

    with pytest.raises(
        BackendLoadError,
        match=r"^plugin 'Exploding': hami_register_backends failed: RuntimeError: boom$",
    ):
        load_backends(HamiConfig(), plugins=[Exploding()])


def test_a_hook_returning_no_list_is_refused() -> None:
    class Scalar:
        @hookimpl
        def hami_register_backends(self, config: HamiConfig) -> object:
            return TinyBackend("single")

    with pytest.raises(BackendLoadError, match="must return a list"):
        load_backends(HamiConfig(), plugins=[Scalar()])


def test_duplicate_policy_names_are_refused() -> None:
    first = ScoringPolicy(name="fullest", kind="node", score=_fullness)
    second = ScoringPolicy(name="fullest", kind="device", score=_fullness)
    with pytest.raises(BackendLoadError, match="two plugins provide a scoring policy named 'fullest'"):
        load_backends(HamiConfig(), plugins=[PoliciesPlugin(first), PoliciesPlugin(second)])


def test_an_implementation_of_an_unknown_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def hami_register_backend(self, config: HamiConfig) -> list[DeviceBackend]:
            return []

    with pytest.raises(BackendLoadError, match="implements an unknown hook"):
        make_plugin_manager(HamiConfig(), plugins=[Typo()])


def test_unknown_backend_lookup_names_what_is_loaded() -> None:
    backends = load_backends(HamiConfig().with_enabled(["mock"]))
    with pytest.raises(BackendLoadError, match=r"backend 'nvidia' is not loaded \(loaded: mock\)"):
        backends.get("nvidia")


def test_trace_hooks_prints_each_call_and_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    load_backends(HamiConfig().with_enabled(["mock"]))
    err = capsys.readouterr().err
    assert "hami hook hami_register_backends(config) -> [mock]" in err
    assert "hami hook hami_register_backends returned [[<hami_backend_mock.backend.MockBackend" in err
    assert "hami hook hami_scoring_policies() -> []" in err


def test_no_tracing_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)
    load_backends(HamiConfig().with_enabled(["mock"]))
    assert capsys.readouterr().err == ""


def test_installed_backends_lists_a_new_distribution_without_core_changes(install: Install) -> None:
    install(
        "hami-backend-acme", "acme_plugin_listed", _backend_module("acme"), {"acme": "acme_plugin_listed"}
    )
    listed = {backend.name: backend for backend in installed_backends()}
    acme = listed["acme"]
    assert (acme.distribution, acme.version, acme.entry_point) == (
        "hami-backend-acme",
        "0.3.0",
        "acme_plugin_listed",
    )
    assert (acme.contract_version, acme.resource_names, acme.error) == ("3.0", ("acme.example.com/gpu",), "")
    assert listed["mock"].distribution == "hami-backend-mock"


def test_installed_backends_reports_a_broken_backend_instead_of_aborting(install: Install) -> None:
    install(
        "hami-backend-broken",
        "broken_plugin_c",
        "raise ImportError('libfoo.so missing')\n",
        {"broken": "broken_plugin_c"},
    )
    listed = {backend.name: backend for backend in installed_backends()}
    assert listed["broken"].error == "ImportError: libfoo.so missing"
    assert listed["broken"].resource_names == ()
    assert listed["mock"].error == ""
