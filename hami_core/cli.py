"""The ``hami`` command line: the composition root of every process.

Each command is one function that wires config, backends and (later) a Kubernetes client
together and starts one component; the logic lives in the component packages. Errors hami
raises on purpose (:class:`~hami_core.errors.HamiError`) become one ``Error: ...`` line and exit
status 1, never a traceback. New commands attach to the :func:`hami` group and reuse
:func:`config_options` / :func:`load_cli_config` so ``--config`` and ``--backend`` mean the same
everywhere.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar
from typing import cast

import click

from hami_core import plugins
from hami_core import yaml_documents
from hami_core.config import HamiConfig
from hami_core.config import load_config
from hami_core.errors import ConfigError
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
        type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
        help="The hami config file (YAML, version: v1). Without it no backend is enabled.",
    )(command)


#: ``--kubeconfig FILE`` for every command that talks to the API server.
kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Kubeconfig file; without it, in-cluster credentials, else $KUBECONFIG or ~/.kube/config.",
)

#: ``--api-timeout SECONDS`` for every command that talks to the API server (the kubelet sets no
#: deadline on ``Allocate``, so the device plugin needs its own).
api_timeout_option = click.option(
    "--api-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds allowed for each API server request.",
)


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
    """Inspect the device backends installed here, or scaffold a new one (also ``hami backend``)."""


#: ``hami backend new`` reads as the issue and the docs spell it; the same commands as ``hami backends``.
hami.add_command(click.Group(name="backend", commands=backends.commands, hidden=True, help=backends.help))


@backends.command(name="new")
@click.argument("name")
@click.option("--domain", help="DNS prefix of the resource names [default: NAME.example.com].")
@click.option(
    "--directory",
    "-C",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    default=Path(),
    help="Where to create hami-backend-NAME [default: the current directory].",
)
def backends_new(name: str, domain: str | None, directory: Path) -> None:
    """Scaffold hami-backend-NAME: a backend distribution that passes its own tests as generated.

    NAME is the backend's one name: lowercase letters and digits, starting with a letter.
    """
    from hami_core import scaffold

    try:
        scaffold.check_name(name)
    except scaffold.ScaffoldError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from err
    try:
        chosen = scaffold.check_domain(domain) if domain is not None else scaffold.default_domain(name)
    except scaffold.ScaffoldError as err:
        raise click.BadParameter(str(err), param_hint="--domain") from err
    if importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP, name=name):
        raise click.UsageError(f"a backend named {name!r} is already installed here; choose another name")
    spec = scaffold.BackendSpec(
        name=name, domain=chosen, core_version=importlib.metadata.version("hami-core")
    )
    target = directory / spec.directory
    if target.exists():
        raise click.UsageError(f"{target} already exists; remove it, or choose another name or --directory")
    files = scaffold.render(spec, scaffold.load_templates())
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    click.echo(f"created {target} ({len(files)} files); test it with:")
    click.echo(
        f"  cd {target} && python -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    )


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


@hami.command(name="certs")
@click.option(
    "--namespace",
    default="kube-system",
    show_default=True,
    help="Namespace of the webhook Service and Secret.",
)
@click.option(
    "--service",
    default="hami-scheduler",
    show_default=True,
    help="Service kube-apiserver calls the webhook through.",
)
@click.option(
    "--secret",
    "secret_name",
    default="hami-scheduler-tls",
    show_default=True,
    help="Secret holding the CA and serving pair.",
)
@click.option(
    "--webhook-config",
    default="hami-webhook",
    show_default=True,
    help="MutatingWebhookConfiguration whose caBundle to keep; an empty value skips it.",
)
@kubeconfig_option
@api_timeout_option
@click.option(
    "--dns-name",
    "dns_names",
    multiple=True,
    metavar="NAME",
    help="Extra DNS name for the certificate (repeatable).",
)
@click.option(
    "--ip", "ip_addresses", multiple=True, metavar="IP", help="IP address for the certificate (repeatable)."
)
@click.option(
    "--renew-before",
    default="30d",
    show_default=True,
    help="Renew once less validity is left (30d, 720h, 1h30m).",
)
@click.option(
    "--cert-validity", default="365d", show_default=True, help="Lifetime of a new serving certificate."
)
@click.option("--ca-validity", default="3650d", show_default=True, help="Lifetime of a new CA.")
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="Also write tls.crt, tls.key and ca.crt here, for the webhook server.",
)
@click.option(
    "--client-cert",
    "client_name",
    default="",
    metavar="NAME",
    help="With --cert-dir: also write client.crt and client.key, a client certificate for NAME signed by "
    "the CA (kube-scheduler's identity toward the extender).",
)
@click.option("--watch", is_flag=True, help="Keep running and renew before expiry (until SIGTERM or Ctrl-C).")
@click.option("--interval", default="1h", show_default=True, help="With --watch: how often to check.")
def certs_command(
    namespace: str,
    service: str,
    secret_name: str,
    webhook_config: str,
    kubeconfig: Path | None,
    api_timeout: float,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    renew_before: str,
    cert_validity: str,
    ca_validity: str,
    cert_dir: Path | None,
    client_name: str,
    watch: bool,
    interval: str,
) -> None:
    """Create, store and renew the webhook's TLS certificates.

    Makes a CA and a serving certificate for the Service's DNS names, stores them in the Secret,
    sets the MutatingWebhookConfiguration's caBundle, and (with --cert-dir) writes the files the
    server reads and reloads, with --client-cert also a client pair signed by the CA. Rerunning changes nothing while the certificates are healthy; with
    --watch it keeps checking and renews before expiry.
    """
    # Imported here: the Kubernetes client takes a while to import and only this command needs it.

    from hami_core.kube.client import RealKubeClient
    from hami_core.webhook.certs import RenewalPolicy
    from hami_core.webhook.certs import ServingIdentity
    from hami_core.webhook.certs_sync import CertificateSync
    from hami_core.webhook.certs_sync import CertTarget
    from hami_core.webhook.certs_sync import SyncResult
    from hami_core.webhook.certs_sync import parse_duration

    policy = RenewalPolicy(
        renew_before=parse_duration(renew_before),
        ca_validity=parse_duration(ca_validity),
        cert_validity=parse_duration(cert_validity),
    )
    every = parse_duration(interval).total_seconds()
    if every <= 0:
        raise click.BadParameter("must be longer than 0s", param_hint="--interval")
    if client_name and cert_dir is None:
        raise click.UsageError("--client-cert writes into --cert-dir: give both")
    identity = ServingIdentity.for_service(
        service, namespace, extra_dns_names=dns_names, ip_addresses=ip_addresses
    )
    target = CertTarget(namespace, secret_name, webhook_config, identity, policy, cert_dir, client_name)
    with RealKubeClient(kubeconfig=kubeconfig, timeout=api_timeout) as kube:
        syncer = CertificateSync(kube, target)
        if not watch:
            click.echo(syncer.sync().describe())
            return

        def report(result: SyncResult) -> None:
            click.echo(result.describe())

        with _stopped_by_signals() as stop:
            syncer.run_forever(every, stop, on_result=report)


@hami.command(name="device-plugin")
@click.option(
    "--backend",
    "backend_name",
    required=True,
    metavar="NAME",
    help="The backend whose devices to serve (loaded even if the config does not enable it).",
)
@click.option(
    "--node-name", envvar="NODE_NAME", required=True, help="The node this plugin runs on [env NODE_NAME]."
)
@click.option(
    "--plugin-dir",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="The kubelet's device-plugin directory, holding kubelet.sock [default: /var/lib/kubelet/device-plugins/].",
)
@kubeconfig_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="The hami config file (YAML, version: v1): the backend's section and the node lock timeout.",
)
@api_timeout_option
def device_plugin(
    backend_name: str,
    node_name: str,
    plugin_dir: Path | None,
    kubeconfig: Path | None,
    config_path: Path | None,
    api_timeout: float,
) -> None:
    """Serve a backend's devices to the kubelet and register them on the node, until SIGTERM."""
    # Imported here: grpc and the Kubernetes client are heavy, and only this command needs them.
    import logging

    from hami_core.deviceplugin import app
    from hami_core.deviceplugin import constants
    from hami_core.kube.client import RealKubeClient

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    with _stopped_by_signals() as stop, RealKubeClient(kubeconfig=kubeconfig, timeout=api_timeout) as kube:
        app.run(
            config,
            backend_name,
            node_name,
            plugin_dir if plugin_dir is not None else Path(constants.DEVICE_PLUGIN_PATH),
            kube,
            stop=stop,
        )


