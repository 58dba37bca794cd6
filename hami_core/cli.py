"""The ``hami`` command line: the composition root of every process.

Each command is one function that wires config, backends and (later) a Kubernetes client
together and starts one component; the logic lives in the component packages. Errors hami
raises on purpose (:class:`~hami_core.errors.HamiError`) become one ``Error: ...`` line and exit
status 1, never a traceback. New commands attach to the :func:`hami` group and reuse
:func:`config_options` / :func:`load_cli_config` so ``--config`` and ``--backend`` mean the same
everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import click

from hami_core import plugins
from hami_core.config import HamiConfig
from hami_core.config import load_config
from hami_core.errors import HamiError

_Command = TypeVar("_Command", bound=Callable[..., object])


def config_options(command: _Command) -> _Command:
    """Add ``--config FILE`` and repeatable ``--backend NAME`` to ``command``."""
    command = click.option(
        "--backend",
        "backend_names",
        multiple=True,
        metavar="NAME",
        help="Enable backend NAME in addition to those the config enables (repeatable).",
    )(command)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The hami config file (YAML, version: v1). Without it no backend is enabled.",
    )(command)


def load_cli_config(config_path: Path | None, backend_names: Sequence[str]) -> HamiConfig:
    """The config from ``--config`` with the ``--backend`` names enabled as well.

    Raises:
        ConfigError: the file is unreadable or invalid, or a name is not a backend name.
    """
    config = load_config(config_path)
    return config.with_enabled(backend_names) if backend_names else config


class _HamiGroup(click.Group):
    """A group that turns hami's own errors into one ``Error:`` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except HamiError as err:
            raise click.ClickException(str(err)) from err


@click.group(name="hami", cls=_HamiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hami-core", prog_name="hami")
def hami() -> None:
    """Kubernetes GPU sharing and device-aware scheduling (HAMi v2.10 wire-compatible)."""


@hami.group(name="backends")
def backends() -> None:
    """Inspect the device backends installed in this environment."""


@backends.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@config_options
def backends_list(as_json: bool, config_path: Path | None, backend_names: tuple[str, ...]) -> None:
    """List installed backends and whether the config enables them.

    This imports every installed backend (not only the enabled ones), to show its contract
    version and resource names. A backend the config enables but that is not installed is an
    error.
    """
    config = load_cli_config(config_path, backend_names)
    installed = plugins.installed_backends(config)
    names = {backend.name for backend in installed}
    missing = [name for name in config.enabled_backends if name not in names]
    if missing:
        raise plugins.not_installed_error(missing[0], config)
    enabled = set(config.enabled_backends)
    if as_json:
        rows = [
            {
                "name": backend.name,
                "distribution": backend.distribution,
                "version": backend.version,
                "entry_point": backend.entry_point,
                "contract_version": backend.contract_version,
                "resource_names": list(backend.resource_names),
                "enabled": backend.name in enabled,
                "error": backend.error,
            }
            for backend in installed
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(_table(installed, enabled))


def _table(installed: Sequence[plugins.InstalledBackend], enabled: set[str]) -> str:
    header = ("NAME", "DISTRIBUTION", "VERSION", "CONTRACT", "ENABLED", "RESOURCES")
    rows = [
        (
            backend.name,
            backend.distribution,
            backend.version,
            backend.contract_version or "-",
            "yes" if backend.name in enabled else "no",
            ",".join(backend.resource_names) if not backend.error else f"failed to load: {backend.error}",
        )
        for backend in installed
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def main() -> None:
    """Entry point of the ``hami`` console script."""
    hami(prog_name="hami")
