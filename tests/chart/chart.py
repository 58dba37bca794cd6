"""Rendering the chart with the real ``helm`` (``make tools`` unpacks it) and reading what it renders."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import click
import kubernetes_validate
import pytest
import yaml

from hami_core.cli import hami

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hami"
HELM = ROOT / ".cache" / "bin" / "helm"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest whose schemas
#: kubernetes-validate ships.
KUBE_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
#: Every backend the chart's values know, by its entry-point name (test_render checks they match).
BACKENDS = tuple(sorted(yaml.safe_load((CHART / "values.yaml").read_text())["backends"]))
#: hami subcommands a template may name before the CLI has them, with why. The install test
#: never starts them; test_cli_args fails once the CLI gains one, so the entry must go.
PENDING_COMMANDS: dict[str, str] = {}

Doc = dict[str, Any]


def helm_env(home: Path) -> dict[str, str]:
    """An environment that keeps helm's caches and config under ``home``."""
    return os.environ | {
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def require_helm() -> Path:
    if not HELM.exists():
        pytest.fail(f"helm not found at {HELM}: run `make tools`")
    return HELM


def set_args(values: Mapping[str, object]) -> list[str]:
    """``--set-json key=value`` for each dotted key."""
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def helm(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(require_helm()), *args], capture_output=True, text=True, env=helm_env(home), timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(
    home: Path,
    values: Mapping[str, object] | None = None,
    *,
    kube_version: str = KUBE_VERSIONS[-1],
    namespace: str = "kube-system",
    api_versions: Sequence[str] = (),
) -> list[Doc]:
    """The documents ``helm template`` renders for ``values`` (dotted keys)."""
    extra = [arg for version in api_versions for arg in ("--api-versions", version)]
    out = helm(
        home,
        "template",
        "hami",
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version,
        *extra,
        *set_args(values or {}),
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Sequence[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(docs: Sequence[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, container) for every container and init container of every pod template."""
    for doc in docs:
        spec = doc.get("spec") or {}
        template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
        if not template:
            continue
        pod = template["spec"]
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            yield doc, container


def managed_resources(docs: Sequence[Doc]) -> list[str]:
    """The extender's managedResources in the rendered KubeSchedulerConfiguration."""
    config = yaml.safe_load(one(docs, "ConfigMap", "hami-scheduler")["data"]["config.yaml"])
    (extender,) = config["extenders"]
    assert all(item["ignoredByScheduler"] is True for item in extender["managedResources"])
    return [item["name"] for item in extender["managedResources"]]


def container_env(container: Doc) -> dict[str, str]:
    """The container's environment; downward-API values become a placeholder."""
    return {
        var["name"]: str(var.get("value", "<from the downward API>")) for var in container.get("env") or []
    }


def check_cli_args(args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Parse ``hami <args>`` exactly as the CLI would, without running it; returns the command path.

    ``env`` is the container's environment (options may read their value from it).

    Raises:
        click.UsageError: the CLI would refuse these arguments (unknown command or option,
            missing or bad value).
    """
    with mock.patch.dict(os.environ, env or {}):
        return _parse(list(args))


def _parse(args: list[str]) -> str:
    ctx = click.Context(hami, info_name="hami")
    command: click.Command = hami
    path: list[str] = []
    while isinstance(command, click.Group):
        if not args:
            raise click.UsageError(f"hami {' '.join(path)}: a subcommand is missing", ctx)
        found = command.get_command(ctx, args[0])
        if found is None:
            raise click.NoSuchCommand(args[0], ctx=ctx)
        path.append(args.pop(0))
        command = found
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path[-1], parent=ctx)
    command.make_context(path[-1], args, parent=ctx, resilient_parsing=False)
    return " ".join(path)
