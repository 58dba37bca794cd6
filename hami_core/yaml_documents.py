"""The one YAML loader: hami's config, fleet files, scheduler configs, manifests and request bodies.

Every reader of YAML goes through here so they all parse the same way (``yaml.safe_load``, never
arbitrary tags) and fail the same way: a :class:`~hami_core.errors.ConfigError` whose message
starts with where the text came from, then ``cannot be read`` or ``not valid YAML``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hami_core.errors import ConfigError


def read_text(path: Path, where: str) -> str:
    """The text of ``path``.

    Raises:
        ConfigError: ``"<where>: cannot be read: <why>"``.
    """
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{where}: cannot be read: {err.strerror or err}") from err


def parse_yaml(text: str | bytes, where: str) -> Any:
    """The one YAML document in ``text`` (``None`` when it is empty).

    Raises:
        ConfigError: ``"<where>: not valid YAML: <why>"``.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {err}") from err


def parse_yaml_all(text: str | bytes, where: str) -> list[Any]:
    """Every document in a ``---``-separated ``text``, empty ones as ``None``.

    Raises:
        ConfigError: ``"<where>: not valid YAML: <why>"``.
    """
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {err}") from err


def load_yaml(path: Path, where: str | None = None) -> Any:
    """The one YAML document in the file at ``path``; ``where`` names it in errors (default: the path).

    Raises:
        ConfigError: the file cannot be read or is not YAML.
    """
    label = str(path) if where is None else where
    return parse_yaml(read_text(path, label), label)


def load_yaml_all(path: Path, where: str | None = None) -> list[Any]:
    """Every document in the file at ``path``.

    Raises:
        ConfigError: the file cannot be read or is not YAML.
    """
    label = str(path) if where is None else where
    return parse_yaml_all(read_text(path, label), label)