@hami.group(name="local-cluster")
def local_cluster() -> None:
    """The embedded local cluster: API server emulator, kube-scheduler stand-in, simulated kubelets."""


@local_cluster.command(name="up")
@click.option("--nodes", type=click.IntRange(min=0), default=2, show_default=True, help="Nodes node-0 ...")
@click.option(
    "--fleet",
    "fleet_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path, resolve_path=True),
    help="A fleet file describing the nodes (overrides --nodes).",
)
@click.option(
    "--port", type=click.IntRange(min=0, max=65535), default=0, help="API server port (0: any free port)."
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="JSON snapshot of the cluster's objects, loaded on start and kept current.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="Where the kubeconfig and the device-plugin sockets go (default: a new temporary directory).",
)
@click.option(
    "--scheduler-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path, resolve_path=True),
    help="A KubeSchedulerConfiguration whose profiles and extenders a second scheduler serves.",
)
@click.option(
    "--hami",
    "with_hami",
    is_flag=True,
    help="Also deploy hami: the scheduler (extender + webhook) and a device plugin per node, as processes.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path, resolve_path=True),
    help="With --hami: the hami config the processes run with (default: the mock backend).",
)
@click.option(
    "--real",
    is_flag=True,
    help="Run a real etcd, kube-apiserver and kube-scheduler (built by `make kube`) instead of the emulator.",
)
def local_cluster_up(
    nodes: int,
    fleet_file: Path | None,
    port: int,
    state_file: Path | None,
    workdir: Path | None,
    scheduler_config: Path | None,
    with_hami: bool,
    config_path: Path | None,
    real: bool,
) -> None:
    """Start the local cluster, print the kubectl line to use, and run until SIGTERM or Ctrl-C."""
    from hami_core.localcluster.cluster import LocalCluster
    from hami_core.localcluster.controlplane import ControlPlaneKind
    from hami_core.localcluster.fleet import load_fleet
    from hami_core.localcluster.stack import HamiStack

    if real and (port or state_file is not None):
        raise click.UsageError("--port and --state are emulator options; --real keeps its state in etcd")
    control_plane: ControlPlaneKind = "real" if real else "emulator"
    fleet = load_fleet(fleet_file if fleet_file is not None else nodes)
    where = workdir if workdir is not None else _short_tempdir()
    running: HamiStack | LocalCluster
    if with_hami:
        if port or scheduler_config is not None:
            raise click.UsageError("--hami chooses the scheduler configuration and port itself")
        document, source = _config_document(config_path)
        running = HamiStack(
            document, fleet, where, source=source, state_file=state_file, control_plane=control_plane
        )
    else:
        running = LocalCluster(
            fleet,
            where,
            port=port,
            state_file=state_file,
            scheduler_config=scheduler_config,
            control_plane=control_plane,
        )
    with _stopped_by_signals() as stop, running:
        cluster = running.cluster if isinstance(running, HamiStack) else running
        if isinstance(running, HamiStack):
            click.echo(f"hami scheduler {running.url} (extender + webhook), logs in {where / 'logs'}")
        click.echo(f"API server {cluster.url}, nodes: {', '.join(cluster.node_names) or 'none'}")
        click.echo(f"kubectl --kubeconfig {cluster.kubeconfig} get nodes")
        stop.wait()


