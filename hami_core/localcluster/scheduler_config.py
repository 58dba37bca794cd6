"""The parts of a ``KubeSchedulerConfiguration`` the kube-scheduler stand-in honours, parsed and checked.

Accepts the YAML (or its dict) that HAMi's chart hands kube-scheduler: ``profiles[].schedulerName`` and
the top-level ``extenders`` stanza (camelCase keys, ``httpTimeout`` as a Go duration). Anything it cannot
honour is refused with a ``ConfigError`` naming the key, rather than silently ignored; other top-level
sections (``leaderElection``, ``clientConnection``, plugin configs) do not concern the stand-in and are
skipped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hami_core import yaml_documents
from hami_core.errors import ConfigError

DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_HTTP_TIMEOUT_SECONDS = 5.0
_API_VERSIONS = (
    "kubescheduler.config.k8s.io/v1",
    "kubescheduler.config.k8s.io/v1beta2",
    "kubescheduler.config.k8s.io/v1beta3",
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_EXTENDER_KEYS = frozenset(
    {
        "urlPrefix",
        "filterVerb",
        "preemptVerb",
        "prioritizeVerb",
        "bindVerb",
        "weight",
        "enableHTTPS",
        "tlsConfig",
        "httpTimeout",
        "nodeCacheCapable",
        "managedResources",
        "ignorable",
    }
)
_TLS_KEYS = frozenset(
    {"insecure", "serverName", "certFile", "keyFile", "caFile", "certData", "keyData", "caData"}
)


def parse_duration(value: str) -> float:
    """A Go ``time.Duration`` string (``"30s"``, ``"1m30s"``, ``"500ms"``) in seconds.

    Raises:
        ConfigError: not a duration.
    """
    text = value.strip()
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ConfigError(f"{value!r} is not a duration (e.g. 30s, 1m30s, 500ms)")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


@attrs.frozen
class TLSConfig:
    """``extenders[].tlsConfig``: how to verify the extender and which client certificate to send.

    ``*Data`` fields hold PEM bytes (the YAML carries them base64-encoded, as Go's ``[]byte`` does).
    """

    insecure: bool = False
    server_name: str = ""
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    cert_data: bytes = b""
    key_data: bytes = b""
    ca_data: bytes = b""

    @property
    def has_ca(self) -> bool:
        return bool(self.ca_file or self.ca_data)


@attrs.frozen
class ManagedResource:
    """An extended resource an extender manages; ``ignored_by_scheduler`` skips kube-scheduler's own fit."""

    name: str
    ignored_by_scheduler: bool = False


@attrs.frozen
class ExtenderConfig:
    """One ``extenders[]`` entry of a KubeSchedulerConfiguration."""

    url_prefix: str
    filter_verb: str = ""
    prioritize_verb: str = ""
    preempt_verb: str = ""
    bind_verb: str = ""
    weight: int = 1
    enable_https: bool = False
    tls: TLSConfig | None = None
    http_timeout: float = DEFAULT_HTTP_TIMEOUT_SECONDS
    node_cache_capable: bool = False
    managed_resources: tuple[ManagedResource, ...] = ()
    ignorable: bool = False

    @property
    def ignored_resources(self) -> frozenset[str]:
        """Resources kube-scheduler does not fit itself because this extender does."""
        return frozenset(r.name for r in self.managed_resources if r.ignored_by_scheduler)


@attrs.frozen
class SchedulerConfig:
    """Profiles (by scheduler name) and extenders of one kube-scheduler instance."""

    scheduler_names: tuple[str, ...] = (DEFAULT_SCHEDULER_NAME,)
    extenders: tuple[ExtenderConfig, ...] = ()

    @property
    def ignored_resources(self) -> frozenset[str]:
        return frozenset().union(*(e.ignored_resources for e in self.extenders))


def load_scheduler_config(source: SchedulerConfig | Mapping[str, Any] | str | Path | None) -> SchedulerConfig:
    """Build a ``SchedulerConfig`` from a config object, a decoded document, YAML text or a YAML file.

    Args:
        source: ``None`` gives the default profile without extenders; a ``Path`` is read as a file;
            a ``str`` is YAML text.

    Raises:
        ConfigError: malformed document; the message names the key (and the file, if any).
    """
    if source is None:
        return SchedulerConfig()
    if isinstance(source, SchedulerConfig):
        return source
    where = "KubeSchedulerConfiguration"
    if isinstance(source, Path):
        where = str(source)
        source = yaml_documents.read_text(source, where)
    if isinstance(source, str):
        source = yaml_documents.parse_yaml(source, where) or {}
    if not isinstance(source, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    try:
        return _parse(source)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err


def _parse(doc: Mapping[str, Any]) -> SchedulerConfig:
    api_version = doc.get("apiVersion", _API_VERSIONS[0])
    if api_version not in _API_VERSIONS:
        raise ConfigError(f"apiVersion: {api_version!r} is not one of {', '.join(_API_VERSIONS)}")
    if doc.get("kind", "KubeSchedulerConfiguration") != "KubeSchedulerConfiguration":
        raise ConfigError(f"kind: {doc.get('kind')!r} is not KubeSchedulerConfiguration")
    names = []
    for index, profile in enumerate(_list(doc, "profiles")):
        if not isinstance(profile, Mapping):
            raise ConfigError(f"profiles[{index}]: expected a mapping")
        names.append(str(profile.get("schedulerName") or DEFAULT_SCHEDULER_NAME))
    if len(set(names)) != len(names):
        raise ConfigError(f"profiles: duplicate schedulerName in {names}")
    extenders = tuple(_extender(entry, f"extenders[{i}]") for i, entry in enumerate(_list(doc, "extenders")))
    if sum(1 for e in extenders if e.bind_verb) > 1:
        raise ConfigError("extenders: only one extender can implement bind")
    return SchedulerConfig(scheduler_names=tuple(names) or (DEFAULT_SCHEDULER_NAME,), extenders=extenders)


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list")
    return value


def _extender(entry: object, where: str) -> ExtenderConfig:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - _EXTENDER_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    url = entry.get("urlPrefix")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}.urlPrefix: required")
    weight = entry.get("weight", 1)
    prioritize = str(entry.get("prioritizeVerb") or "")
    if not isinstance(weight, int) or (prioritize and weight <= 0):
        raise ConfigError(f"{where}.weight: must be a positive integer when prioritizeVerb is set")
    timeout = entry.get("httpTimeout")
    managed = []
    for index, resource in enumerate(entry.get("managedResources") or []):
        if not isinstance(resource, Mapping) or not resource.get("name"):
            raise ConfigError(f"{where}.managedResources[{index}].name: required")
        managed.append(
            ManagedResource(str(resource["name"]), bool(resource.get("ignoredByScheduler", False)))
        )
    return ExtenderConfig(
        url_prefix=url,
        filter_verb=str(entry.get("filterVerb") or ""),
        prioritize_verb=prioritize,
        preempt_verb=str(entry.get("preemptVerb") or ""),
        bind_verb=str(entry.get("bindVerb") or ""),
        weight=weight,
        enable_https=bool(entry.get("enableHTTPS", False)),
        tls=_tls(entry["tlsConfig"], f"{where}.tlsConfig") if entry.get("tlsConfig") else None,
        http_timeout=parse_duration(str(timeout)) if timeout else DEFAULT_HTTP_TIMEOUT_SECONDS,
        node_cache_capable=bool(entry.get("nodeCacheCapable", False)),
        managed_resources=tuple(managed),
        ignorable=bool(entry.get("ignorable", False)),
    )


def _tls(entry: object, where: str) -> TLSConfig:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - _TLS_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    data = {}
    for key in ("certData", "keyData", "caData"):
        try:
            data[key] = base64.b64decode(entry.get(key) or "", validate=True)
        except (binascii.Error, TypeError) as err:
            raise ConfigError(f"{where}.{key}: not base64: {err}") from err
    return TLSConfig(
        insecure=bool(entry.get("insecure", False)),
        server_name=str(entry.get("serverName") or ""),
        cert_file=str(entry.get("certFile") or ""),
        key_file=str(entry.get("keyFile") or ""),
        ca_file=str(entry.get("caFile") or ""),
        cert_data=data["certData"],
        key_data=data["keyData"],
        ca_data=data["caData"],
    )
