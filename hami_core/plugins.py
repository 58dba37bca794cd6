"""Loading and validating plugins: the ``hami.backends`` entry points and the core's own plugins.

Activation is explicit and strict (style 2.6.4): :func:`make_plugin_manager` imports only the
entry points that the config enables, one by one with
``load_setuptools_entrypoints("hami.backends", name=n)``; a backend enabled but not installed,
failing to import, or written for another contract major version is a
:class:`~hami_core.errors.BackendLoadError` naming the distribution and the remedy, never a
silent skip. :func:`load_backends` then collects ``hami_register_backends`` and
``hami_scoring_policies`` and refuses duplicate names and resource names, returning a
:class:`Backends` registry indexed by resource name. :func:`installed_backends` is the one place
that imports *every* installed backend, and only because a user asked (``hami backends list``).

Nothing here runs at import time, and nothing is global: each process builds its own registry.
``HAMI_TRACE_HOOKS=1`` prints every hook call and its result to stderr.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence

import attrs
import pluggy

from hami_core import hookspecs
from hami_core.backend import CONTRACT_VERSION
from hami_core.backend import DeviceBackend
from hami_core.config import BACKEND_NAME
from hami_core.config import DEFAULTS_SOURCE
from hami_core.config import HamiConfig
from hami_core.errors import BackendLoadError
from hami_core.errors import HamiError
from hami_core.hookspecs import ScoringPolicy

#: The entry-point group every backend distribution registers its plugin module in.
ENTRY_POINT_GROUP = "hami.backends"
#: Environment variable that turns on hook-call tracing (to stderr) when set to ``1``.
TRACE_ENV = "HAMI_TRACE_HOOKS"


@attrs.frozen
class InstalledBackend:
    """One installed ``hami.backends`` entry point, as ``hami backends list`` shows it.

    Args:
        name: the entry point's name (the backend's name, by convention).
        distribution: the distribution that provides it, e.g. ``hami-backend-mock``.
        version: that distribution's version.
        entry_point: the module the entry point names, e.g. ``hami_backend_mock.plugin``.
        contract_version: the contract version the backend states; empty if it failed to load.
        resource_names: the backend's resource names; empty if it failed to load.
        error: why the backend could not be loaded; empty when it loaded.
    """

    name: str
    distribution: str
    version: str
    entry_point: str
    contract_version: str = ""
    resource_names: tuple[str, ...] = ()
    error: str = ""


@attrs.frozen(eq=False)
class Backends:
    """The loaded backends of one process, indexed by name and by resource name.

    Args:
        plugin_manager: the manager the backends were loaded with (for further hook calls).
        by_name: backends by name, in load order.
        by_resource: backends by each resource name they serve.
        scoring_policies: every plugin's scoring policies, by name.
    """

    plugin_manager: pluggy.PluginManager
    by_name: Mapping[str, DeviceBackend]
    by_resource: Mapping[str, DeviceBackend]
    scoring_policies: Mapping[str, ScoringPolicy]

    def __iter__(self) -> Iterator[DeviceBackend]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def get(self, name: str) -> DeviceBackend:
        """The backend called ``name``.

        Raises:
            BackendLoadError: no such backend was loaded.
        """
        try:
            return self.by_name[name]
        except KeyError:
            loaded = ", ".join(self.by_name) or "none"
            raise BackendLoadError(f"backend {name!r} is not loaded (loaded: {loaded})") from None

    def for_resource(self, resource_name: str) -> DeviceBackend | None:
        """The backend serving ``resource_name``, if any."""
        return self.by_resource.get(resource_name)


def _find_entry_point(
    name: str,
) -> tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution] | None:
    """The one installed entry point called ``name``.

    Raises:
        BackendLoadError: two distributions provide it (pluggy would silently load the first).
    """
    found: dict[str, tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]] = {}
    for dist in importlib.metadata.distributions():
        for entry_point in dist.entry_points:
            if entry_point.group == ENTRY_POINT_GROUP and entry_point.name == name:
                found.setdefault(str(dist.metadata["Name"]), (entry_point, dist))
    if len(found) > 1:
        raise BackendLoadError(
            f'backend "{name}" is provided by several distributions ({", ".join(sorted(found))}); '
            "uninstall all but one"
        )
    return next(iter(found.values()), None)


def _dist_label(dist: importlib.metadata.Distribution) -> str:
    return f"{dist.metadata['Name']} {dist.version}"


def _trace(manager: pluggy.PluginManager) -> None:
    """Print each hook call, its implementers and its outcome to stderr (datasette's tracing)."""

    def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]) -> None:
        plugins = ", ".join(impl.plugin_name for impl in impls)
        sys.stderr.write(f"hami hook {hook_name}({', '.join(kwargs)}) -> [{plugins}]\n")

    def after(
        outcome: pluggy.Result[object],
        hook_name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:
        if outcome.exception is not None:
            sys.stderr.write(f"hami hook {hook_name} raised {outcome.exception!r}\n")
        else:
            sys.stderr.write(f"hami hook {hook_name} returned {outcome.get_result()!r}\n")

    manager.add_hookcall_monitoring(before, after)


def _enabled_where(config: HamiConfig) -> str:
    return f"is enabled in {config.source}" if config.source != DEFAULTS_SOURCE else "is enabled"


def not_installed_error(name: str, config: HamiConfig) -> BackendLoadError:
    """The one-line error for backend ``name``, enabled in ``config`` but not installed."""
    return BackendLoadError(
        f'backend "{name}" {_enabled_where(config)} but not installed: pip install hami-backend-{name}'
    )


def _load_entry_point(manager: pluggy.PluginManager, name: str, config: HamiConfig) -> None:
    found = _find_entry_point(name)
    if found is None:
        raise not_installed_error(name, config)
    entry_point, dist = found
    try:
        loaded = manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    except Exception as err:
        raise BackendLoadError(
            f'backend "{name}": entry point {entry_point.name} = {entry_point.value} from '
            f"{_dist_label(dist)} failed to load: {type(err).__name__}: {err}"
        ) from err
    if loaded == 0:
        raise BackendLoadError(
            f'backend "{name}": entry point {entry_point.name} from {_dist_label(dist)} was not loaded '
            "because a plugin of that name is already registered"
        )


def make_plugin_manager(config: HamiConfig, *, plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    """A plugin manager with the hami hook specs, ``plugins`` and the enabled backends' plugins.

    Args:
        config: decides which ``hami.backends`` entry points are imported (only the enabled).
        plugins: the core's own plugin objects (modules or instances with hookimpls),
            registered before any entry point, e.g. the built-in scoring policies.

    Returns:
        The manager; no hook has been called yet.

    Raises:
        BackendLoadError: an enabled backend is not installed or fails to import, or a plugin
            implements a hook that does not exist or with unknown arguments.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV) == "1":
        _trace(manager)
    try:
        for plugin in plugins:
            manager.register(plugin)
    except pluggy.PluginValidationError as err:
        raise BackendLoadError(f"built-in plugin {err.plugin!r} is invalid: {err}") from err
    for name in config.enabled_backends:
        _load_entry_point(manager, name, config)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as err:
        raise BackendLoadError(
            f"plugin {manager.get_name(err.plugin)!r} implements an unknown hook: {err}"
        ) from err
    return manager


def _plugin_label(manager: pluggy.PluginManager, plugin: object) -> str:
    """``plugin 'mock' from hami-backend-mock 0.1.0`` for entry points, the module or class name else."""
    for listed, dist in manager.list_plugin_distributions():
        if listed is plugin:
            return f"plugin {manager.get_name(plugin)!r} from {dist.metadata['Name']} {dist.version}"
    return f"plugin {getattr(plugin, '__name__', type(plugin).__name__)!r}"


def _check_backend(backend: object, label: str) -> DeviceBackend:
    if not isinstance(backend, DeviceBackend):
        raise BackendLoadError(
            f"{label}: hami_register_backends returned {backend!r}, which is not a DeviceBackend"
        )
    stated = getattr(type(backend), "contract_version", None)
    if not isinstance(stated, str):
        raise BackendLoadError(
            f"{label}: {type(backend).__name__} does not state its contract_version (this core speaks {CONTRACT_VERSION})"
        )
    if stated.split(".")[0] != CONTRACT_VERSION.split(".")[0]:
        raise BackendLoadError(
            f"{label}: {type(backend).__name__} was written for contract {stated}, but this hami-core speaks "
            f"{CONTRACT_VERSION}; install a version of the backend built for contract {CONTRACT_VERSION}"
        )
    try:
        name = backend.name
        resources = backend.resource_names.all()
    except HamiError:
        raise
    except Exception as err:
        raise BackendLoadError(
            f"{label}: {type(backend).__name__} fails to describe itself: {err!r}"
        ) from err
    if not isinstance(name, str) or not BACKEND_NAME.fullmatch(name):
        raise BackendLoadError(f"{label}: backend name {name!r} must be lowercase letters and digits")
    if not backend.resource_names.count:
        raise BackendLoadError(f"{label}: backend {name!r} has no count resource name")
    if len(set(resources)) != len(resources):
        raise BackendLoadError(
            f"{label}: backend {name!r} lists a resource name twice: {', '.join(resources)}"
        )
    return backend


def _register_backends(manager: pluggy.PluginManager, config: HamiConfig) -> dict[str, DeviceBackend]:
    """Every plugin's backends, called plugin by plugin so errors name their source."""
    by_name: dict[str, DeviceBackend] = {}
    owners: dict[str, str] = {}
    implementers = [impl.plugin for impl in manager.hook.hami_register_backends.get_hookimpls()]
    for plugin in implementers:
        label = _plugin_label(manager, plugin)
        others = [other for other in implementers if other is not plugin]
        caller = manager.subset_hook_caller("hami_register_backends", remove_plugins=others)
        try:
            results = caller(config=config)
        except HamiError:
            raise
        except Exception as err:
            raise BackendLoadError(
                f"{label}: hami_register_backends failed: {type(err).__name__}: {err}"
            ) from err
        contributed = results[0] if results else []
        if not isinstance(contributed, list | tuple):
            raise BackendLoadError(f"{label}: hami_register_backends must return a list, got {contributed!r}")
        for item in contributed:
            backend = _check_backend(item, label)
            if backend.name in by_name:
                raise BackendLoadError(
                    f"{label}: backend {backend.name!r} is already provided by {owners[backend.name]}"
                )
            by_name[backend.name] = backend
            owners[backend.name] = label
    return by_name


def _index_resources(by_name: Mapping[str, DeviceBackend]) -> dict[str, DeviceBackend]:
    by_resource: dict[str, DeviceBackend] = {}
    for backend in by_name.values():
        for resource in backend.resource_names.all():
            holder = by_resource.get(resource)
            if holder is not None:
                raise BackendLoadError(
                    f"backends {holder.name!r} and {backend.name!r} both serve resource {resource!r}; "
                    "rename it in one backend's config"
                )
            by_resource[resource] = backend
    return by_resource


def _collect_policies(manager: pluggy.PluginManager) -> dict[str, ScoringPolicy]:
    policies: dict[str, ScoringPolicy] = {}
    for contributed in reversed(manager.hook.hami_scoring_policies()):
        for policy in contributed:
            if not isinstance(policy, ScoringPolicy):
                raise BackendLoadError(
                    f"hami_scoring_policies returned {policy!r}, which is not a ScoringPolicy"
                )
            if policy.name in policies:
                raise BackendLoadError(f"two plugins provide a scoring policy named {policy.name!r}")
            policies[policy.name] = policy
    return policies


def load_backends(config: HamiConfig, *, plugins: Iterable[object] = ()) -> Backends:
    """Load the enabled backends and every plugin's scoring policies, validated as one set.

    Args:
        config: the configuration; only its enabled backends are imported.
        plugins: the core's own plugin objects (see :func:`make_plugin_manager`).

    Returns:
        The registry of backends and scoring policies.

    Raises:
        BackendLoadError: a backend is missing, fails to load, breaks the contract, or clashes
            with another by name or resource name; or two policies share a name.
    """
    manager = make_plugin_manager(config, plugins=plugins)
    by_name = _register_backends(manager, config)
    for name in config.enabled_backends:
        if name not in by_name:
            found = _find_entry_point(name)
            origin = f" ({_dist_label(found[1])})" if found is not None else ""
            raise BackendLoadError(
                f'backend "{name}": its entry point{origin} registered no backend named "{name}" '
                f"(registered: {', '.join(by_name) or 'none'})"
            )
    return Backends(
        plugin_manager=manager,
        by_name=by_name,
        by_resource=_index_resources(by_name),
        scoring_policies=_collect_policies(manager),
    )


def _describe_entry_point(
    entry_point: importlib.metadata.EntryPoint, dist: importlib.metadata.Distribution, config: HamiConfig
) -> InstalledBackend:
    listed = InstalledBackend(
        name=entry_point.name,
        distribution=str(dist.metadata["Name"]),
        version=dist.version,
        entry_point=entry_point.value,
    )
    try:
        module = entry_point.load()
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        manager.register(module, name=entry_point.name)
        manager.check_pending()
        by_name = _register_backends(manager, config)
    except Exception as err:
        return attrs.evolve(listed, error=f"{type(err).__name__}: {err}")
    backend = by_name.get(entry_point.name)
    if backend is None:
        return attrs.evolve(listed, error=f"registered no backend named {entry_point.name!r}")
    return attrs.evolve(
        listed,
        contract_version=type(backend).contract_version,
        resource_names=backend.resource_names.all(),
    )


def installed_backends(config: HamiConfig | None = None) -> list[InstalledBackend]:
    """Every installed ``hami.backends`` entry point, imported and described.

    This imports every installed backend, enabled or not, so only explicit user actions call
    it. A backend that fails to load is listed with its ``error`` instead of aborting the list.

    Args:
        config: passed to each backend's ``hami_register_backends``; defaults to the defaults.

    Returns:
        One entry per (distribution, entry point), sorted by name.
    """
    config = config if config is not None else HamiConfig()
    listed: dict[tuple[str, str], InstalledBackend] = {}
    for dist in importlib.metadata.distributions():
        for entry_point in dist.entry_points:
            key = (str(dist.metadata["Name"]), entry_point.name)
            if entry_point.group == ENTRY_POINT_GROUP and key not in listed:
                listed[key] = _describe_entry_point(entry_point, dist, config)
    return sorted(listed.values(), key=lambda item: (item.name, item.distribution))