#: The demo's fleet, hami config and example pods, shipped in the repository's examples/.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@hami.command(name="demo")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--examples",
    "examples_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True),
    default=EXAMPLES,
    show_default=True,
    help="A folder of Pod manifests (*.yaml) and demo/config.yaml + demo/fleet.yaml.",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True)
def demo(as_json: bool, examples_dir: Path, timeout: float) -> None:
    """Deploy hami on the local cluster, submit the example pods and show where they landed."""
    # gRPC's C core logs connection teardown at INFO when device plugins stop; the demo's
    # output is the report. Set before grpc is imported.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from hami_core.localcluster import demo as demo_run
    from hami_core.localcluster.fleet import load_fleet
    from hami_core.localcluster.stack import HamiStack
    from hami_core.top.demo_text import render_demo

    document, source = _config_document(examples_dir / "demo" / "config.yaml")
    manifests = demo_run.load_manifests(sorted(examples_dir.glob("*.yaml")))
    fleet = load_fleet(examples_dir / "demo" / "fleet.yaml")
    where = _short_tempdir()
    try:
        with HamiStack(document, fleet, where, source=source) as stack:
            result = demo_run.run_demo(stack, manifests, timeout=timeout)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_demo(result))


def _short_tempdir() -> Path:
    """A new temporary directory with a short path: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="hami-"))


def _config_document(path: Path | None) -> tuple[dict[str, object], str]:
    """The raw hami config document at ``path`` (the mock backend enabled when ``None``)."""
    if path is None:
        return {"version": "v1", "backends": {"mock": {"enabled": True}}}, "<mock defaults>"
    try:
        document = yaml_documents.load_yaml(path, f"config {path}")
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    if not isinstance(document, dict):
        raise click.ClickException(f"config {path}: expected a mapping")
    return document, str(path)


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM or SIGINT sets, so long-running commands return cleanly.

    The previous handlers are restored on exit.
    """
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@hami.command(name="scheduler")
@config_options
@kubeconfig_option
@click.option(
    "--bind",
    "http_bind",
    metavar="HOST:PORT",
    help="Extender and webhook address [default: scheduler.http_bind].",
)
@click.option(
    "--cert-file",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Serving certificate (HTTPS, reloaded when rotated) [default: scheduler.cert_file].",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Serving key [default: scheduler.key_file].",
)
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="CA of the client certificates the extender verbs require (mutual TLS); without one the "
    "server listens on loopback only [default: scheduler.client_ca_file].",
)
@click.option(
    "--metrics-bind",
    metavar="HOST:PORT",
    help="Metrics-only endpoint, empty for none [default: scheduler.metrics_bind].",
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=None,
    help="Leader election on a Lease [default: scheduler.leader_elect].",
)
@click.option(
    "--lock-expiry",
    type=click.FloatRange(min=1),
    help="Seconds after which a node lock is stale [default: scheduler.node_lock_timeout].",
)
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds a bind waits for another pod's node lock.",
)
@api_timeout_option
def scheduler_command(
    config_path: Path | None,
    backend_names: tuple[str, ...],
    kubeconfig: Path | None,
    http_bind: str | None,
    cert_file: Path | None,
    key_file: Path | None,
    client_ca: Path | None,
    metrics_bind: str | None,
    leader_elect: bool | None,
    lock_expiry: float | None,
    lock_wait: float,
    api_timeout: float,
) -> None:
    """Serve the scheduler extender (/filter, /prioritize, /bind), the admission webhook (/webhook),
    /healthz, /readyz and /metrics, until SIGTERM or Ctrl-C."""
    # Imported here: the Kubernetes client and the scheduler are heavy, and only this command needs them.
    import logging

    from hami_core.kube.client import RealKubeClient
    from hami_core.scheduler import app
    from hami_core.scheduler.admission_view import AdmissionView
    from hami_core.webhook.mutating import WebhookSettings
    from hami_core.webhook.server import AdmissionHandler
    from hami_core.webhook.tls import ReloadingCertificate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_cli_config(config_path, backend_names)
    cert = str(cert_file) if cert_file is not None else config.scheduler.cert_file
    key = str(key_file) if key_file is not None else config.scheduler.key_file
    ca = str(client_ca) if client_ca is not None else config.scheduler.client_ca_file
    if bool(cert) != bool(key):
        raise click.UsageError("HTTPS needs both a certificate and a key (--cert-file and --key-file)")
    if ca and not cert:
        raise click.UsageError("client certificates need HTTPS: give --cert-file and --key-file too")
    tls = ReloadingCertificate(cert, key, ca or None) if cert else None

    def admission(loaded: plugins.Backends, view: AdmissionView) -> AdmissionHandler:
        policies = [name for name, policy in loaded.scoring_policies.items() if policy.kind == "node"]
        settings = WebhookSettings.from_config(config.scheduler, node_policies=policies)
        return AdmissionHandler(loaded, settings, view, quota=view)

    with _stopped_by_signals() as stop, RealKubeClient(kubeconfig=kubeconfig, timeout=api_timeout) as kube:
        scheduler = app.build_scheduler(
            config,
            kube,
            bind=http_bind,
            metrics_bind=metrics_bind,
            leader_election=leader_elect,
            lock_expiry=lock_expiry,
            lock_wait=lock_wait,
            admission=admission,
            tls=tls,
        )
        app.run(scheduler, stop=stop)


