"""``helm lint --strict`` and ``helm template`` over the chart's scenarios, checked object by object."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import click
import kubernetes_validate
import pytest
import yaml

from hami_core.config import parse_config
from hami_core.localcluster.scheduler_config import load_scheduler_config
from hami_core.plugins import load_backends
from tests.chart.chart import BACKENDS
from tests.chart.chart import CHART
from tests.chart.chart import KUBE_VERSIONS
from tests.chart.chart import PENDING_COMMANDS
from tests.chart.chart import ROOT
from tests.chart.chart import by_kind
from tests.chart.chart import check_cli_args
from tests.chart.chart import container_env
from tests.chart.chart import containers
from tests.chart.chart import helm
from tests.chart.chart import managed_resources
from tests.chart.chart import one
from tests.chart.chart import render
from tests.chart.chart import set_args

#: name -> values; every scenario the acceptance names.
SCENARIOS: dict[str, dict[str, object]] = {
    "defaults": {},
    **{
        f"{name}-only": {f"backends.{other}.enabled": other == name for other in BACKENDS}
        for name in BACKENDS
    },
    "all-backends": {f"backends.{name}.enabled": True for name in BACKENDS},
    "cert-manager": {"certificates.certManager.enabled": True},
    "ha-scheduler": {"scheduler.replicas": 3},
    "metrics": {"serviceMonitor.enabled": True, "monitor.enabled": False},
}
#: Kinds from CRDs (cert-manager, Prometheus operator): no schema in kubernetes-validate.
CRD_KINDS = {"Issuer", "Certificate", "ServiceMonitor"}
#: The HAMi resource names of each backend (hami-wire.md sections 2 and 6).
HAMI_NAMES = {
    "nvidia": {
        "nvidia.com/gpu",
        "nvidia.com/gpumem",
        "nvidia.com/gpumem-percentage",
        "nvidia.com/gpucores",
        "nvidia.com/priority",
    },
    "mlu": {"cambricon.com/vmlu", "cambricon.com/mlu.smlu.vmemory", "cambricon.com/mlu.smlu.vcore"},
    "dcu": {"hygon.com/dcunum", "hygon.com/dcumem", "hygon.com/dcucores"},
    **{
        chip.lower().replace("-", ""): {f"huawei.com/{chip}{suffix}" for suffix in ("", "-memory", "-core")}
        for chip in (
            "Ascend910A",
            "Ascend910B2",
            "Ascend910B3",
            "Ascend910B4-1",
            "Ascend910B4",
            "Ascend310P",
            "Ascend910C",
        )
    },
    "mock": {
        "mock.hami.io/gpu",
        "mock.hami.io/gpumem",
        "mock.hami.io/gpumem-percentage",
        "mock.hami.io/gpucores",
        "mock.hami.io/priority",
    },
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="module")
def rendered(home: Path) -> dict[tuple[str, str], list[dict[str, object]]]:
    """Every scenario rendered for the oldest and newest Kubernetes."""
    return {
        (name, version): render(home, values, kube_version=version)
        for name, values in SCENARIOS.items()
        for version in KUBE_VERSIONS
    }


def enabled(values: dict[str, object]) -> set[str]:
    return {name for name in BACKENDS if values.get(f"backends.{name}.enabled", name == "nvidia")}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(home: Path, scenario: str) -> None:
    result = helm(home, "lint", "--strict", str(CHART), *set_args(SCENARIOS[scenario]))
    assert "0 chart(s) failed" in result.stdout


def test_every_document_validates_for_oldest_and_newest_kubernetes(rendered: dict) -> None:
    checked: set[tuple[str, str]] = set()
    for (scenario, version), docs in rendered.items():
        for doc in docs:
            key = (version, json.dumps(doc, sort_keys=True))
            if doc["kind"] in CRD_KINDS or key in checked:
                continue  # each distinct document once per version: validation is slow
            checked.add(key)
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(
                    f"{scenario} on {version}: {doc['kind']}/{doc['metadata']['name']}: {err.message}"
                )
    assert len(checked) > 50


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_container_names_are_unique_in_each_pod(rendered: dict, scenario: str) -> None:
    """kube-apiserver refuses a pod whose init and regular containers share a name; the schemas cannot."""
    names: dict[str, list[str]] = {}
    for workload, container in containers(rendered[(scenario, KUBE_VERSIONS[-1])]):
        names.setdefault(f"{workload['kind']}/{workload['metadata']['name']}", []).append(container["name"])
    for workload, in_pod in names.items():
        assert len(in_pod) == len(set(in_pod)), f"{workload}: {in_pod}"


def test_validation_catches_a_wrong_type(home: Path) -> None:
    """The validation above can fail: a rendered Deployment with a string replica count is refused."""
    docs = render(home)
    deployment = one(docs, "Deployment", "hami-scheduler")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="replicas"):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_one_daemonset_per_enabled_backend(rendered: dict, scenario: str) -> None:
    docs = rendered[(scenario, KUBE_VERSIONS[-1])]
    wanted = enabled(SCENARIOS[scenario])
    daemonsets = by_kind(docs, "DaemonSet")
    backends = [ds["metadata"]["labels"]["hami.io/backend"] for ds in daemonsets]
    assert sorted(backends) == sorted(wanted)
    for ds in daemonsets:
        name = ds["metadata"]["labels"]["hami.io/backend"]
        pod = ds["spec"]["template"]["spec"]
        args = next(c for c in pod["containers"] if c["name"] == "device-plugin")["args"]
        assert args[args.index("--backend") + 1] == name
        assert (
            pod["nodeSelector"]
            == yaml.safe_load((CHART / "values.yaml").read_text())["backends"][name]["nodeSelector"]
        )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_extender_manages_exactly_the_enabled_backends_resources(rendered: dict, scenario: str) -> None:
    docs = rendered[(scenario, KUBE_VERSIONS[-1])]
    names = managed_resources(docs)
    assert len(names) == len(set(names))
    assert set(names) == set().union(*(HAMI_NAMES[name] for name in enabled(SCENARIOS[scenario])))
    # And the kube-scheduler stand-in, which refuses what it cannot honour, accepts the stanza.
    config = load_scheduler_config(one(docs, "ConfigMap", "hami-scheduler")["data"]["config.yaml"])
    assert config.scheduler_names == ("hami-scheduler",)


def test_backend_keys_are_the_entry_point_names() -> None:
    """One name per backend on every surface: values keys are the in-tree ``hami.backends`` entry points."""
    entry_points: set[str] = set()
    for pyproject in [*ROOT.glob("backends/*/pyproject.toml"), *ROOT.glob("plugins/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text())["project"]
        entry_points |= set(project.get("entry-points", {}).get("hami.backends", {}))
    assert set(BACKENDS) == entry_points
    assert set(HAMI_NAMES) == entry_points


def test_managed_resources_are_what_the_loaded_backends_serve(rendered: dict) -> None:
    """The backends the rendered config loads manage exactly the names the extender stanza lists."""
    docs = rendered[("all-backends", KUBE_VERSIONS[-1])]
    config = parse_config(yaml.safe_load(one(docs, "ConfigMap", "hami-config")["data"]["hami.yaml"]))
    loaded = load_backends(config)
    assert sorted(backend.name for backend in loaded) == sorted(BACKENDS)
    for backend in loaded:
        assert set(backend.resource_names.all()) == HAMI_NAMES[backend.name], backend.name
    assert sorted(managed_resources(docs)) == sorted(
        name for backend in loaded for name in backend.resource_names.all()
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hami_config_loads_with_enabled_backends(rendered: dict, scenario: str) -> None:
    """The rendered hami config passes the real loader and enables exactly the chart's backends."""
    docs = rendered[(scenario, KUBE_VERSIONS[-1])]
    text = one(docs, "ConfigMap", "hami-config")["data"]["hami.yaml"]
    config = parse_config(yaml.safe_load(text), "hami-config")
    assert set(config.enabled_backends) == enabled(SCENARIOS[scenario])
    assert config.scheduler.leader_elect is True


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_hami_container_is_accepted_by_the_cli(rendered: dict, scenario: str) -> None:
    seen = set()
    for workload, container in containers(rendered[(scenario, KUBE_VERSIONS[-1])]):
        if container.get("command") != ["hami"]:
            continue
        args = container["args"]
        if args[0] in PENDING_COMMANDS:
            continue
        try:
            seen.add(check_cli_args(args, container_env(container)))
        except click.UsageError as err:
            pytest.fail(f"{workload['metadata']['name']}/{container['name']}: hami {' '.join(args)}: {err}")
    assert {"scheduler", "certs"} <= seen or scenario == "cert-manager"
    assert "device-plugin" in seen


