"""``helm install`` / ``upgrade`` / ``uninstall`` into the local cluster, then the installed objects run.

The chart is installed by the real ``helm`` into the cluster, once on the API server emulator and
once on the real kube-apiserver (``control_plane`` fixture). The processes its objects describe are
then started from the objects read back from the API server: the scheduler pod's init container and
containers through the real ``hami`` CLI with the installed ConfigMaps mounted, kube-scheduler from
the installed KubeSchedulerConfiguration (the stand-in on the emulator, the real ``kube-scheduler``
binary on the real control plane), the webhook as the installed MutatingWebhookConfiguration
registers it (through its Service, with the caBundle ``hami certs`` set), and each DaemonSet's
device plugin on the nodes its selector picks. Every process authenticates as its pod's service
account. Enabled: mock, NVIDIA (no node of its own) and two Ascend chip backends, one of which has
a node labelled for it. A pod asking for a mock device and one asking for an Ascend 910B3 NPU must
then be mutated, scheduled, bound and allocated. The monitor runs beside each device plugin and
must serve its metrics (with no shim regions to read: tests/monitor covers those).
"""

from __future__ import annotations

import base64
import importlib.util
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hami_core.errors import KubeError
from hami_core.kube.client import RealKubeClient
from hami_core.kube.selectors import label_selector_from_object
from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.controlplane import find_binaries
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.scheduler import Scheduler
from hami_core.localcluster.scheduler_config import load_scheduler_config
from hami_core.localcluster.stack import free_port
from tests.chart.chart import CHART
from tests.chart.chart import helm
from tests.chart.chart import set_args
from tests.chart.clusterapi import ClusterApi
from tests.chart.clusterapi import release_objects
from tests.chart.clusterapi import service_account_kubeconfig
from tests.chart.sandbox import PodSandbox

NAMESPACE = "kube-system"
RELEASE = "hami"
#: NVIDIA when its distribution is installed. Its DaemonSet selects gpu=on nodes, which this fleet
#: does not have, so no NVML is needed; the extender still loads it.
NVIDIA = importlib.util.find_spec("hami_backend_nvidia") is not None
#: Two Ascend chip backends when the distribution is installed: the 910B3 on its shipped
#: ``npu-smi`` fake serves the one node labelled with that chip; the 910A's DaemonSet selects none.
ASCEND = importlib.util.find_spec("hami_backend_ascend") is not None
VALUES: dict[str, object] = {
    "backends.mock.enabled": True,
    "backends.nvidia.enabled": NVIDIA,
    "backends.ascend910b3.enabled": ASCEND,
    "backends.ascend910b3.config": {"fake": "8x910B3"},
    "backends.ascend910a.enabled": ASCEND,
}
ENABLED = sorted(
    ["mock", *(["nvidia"] if NVIDIA else []), *(["ascend910a", "ascend910b3"] if ASCEND else [])]
)
FLEET = {
    "nodes": [
        {"name": "mock-0", "labels": {"hami.io/mock-devices": "on"}},
        {"name": "mock-1", "labels": {"hami.io/mock-devices": "on"}},
        {"name": "npu-0", "labels": {"ascend": "on", "hami.io/ascend-chip": "Ascend910B3"}},
        {"name": "plain-0"},
    ]
}

pytestmark = pytest.mark.slow


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answers(sandbox: PodSandbox, container: dict[str, Any], kind: str) -> bool:
    """The container's ``kind`` probe succeeds now (a refused connection is not yet)."""
    try:
        return sandbox.probe(container, kind) == 200
    except OSError:
        return False