@hami.command(name="monitor")
@click.option(
    "--node-name", envvar="NODE_NAME", required=True, help="The node this monitor runs on [env NODE_NAME]."
)
@click.option(
    "--containers-dir",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    default="/usr/local/vgpu/containers",
    show_default=True,
    help="The host directory of <podUID>_<container>/*.cache regions (HAMi's <HOOK_PATH>/containers).",
)
@click.option("--metrics-bind", default=":9394", show_default=True, help="Where /metrics is served.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between scans.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds a deleted pod's region directory is kept before it is removed.",
)
@click.option(
    "--kubelet-url",
    default="https://127.0.0.1:10250",
    show_default=True,
    help="The kubelet whose /pods maps regions to pods; empty: ask the API server only.",
)
@kubeconfig_option
@api_timeout_option
@click.option("--no-nvml", is_flag=True, help="Export no host GPU metrics (do not load NVML).")
def monitor_command(
    node_name: str,
    containers_dir: Path,
    metrics_bind: str,
    interval: float,
    grace: float,
    kubelet_url: str,
    kubeconfig: Path | None,
    api_timeout: float,
    no_nvml: bool,
) -> None:
    """Export per-container device metrics from the shim's regions and coordinate priorities."""
    import logging

    from hami_core.kube.client import RealKubeClient
    from hami_core.monitor import app
    from hami_core.monitor import sources
    from hami_core.monitor.host import nvml_host

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = None if no_nvml else nvml_host()
    with _stopped_by_signals() as stop, RealKubeClient(kubeconfig=kubeconfig, timeout=api_timeout) as kube:
        api = sources.ApiPods(kube, node_name)
        pods = sources.FirstAvailable(sources.KubeletPods(kubelet_url), api) if kubelet_url else api
        app.run(
            containers_dir,
            node_name,
            pods,
            host=host,
            bind=metrics_bind,
            interval=interval,
            grace=grace,
            stop=stop,
        )