def _cli() -> click.Group:
    from hami_core.cli import hami

    return hami


def test_pending_commands_are_still_missing() -> None:
    """Once the CLI has a pending command, its containers must be checked: drop it from the list."""
    ctx = click.Context(_cli())
    assert not set(PENDING_COMMANDS) & set(_cli().list_commands(ctx)), PENDING_COMMANDS


def test_a_container_arg_the_cli_refuses_fails_the_check() -> None:
    with pytest.raises(click.UsageError, match="--no-such-flag"):
        check_cli_args(["scheduler", "--config", "/config/hami.yaml", "--no-such-flag"])
    with pytest.raises(click.UsageError, match="node"):
        check_cli_args(["device-plugin", "--backend", "mock"], {})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backends.nvidia.enabeld": True}, "- backends.nvidia: Additional property enabeld is not allowed"),
        ({"scheduler.replica": 2}, "- scheduler: Additional property replica is not allowed"),
        ({"webhok": {}}, "- (root): Additional property webhok is not allowed"),
        (
            {"scheduler.replicas": "two"},
            "- scheduler.replicas: Invalid type. Expected: integer, given: string",
        ),
        (
            {"webhook.failurePolicy": "Sometimes"},
            "- webhook.failurePolicy: webhook.failurePolicy must be one of",
        ),
        ({"backends.tpu.enabled": True}, "- backends.tpu: nodeSelector is required"),
        # The vendor is not a backend: each Ascend chip is one (ascend910b3, ...).
        ({"backends.ascend.enabled": True}, "- backends.ascend: nodeSelector is required"),
        (
            {"backends.ascend910b3.enabeld": True},
            "- backends.ascend910b3: Additional property enabeld is not allowed",
        ),
    ],
)
def test_schema_refuses_typos_and_wrong_types_naming_the_key(
    home: Path, values: dict[str, object], message: str
) -> None:
    result = helm(home, "template", "hami", str(CHART), *set_args(values), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_replicas_without_leader_election_are_refused(home: Path) -> None:
    result = helm(
        home,
        "template",
        "hami",
        str(CHART),
        *set_args({"scheduler.replicas": 2, "scheduler.leaderElect": False}),
        check=False,
    )
    assert result.returncode != 0
    assert "leaderElect" in result.stderr


def test_ha_scheduler_spreads_replicas_and_budgets_disruptions(rendered: dict) -> None:
    docs = rendered[("ha-scheduler", KUBE_VERSIONS[-1])]
    deployment = one(docs, "Deployment", "hami-scheduler")
    assert deployment["spec"]["replicas"] == 3
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    pdb = one(docs, "PodDisruptionBudget", "hami-scheduler")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    service = one(docs, "Service", "hami-scheduler")
    assert service["spec"]["selector"]["hami.io/scheduler-role"] == "leader"


def test_webhook_fails_closed_and_skips_kube_system_and_ignored_pods(rendered: dict) -> None:
    docs = rendered[("defaults", KUBE_VERSIONS[-1])]
    (webhook,) = one(docs, "MutatingWebhookConfiguration", "hami-webhook")["webhooks"]
    assert webhook["failurePolicy"] == "Fail"
    assert "caBundle" not in webhook["clientConfig"]
    namespaces = {e["key"]: e for e in webhook["namespaceSelector"]["matchExpressions"]}
    assert namespaces["kubernetes.io/metadata.name"]["values"] == ["kube-system"]
    assert namespaces["hami.io/webhook"]["values"] == ["ignore"]
    assert webhook["objectSelector"]["matchExpressions"] == [
        {"key": "hami.io/webhook", "operator": "NotIn", "values": ["ignore"]}
    ]
    service = one(docs, "Service", "hami-scheduler")
    assert webhook["clientConfig"]["service"]["port"] in [p["port"] for p in service["spec"]["ports"]]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["metrics"] == 31993


def test_cert_manager_mode_replaces_hami_certs(rendered: dict) -> None:
    docs = rendered[("cert-manager", KUBE_VERSIONS[-1])]
    certificate = one(docs, "Certificate", "hami-scheduler-tls")
    assert certificate["spec"]["secretName"] == "hami-scheduler-tls"
    assert certificate["spec"]["duration"] == "8760h"
    webhook = one(docs, "MutatingWebhookConfiguration", "hami-webhook")
    assert (
        webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "kube-system/hami-scheduler-tls"
    )
    assert not by_kind(docs, "Secret")
    assert all(c.get("args", [""])[0] != "certs" for _, c in containers(docs))
    volumes = one(docs, "Deployment", "hami-scheduler")["spec"]["template"]["spec"]["volumes"]
    (tls,) = [volume for volume in volumes if volume["name"] == "tls"]
    serving, client = tls["projected"]["sources"]
    assert serving == {"secret": {"name": "hami-scheduler-tls"}}
    assert client["secret"]["name"] == "hami-scheduler-tls-client"
    assert {item["path"] for item in client["secret"]["items"]} == {
        "client.crt",
        "client.key",
        "client-ca.crt",
    }
    client_certificate = one(docs, "Certificate", "hami-scheduler-tls-client")
    assert client_certificate["spec"]["usages"] == ["digital signature", "client auth"]
    config = yaml.safe_load(one(docs, "ConfigMap", "hami-config")["data"]["hami.yaml"])
    assert config["scheduler"]["client_ca_file"] == "/tls/client-ca.crt"


def test_kube_scheduler_and_the_extender_use_mutual_tls(rendered: dict) -> None:
    """kube-scheduler presents the client pair `hami certs --client-cert` writes; the extender requires its CA."""
    docs = rendered[("defaults", KUBE_VERSIONS[-1])]
    scheduler_config = yaml.safe_load(one(docs, "ConfigMap", "hami-scheduler")["data"]["config.yaml"])
    (extender,) = scheduler_config["extenders"]
    assert extender["tlsConfig"] == {
        "certFile": "/tls/client.crt",
        "keyFile": "/tls/client.key",
        "caFile": "/tls/ca.crt",
        "serverName": "hami-scheduler.kube-system.svc",
    }
    config = yaml.safe_load(one(docs, "ConfigMap", "hami-config")["data"]["hami.yaml"])
    assert config["scheduler"]["client_ca_file"] == "/tls/ca.crt"
    assert config["scheduler"]["http_bind"].startswith("0.0.0.0:")
    pod = one(docs, "Deployment", "hami-scheduler")["spec"]["template"]["spec"]
    (certs_init,) = pod["initContainers"]
    assert certs_init["args"][-2:] == ["--client-cert", "kube-scheduler"]
    (kube_scheduler,) = [c for c in pod["containers"] if c["name"] == "kube-scheduler"]
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in kube_scheduler["volumeMounts"]


def test_dashboard_is_valid_grafana_json_over_exported_metrics(rendered: dict) -> None:
    docs = rendered[("defaults", KUBE_VERSIONS[-1])]
    dashboard = json.loads(one(docs, "ConfigMap", "hami-dashboard")["data"]["hami.json"])
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for metric in ("hami_node_gpu_memory_allocated_ratio", "hami_scheduler_filter_duration_seconds_bucket"):
        assert metric in exprs


def test_secret_is_rendered_without_data(rendered: dict) -> None:
    """Upgrades must keep what `hami certs` stored: the chart never renders the certificate data."""
    secret = one(rendered[("defaults", KUBE_VERSIONS[-1])], "Secret", "hami-scheduler-tls")
    assert "data" not in secret
    assert "stringData" not in secret
