"""The whole pipeline on the emulator and on a real control plane, with the same test bodies.

``HamiStack`` deploys hami as the chart does: ``hami scheduler`` (extender and webhook over HTTPS) as a
process, a MutatingWebhookConfiguration with its ``caBundle``, a KubeSchedulerConfiguration whose
extender filters and binds, and a device-plugin process per node registering with the simulated
kubelet. A pod goes API server -> webhook -> kube-scheduler -> extender filter/bind -> kubelet ->
device plugin ``Allocate``. On the real back end every hop but the kubelet is the real component.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from hami_core import codec
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.fleet import Fleet
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.stack import HamiStack

pytestmark = pytest.mark.slow

GPU = "mock.hami.io/gpu"
MEM = "mock.hami.io/gpumem"
CORES = "mock.hami.io/gpucores"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, control_plane: ControlPlaneKind) -> Iterator[HamiStack]:
    workdir = tmp_path_factory.mktemp("pipe", numbered=True)
    document = {"version": "v1", "backends": {"mock": {"enabled": True}}}
    with HamiStack(document, Fleet.of_size(2), workdir, control_plane=control_plane) as running:
        yield running


@pytest.fixture(scope="module")
def core(stack: HamiStack) -> Iterator[kubernetes.client.CoreV1Api]:
    with kubernetes.config.new_client_from_config(str(stack.cluster.kubeconfig)) as api:
        yield kubernetes.client.CoreV1Api(api)


@pytest.fixture
def namespace(core: kubernetes.client.CoreV1Api) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def pod(name: str, limits: dict[str, str]) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "resources": {"limits": limits}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def wait_pod(stack: HamiStack, namespace: str, name: str, done: Any, what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        current = stack.kube.get_pod(namespace, name)
        if done(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{namespace}/{name} not {what} after {timeout}s: {current.get('status')}")
        time.sleep(0.2)


def wait_quota_known(stack: HamiStack, namespace: str, timeout: float = 60.0) -> None:
    """Until the scheduler's metrics show a quota limit for ``namespace`` (quotas are re-read every 15 s)."""
    deadline = time.monotonic() + timeout
    needle = f'hami_resource_quota_limit{{namespace="{namespace}"'
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5) as reply:
            if needle in reply.read().decode():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the scheduler did not pick up the quota of {namespace} in {timeout}s")
        time.sleep(0.5)


def running(current: Any) -> bool:
    return bool((current.get("status") or {}).get("phase") == "Running")


def unschedulable(current: Any) -> bool:
    return any(
        c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        for c in (current.get("status") or {}).get("conditions") or []
    )


def test_a_shared_gpu_pod_goes_through_webhook_scheduler_extender_and_allocate(
    stack: HamiStack, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_pod(namespace, pod("shared", {MEM: "4096", CORES: "30"}))
    assert created.spec.scheduler_name == "hami-scheduler"
    assert created.spec.containers[0].resources.limits == {MEM: "4096", CORES: "30", GPU: "1"}
    placed = wait_pod(stack, namespace, "shared", running, "Running")
    annotations = placed["metadata"]["annotations"]
    assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
    assert placed["spec"]["nodeName"] in stack.cluster.node_names
    envs = json.loads(annotations[ALLOCATIONS_ANNOTATION])["main"]["envs"]
    assert envs["CUDA_DEVICE_MEMORY_LIMIT_0"] == "4096m"
    assert envs["CUDA_DEVICE_SM_LIMIT"] == "30"
    node = stack.kube.get_node(placed["spec"]["nodeName"])
    assert codec.NODE_LOCK not in (node["metadata"].get("annotations") or {})


def test_a_request_no_device_can_hold_stays_pending_as_unschedulable(
    stack: HamiStack, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod("huge", {GPU: "1", MEM: "40000"}))
    waiting = wait_pod(stack, namespace, "huge", unschedulable, "Unschedulable")
    assert not waiting["spec"].get("nodeName")


def test_the_webhook_refusal_reaches_the_client_with_its_message(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod(namespace, pod("bad", {GPU: "1", MEM: "-100"}))
    assert refused.value.status == 400
    assert 'admission webhook \\"vgpu.hami.io\\" denied the request' in str(refused.value.body)
    assert "mock.hami.io/gpumem must not be negative, got -100" in str(refused.value.body)


def test_a_namespace_quota_on_device_memory_refuses_the_pod_that_would_exceed_it(
    stack: HamiStack, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    quota = {"metadata": {"name": "gpu"}, "spec": {"hard": {f"limits.{MEM}": "6000"}}}
    core.create_namespaced_resource_quota(namespace, quota)
    wait_quota_known(stack, namespace)
    core.create_namespaced_pod(namespace, pod("first", {GPU: "1", MEM: "4096"}))
    wait_pod(stack, namespace, "first", running, "Running")
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod(namespace, pod("second", {GPU: "1", MEM: "4096"}))
    assert refused.value.status == 403
    assert "exceeding resource quota" in str(refused.value.body)
    core.create_namespaced_pod(namespace, pod("small", {GPU: "1", MEM: "1024"}))
    wait_pod(stack, namespace, "small", running, "Running")
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["first", "small"]