@hami.command(name="top")
@config_options
@kubeconfig_option
@api_timeout_option
@click.option(
    "-n", "--namespace", default=None, help="Only pods of this namespace (and the devices they hold)."
)
@click.option(
    "--sort",
    type=click.Choice(["node", "memory", "cores", "used"]),
    default="node",
    show_default=True,
    help="Order devices and pods: by node, or by booked memory, booked cores or used memory.",
)
@click.option(
    "--monitor",
    "monitors",
    multiple=True,
    metavar="URL",
    help="A hami monitor's metrics URL, e.g. http://node:9394/metrics (repeatable): adds what pods use.",
)
@click.option("--once", is_flag=True, help="Print the view once and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the view once as JSON and exit.")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="Seconds between scrapes.",
)
def top_command(
    config_path: Path | None,
    backend_names: tuple[str, ...],
    kubeconfig: Path | None,
    api_timeout: float,
    namespace: str | None,
    sort: str,
    monitors: tuple[str, ...],
    once: bool,
    as_json: bool,
    refresh: float,
) -> None:
    """Who books and uses how much of which device, per node; live from the API server's watches.

    Without --config or --backend, every installed backend is read.
    """
    from rich.console import Console
    from rich.live import Live

    from hami_core.kube.client import RealKubeClient
    from hami_core.top import live
    from hami_core.top import render
    from hami_core.top.state import ClusterState
    from hami_core.top.usage import UsageReport
    from hami_core.top.usage import fetch_usage
    from hami_core.top.view import SortKey

    config = load_cli_config(config_path, backend_names)
    if not config.enabled_backends:
        config = config.with_enabled([b.name for b in plugins.installed_backends(config) if not b.error])
    backends = list(plugins.load_backends(config))
    order = cast("SortKey", sort)
    usage: list[UsageReport] = [fetch_usage(monitors) if monitors else UsageReport()]
    with RealKubeClient(kubeconfig=kubeconfig, timeout=api_timeout) as kube:
        if once or as_json:
            state = ClusterState(kube.list_nodes()["items"], kube.list_pods()["items"])
            view = live.snapshot_view(state, backends, usage[0], namespace=namespace, sort=order)
            click.echo(json.dumps(view.to_json(), indent=2) if as_json else render.render_text(view))
            return
        console = Console()
        with _stopped_by_signals() as stop, Live(console=console, auto_refresh=False) as screen:

            def scrape() -> None:
                if monitors:
                    usage[0] = fetch_usage(monitors)

            def draw(state: ClusterState, _rescraped: bool) -> None:
                view = live.snapshot_view(state, backends, usage[0], namespace=namespace, sort=order)
                screen.update(render.table(view, title="hami top"), refresh=True)

            live.follow(kube, draw, scrape, stop, refresh)


