"""The versioned hami configuration file: loading, validation and defaults.

One YAML file serves every process::

    version: v1
    scheduler:                      # all keys optional; defaults follow HAMi's flags and chart
      scheduler_name: hami-scheduler
      node_scheduler_policy: binpack
      gpu_scheduler_policy: spread
      node_lock_timeout: 300        # seconds before a node lock is considered stale
    backends:
      mock:
        enabled: true
        devices: [{count: 4, memory_mib: 24576, type: MOCK-A100}]
      acme:                         # any installed backend, by its name
        enabled: false

Only backends with ``enabled: true`` (or named with ``--backend``, see
:meth:`HamiConfig.with_enabled`) are ever imported. Without a file, :func:`load_config` returns
the defaults with **no backend enabled**: which hardware a cluster has is the operator's
statement, never a guess. Backend sections are passed through to their backend, which validates
them and reports problems with :meth:`HamiConfig.error`.
Every error is a :class:`~hami_core.errors.ConfigError` naming the file and the dotted key.
This module reads files and nothing else: it imports no backend.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hami_core import yaml_documents
from hami_core.errors import ConfigError

#: The only config format version this release reads.
CONFIG_VERSION = "v1"
#: ``HamiConfig.source`` when no file was given.
DEFAULTS_SOURCE = "<defaults>"
#: A backend name: the same word is the entry point, distribution suffix and Helm key.
BACKEND_NAME = re.compile(r"[a-z][a-z0-9]*")


#: Checks a raw YAML value and returns it normalised, or raises ValueError with the problem.
_Check = Callable[[object], object]


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def _non_empty_string(value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {_describe(value)}")
    return value


def _boolean(value: object) -> object:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _number(low: float) -> _Check:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_describe(value)}")
        if value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        return float(value)

    return check


def _positive_number(value: object) -> object:
    number = _number(0.0)(value)
    if number == 0.0:
        raise ValueError("must be greater than 0")
    return number


def _string_mapping(value: object) -> object:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"expected a mapping of strings to strings, got {_describe(value)}")
    return types.MappingProxyType(dict(value))


#: ``scheduler:`` keys and their checks; the defaults live on :class:`SchedulerConfig`.
_SCHEDULER_CHECKS: dict[str, _Check] = {
    "scheduler_name": _non_empty_string,
    "http_bind": _non_empty_string,
    "cert_file": _string,
    "key_file": _string,
    "client_ca_file": _string,
    "metrics_bind": _non_empty_string,
    "node_scheduler_policy": _non_empty_string,
    "gpu_scheduler_policy": _non_empty_string,
    "node_lock_timeout": _positive_number,
    "force_overwrite_default_scheduler": _boolean,
    "leader_elect": _boolean,
    "leader_elect_resource_name": _non_empty_string,
    "leader_elect_resource_namespace": _string,
    "node_label_selector": _string_mapping,
}


@attrs.frozen
class SchedulerConfig:
    """The ``scheduler:`` section.

    Args:
        scheduler_name: the ``schedulerName`` the webhook writes into pods that use devices.
        http_bind: host:port of the extender and webhook server.
        cert_file: serving certificate; with ``key_file`` set the server speaks HTTPS.
        key_file: serving key.
        client_ca_file: CA bundle of the client certificates the extender verbs require (mutual TLS);
            without it the server listens on loopback only (``docs/security.md``).
        metrics_bind: host:port of the Prometheus endpoint.
        node_scheduler_policy: default node policy (``binpack`` or ``spread`` or a plugin's).
        gpu_scheduler_policy: default device policy chain (``spread``, ``binpack,numa``, ...).
        node_lock_timeout: seconds after which a node lock left by a failed bind is stale.
        force_overwrite_default_scheduler: also claim pods that name ``default-scheduler``.
        leader_elect: run leader election over a ``coordination.k8s.io/v1`` Lease.
        leader_elect_resource_name: the Lease's name.
        leader_elect_resource_namespace: the Lease's namespace; empty means the pod's own.
        node_label_selector: only nodes with all these labels are registered.
    """

    scheduler_name: str = "hami-scheduler"
    http_bind: str = "127.0.0.1:8080"
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    metrics_bind: str = ":9395"
    node_scheduler_policy: str = "binpack"
    gpu_scheduler_policy: str = "spread"
    node_lock_timeout: float = 300.0
    force_overwrite_default_scheduler: bool = True
    leader_elect: bool = False
    leader_elect_resource_name: str = "hami-scheduler"
    leader_elect_resource_namespace: str = ""
    node_label_selector: Mapping[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class HamiConfig:
    """A loaded, validated configuration.

    Args:
        source: the file it came from, or ``<defaults>``; every error message names it.
        scheduler: the ``scheduler:`` section.
        sections: the ``backends:`` sections by backend name, in file order, each with a boolean
            ``enabled``.
    """

    source: str = DEFAULTS_SOURCE
    scheduler: SchedulerConfig = attrs.field(factory=SchedulerConfig)
    sections: Mapping[str, Mapping[str, object]] = attrs.field(factory=dict, hash=False)

    def backend(self, name: str) -> Mapping[str, object]:
        """The read-only settings section of backend ``name``.

        A backend without a section gets its defaults with ``enabled: false``, so backends can
        always read their settings, even when listed but not enabled.
        """
        found = self.sections.get(name)
        if found is not None:
            return found
        return _backend_section(self.source, name, {})

    @property
    def enabled_backends(self) -> tuple[str, ...]:
        """Names of the enabled backends, in file order."""
        return tuple(name for name, section in self.sections.items() if section["enabled"])

    def with_enabled(self, names: Iterable[str]) -> HamiConfig:
        """This config with the backends ``names`` enabled as well (the CLI's ``--backend``).

        Raises:
            ConfigError: a name is not a valid backend name.
        """
        sections = dict(self.sections)
        for name in names:
            sections[name] = types.MappingProxyType({**self.backend(name), "enabled": True})
        return attrs.evolve(self, sections=types.MappingProxyType(sections))

    def error(self, key: str, problem: str) -> ConfigError:
        """A ConfigError for ``key`` (dotted, e.g. ``backends.mock.devices[0].count``) in this file.

        Backends use it to report their own section's problems in the same shape as the core.
        """
        return _error(self.source, key, problem)


def _error(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"config {source}: {key}: {problem}")


def _checked(
    source: str, prefix: str, raw: Mapping[object, object], checks: Mapping[str, _Check]
) -> dict[str, Any]:
    """The keys present in ``raw``, checked and normalised; unknown keys are errors."""
    result: dict[str, Any] = {}
    for key, value in raw.items():
        check = checks.get(key) if isinstance(key, str) else None
        if check is None:
            raise _error(source, f"{prefix}{key}", f"unknown key (known keys: {', '.join(sorted(checks))})")
        try:
            result[str(key)] = check(value)
        except ValueError as err:
            raise _error(source, f"{prefix}{key}", str(err)) from err
    return result


def _backend_section(source: str, name: str, raw: object) -> Mapping[str, object]:
    prefix = f"backends.{name}"
    if not BACKEND_NAME.fullmatch(name):
        raise _error(source, prefix, "a backend name is lowercase letters and digits, starting with a letter")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _error(source, prefix, f"expected a mapping of settings, got {_describe(raw)}")
    settings = {k: v for k, v in raw.items() if k != "enabled"}
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise _error(source, f"{prefix}.enabled", f"expected true or false, got {_describe(enabled)}")
    for key in settings:
        if not isinstance(key, str):
            raise _error(source, f"{prefix}.{key}", "setting names are strings")
    section: dict[str, object] = {**settings, "enabled": enabled}
    return types.MappingProxyType(section)


def parse_config(data: object, source: str = DEFAULTS_SOURCE) -> HamiConfig:
    """Validate already-parsed YAML (a mapping) into a HamiConfig.

    Args:
        data: the document, as ``yaml.safe_load`` returns it.
        source: where it came from, for error messages.

    Raises:
        ConfigError: the document is not a v1 config; the message names the key and source.
    """
    if not isinstance(data, dict):
        raise _error(source, "<top level>", f"expected a mapping with 'version: {CONFIG_VERSION}'")
    for key in data:
        if key not in ("version", "scheduler", "backends"):
            raise _error(source, str(key), "unknown key (known keys: backends, scheduler, version)")
    version = data.get("version")
    if version != CONFIG_VERSION:
        raise _error(source, "version", f"expected {CONFIG_VERSION!r}, got {version!r}")
    scheduler_raw = data.get("scheduler")
    scheduler_raw = {} if scheduler_raw is None else scheduler_raw
    if not isinstance(scheduler_raw, dict):
        raise _error(source, "scheduler", f"expected a mapping, got {_describe(scheduler_raw)}")
    scheduler = SchedulerConfig(**_checked(source, "scheduler.", scheduler_raw, _SCHEDULER_CHECKS))
    backends_raw = data.get("backends")
    backends_raw = {} if backends_raw is None else backends_raw
    if not isinstance(backends_raw, dict):
        raise _error(
            source, "backends", f"expected a mapping of backend names, got {_describe(backends_raw)}"
        )
    sections = {str(name): _backend_section(source, str(name), raw) for name, raw in backends_raw.items()}
    return HamiConfig(source=source, scheduler=scheduler, sections=types.MappingProxyType(sections))


def load_config(path: str | Path | None = None) -> HamiConfig:
    """Load and validate the config file at ``path``; ``None`` gives the defaults.

    The defaults enable no backend: enable them in the file or with
    :meth:`HamiConfig.with_enabled`.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or fails validation.
    """
    if path is None:
        return HamiConfig()
    source = str(path)
    return parse_config(yaml_documents.load_yaml(Path(path), f"config {source}"), source)