def serves_metrics(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return int(response.status) == 200
    except OSError:
        return False


def start_kube_scheduler(pod: PodSandbox) -> Scheduler | None:
    """kube-scheduler as the scheduler pod runs it, configured from the installed ConfigMap.

    On the emulator: the stand-in, from the same file. On the real control plane: the real binary
    with the pod's command; what a pod gives it implicitly is given explicitly (the service
    account's credentials as ``clientConnection.kubeconfig`` and for delegated authentication, a
    free loopback port for the probes' 10259).
    """
    container = pod.container("kube-scheduler")
    command = pod.argv(container)
    assert command[0] == "kube-scheduler"
    (config_arg,) = [arg for arg in command[1:] if arg.startswith("--config=")]
    config_path = Path(config_arg.removeprefix("--config="))
    if pod.cluster.control_plane != "real":
        stand_in = Scheduler(pod.cluster.client(), load_scheduler_config(config_path))
        stand_in.start()
        return stand_in
    document = yaml.safe_load(config_path.read_text())
    document.setdefault("clientConnection", {})["kubeconfig"] = str(pod.kubeconfig)
    config_path.write_text(yaml.safe_dump(document))
    port = free_port()
    (probe_port,) = {container[kind]["httpGet"]["port"] for kind in ("livenessProbe", "readinessProbe")}
    pod.ports[probe_port] = port
    pod.start(
        "kube-scheduler",
        executable=find_binaries() / "kube-scheduler",
        extra_args=[
            f"--authentication-kubeconfig={pod.kubeconfig}",
            f"--authorization-kubeconfig={pod.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
        ],
    )
    wait_for("kube-scheduler to be ready", lambda: answers(pod, container, "readinessProbe"), timeout=90)
    assert answers(pod, container, "livenessProbe")
    return None


@pytest.fixture
def cluster(
    control_plane: ControlPlaneKind, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("lc", numbered=True)
    with LocalCluster(FLEET, workdir, control_plane=control_plane) as running:
        yield running


def test_helm_install_runs_pods_upgrade_keeps_certificates_uninstall_leaves_nothing(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    home = tmp_path / "helm"
    kube = cluster.kube
    api = ClusterApi(cluster.kubeconfig)
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig)]
    helm(home, "install", RELEASE, str(CHART), "-n", NAMESPACE, *kubeconfig, *set_args(VALUES))

    deployment = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/hami-scheduler")
    daemonsets = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets")["items"]
    assert sorted(ds["metadata"]["labels"]["hami.io/backend"] for ds in daemonsets) == ENABLED
    template = deployment["spec"]["template"]
    # The scheduler pod, as the Deployment's ReplicaSet would create it.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "hami-scheduler-0",
            "namespace": NAMESPACE,
            "labels": template["metadata"]["labels"],
        },
        "spec": {**template["spec"], "nodeName": "plain-0"},
    }
    kube.create_pod(NAMESPACE, pod)
    scheduler_pod = PodSandbox(
        cluster,
        template,
        namespace=NAMESPACE,
        pod_name="hami-scheduler-0",
        node="plain-0",
        root=tmp_path / "scheduler",
        host_paths={},
    )
    sandboxes = [scheduler_pod]
    stand_in: Scheduler | None = None
    try:
        extender = scheduler_pod.container("extender")
        scheduler_pod.translate_files("config", extender)
        scheduler_pod.translate_files("scheduler-config", scheduler_pod.container("kube-scheduler"))
        # Init container: hami certs stores the CA and pair in the chart's Secret, writes /tls and
        # sets the webhook's caBundle.
        scheduler_pod.run_init("certs")
        secret = kube.get_secret(NAMESPACE, "hami-scheduler-tls")
        assert set(secret["data"]) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
        (webhook,) = kube.get_mutating_webhook_configuration("hami-webhook")["webhooks"]
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == base64.b64decode(
            secret["data"]["ca.crt"]
        )

        scheduler_pod.start("extender")
        scheduler_pod.start("renew-certs")
        stand_in = start_kube_scheduler(scheduler_pod)
        wait_for(
            "the scheduler to lead and label its pod",
            lambda: (
                kube.get_pod(NAMESPACE, "hami-scheduler-0")["metadata"]["labels"].get(
                    "hami.io/scheduler-role"
                )
                == "leader"
            ),
        )
        # The webhook Service's port reaches the extender container's named port, as the endpoints
        # controller and kube-proxy would route it to the ready leader: the API server calls the
        # webhook through the Service the chart's configuration names.
        ref = webhook["clientConfig"]["service"]
        service = api.get(f"/api/v1/namespaces/{ref['namespace']}/services/{ref['name']}")
        (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
        local = scheduler_pod.ports[scheduler_pod.named_ports[service_port["targetPort"]]]
        cluster.map_service(ref["namespace"], ref["name"], ref["port"], local)

        # The extender's probes reach what they name (the kubelet would restart it otherwise).
        for kind in ("livenessProbe", "readinessProbe"):
            assert scheduler_pod.probe(extender, kind) == 200, kind

        # One device-plugin pod per DaemonSet and selected node.
        nodes = kube.list_nodes()["items"]
        for ds in daemonsets:
            spec = ds["spec"]["template"]
            selector = label_selector_from_object({"matchLabels": spec["spec"].get("nodeSelector") or {}})
            for node in nodes:
                name = node["metadata"]["name"]
                if not selector.matches(node["metadata"].get("labels")):
                    continue
                sandbox = PodSandbox(
                    cluster,
                    spec,
                    namespace=NAMESPACE,
                    pod_name=f"{ds['metadata']['name']}-{name}",
                    node=name,
                    root=tmp_path / ds["metadata"]["name"] / name,
                    host_paths={"/var/lib/kubelet/device-plugins": cluster.plugin_dir(name)},
                )
                sandboxes.append(sandbox)
                for init in spec["spec"].get("initContainers") or []:
                    sandbox.run_init(init["name"])
                for container in spec["spec"]["containers"]:
                    sandbox.start(container["name"])
        wait_for(
            "both mock nodes to advertise their devices",
            lambda: all(
                kube.get_node(name)["status"]["allocatable"].get("mock.hami.io/gpu") == "20"
                for name in ("mock-0", "mock-1")
            ),
        )

        # Each DaemonSet ran exactly on the nodes labelled for its backend (an Ascend chip's on
        # that chip's nodes only).
        assert sorted(sandbox.pod_name for sandbox in sandboxes[1:]) == sorted(
            [
                "hami-device-plugin-mock-mock-0",
                "hami-device-plugin-mock-mock-1",
                *(["hami-device-plugin-ascend910b3-npu-0"] if ASCEND else []),
            ]
        )
        if ASCEND:
            wait_for(
                "the 910B3 node to register its NPUs",
                lambda: (
                    "hami.io/node-register-Ascend910B3"
                    in (kube.get_node("npu-0")["metadata"].get("annotations") or {})
                ),
            )

        # Each node's monitor serves its metrics on the monitor Service's target port.
        monitor_service = api.get(f"/api/v1/namespaces/{NAMESPACE}/services/hami-device-plugin-monitor")
        (monitor_target,) = [p["targetPort"] for p in monitor_service["spec"]["ports"]]
        for sandbox in sandboxes[1:]:
            port = sandbox.ports[sandbox.named_ports[monitor_target]]
            wait_for(f"{sandbox.pod_name}'s monitor", lambda port=port: serves_metrics(port))

        # A pod asking for a shared mock device: mutated by the webhook, scheduled through the
        # extender, bound, and allocated by the device plugin on the chosen node.
        workload = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "trainer", "namespace": "default"},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox:1.36",
                        "resources": {"limits": {"mock.hami.io/gpu": 1, "mock.hami.io/gpumem": 4096}},
                    }
                ]
            },
        }
        created = kube.create_pod("default", workload)
        assert created["spec"]["schedulerName"] == "hami-scheduler"
        bound = wait_for(
            "the pod to be bound and allocated",
            lambda: (
                (p := kube.get_pod("default", "trainer"))["metadata"]
                .get("annotations", {})
                .get(ALLOCATIONS_ANNOTATION)
                and p
            ),
            timeout=90,
        )
        assert bound["spec"]["nodeName"] in ("mock-0", "mock-1")
        assert "hami.io/mock-devices-allocated" in bound["metadata"]["annotations"]
        if ASCEND:
            # ... and one asking for an Ascend 910B3 NPU lands on the 910B3 node.
            npu_pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "npu-trainer", "namespace": "default"},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "resources": {"limits": {"huawei.com/Ascend910B3": 1}},
                        }
                    ]
                },
            }
            assert kube.create_pod("default", npu_pod)["spec"]["schedulerName"] == "hami-scheduler"
            npu_bound = wait_for(
                "the NPU pod to be bound and allocated",
                lambda: (
                    (p := kube.get_pod("default", "npu-trainer"))["metadata"]
                    .get("annotations", {})
                    .get(ALLOCATIONS_ANNOTATION)
                    and p
                ),
                timeout=90,
            )
            assert npu_bound["spec"]["nodeName"] == "npu-0"
        # The Service's metrics port reaches the extender's metrics endpoint.
        (metrics_target,) = [p["targetPort"] for p in service["spec"]["ports"] if p["name"] == "metrics"]
        metrics_port = scheduler_pod.ports[scheduler_pod.named_ports[metrics_target]]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert "hami_gpu_memory_limit_bytes" in metrics
        # ... and shows that kube-scheduler asked the extender to filter (the rendered stanza works).
        (filters,) = [
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("hami_scheduler_filter_duration_seconds_count")
        ]
        assert filters >= 1

        # Upgrade: the changed value arrives, the certificates hami certs stored survive.
        helm(
            home,
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            NAMESPACE,
            *kubeconfig,
            "--reuse-values",
            *set_args({"scheduler.nodeSchedulerPolicy": "spread"}),
        )
        config = kube.get_config_map(NAMESPACE, "hami-config")["data"]["hami.yaml"]
        assert "node_scheduler_policy: spread" in config
        assert kube.get_secret(NAMESPACE, "hami-scheduler-tls")["data"] == secret["data"]
        (webhook_after,) = kube.get_mutating_webhook_configuration("hami-webhook")["webhooks"]
        assert webhook_after["clientConfig"].get("caBundle") == webhook["clientConfig"]["caBundle"]
    finally:
        if stand_in is not None:
            stand_in.stop()
        for sandbox in sandboxes:
            sandbox.stop()

    # Every process ran as its pod's service account under the chart's RBAC and needed nothing more.
    if cluster.control_plane == "real":
        for sandbox in sandboxes:
            for log in sandbox.root.glob("*.log"):
                assert "forbidden" not in log.read_text(errors="replace"), f"{log}: a request was refused"
    else:
        assert cluster.api_server.rbac_denials == []
    # ... and that RBAC is enforced: the device plugins' account may not read Secrets.
    plugin_config = service_account_kubeconfig(
        cluster, NAMESPACE, "hami-device-plugin", tmp_path / "plugin-kubeconfig"
    )
    with RealKubeClient(kubeconfig=plugin_config) as plugin_kube, pytest.raises(KubeError, match="forbidden"):
        plugin_kube.get_secret(NAMESPACE, "hami-scheduler-tls")

    # The garbage collector's part: pods the Deployment created go with it (no kubelet confirms).
    api.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/hami-scheduler-0", {"gracePeriodSeconds": 0})
    assert release_objects(api, RELEASE)
    helm(home, "uninstall", RELEASE, "-n", NAMESPACE, *kubeconfig)
    assert release_objects(api, RELEASE) == []