@hami.command(name="simulate")
@click.option(
    "--nodes",
    "nodes_path",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Trace node CSV.",
)
@click.option(
    "--pods",
    "pods_path",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Trace pod CSV.",
)
@click.option(
    "--cluster",
    "cluster_path",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Cluster YAML/JSON.",
)
@click.option(
    "--workload",
    "workload_path",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Workload YAML/JSON.",
)
@click.option("--policy", "policy_text", default="all", show_default=True, metavar="NAME[,NAME...]|all")
@click.option("--seeds", "seeds_text", default="42", show_default=True, metavar="42-51|42,43")
@click.option(
    "--arrive", default=130.0, show_default=True, help="Arrived GPU demand to replay, % of capacity."
)
@click.option("--workers", type=click.IntRange(min=1), help="Processes (default: one per available core).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option(
    "--csv",
    "csv_dir",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="Write the paper's CSVs here.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path, resolve_path=True),
    help="Draw a PNG (needs hami[plot]).",
)
def simulate_command(
    nodes_path: Path | None,
    pods_path: Path | None,
    cluster_path: Path | None,
    workload_path: Path | None,
    policy_text: str,
    seeds_text: str,
    arrive: float,
    workers: int | None,
    as_json: bool,
    csv_dir: Path | None,
    plot_path: Path | None,
) -> None:
    """Replay a cluster trace through the scheduler's fit and policies; compare unallocated GPU %."""
    from rich.console import Console

    from hami_core.simulate import command
    from hami_core.simulate import report

    if (nodes_path is None) == (cluster_path is None) or (pods_path is None) == (workload_path is None):
        raise click.UsageError(
            "give the cluster as --nodes CSV or --cluster FILE, the pods as --pods CSV or --workload FILE"
        )
    setup = command.experiment(nodes_path or cluster_path, pods_path or workload_path, arrive)  # type: ignore[arg-type]
    policies = command.parse_policies(policy_text)
    seeds = command.parse_seeds(seeds_text)
    console = Console(stderr=as_json)
    runs = command.run(setup, policies, seeds, console, workers)
    if csv_dir is not None:
        report.write_csv(csv_dir, runs, arrive)
    if plot_path is not None:
        report.plot(plot_path, runs)
    if as_json:
        click.echo(json.dumps(report.json_object(runs)))
    else:
        console.print(report.table(runs, arrive))


def main() -> None:
    """Entry point of the ``hami`` console script."""
    hami(prog_name="hami")
