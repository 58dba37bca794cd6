"""A mixed fleet on the local cluster: Ascend 910B3, Cambricon MLU and Hygon DCU nodes beside mock GPUs.

Every node runs its vendor's device plugin (``hami device-plugin --backend ...`` as its own process,
on the plugin's shipped discovery fake), the scheduler and webhook run as ``hami scheduler``, and the
plugins' README example pods are applied with kubectl. Checked on the API objects: each pod runs on
its vendor's node with HAMi's annotation strings and its vendor's Allocate result; a pod asking two
vendors is left Pending with HAMi's reason; a vNPU template on two NPUs is refused at admission.
(NVIDIA nodes on the fake NVML join this fleet with the NVIDIA backend.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hami_core.localcluster import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.fleet import load_fleet
from hami_core.localcluster.stack import HamiStack
from tests.tools import KUBECTL
from tests.tools import kubectl_binary  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG: dict[str, Any] = {
    "version": "v1",
    "backends": {
        "mock": {"enabled": True, "devices": [{"count": 1, "memory_mib": 16384}]},
        "ascend910b3": {"enabled": True, "fake": "8x910B3", "network_group_size": 4},
        "mlu": {"enabled": True, "fake": "2xMLU370"},
        "dcu": {"enabled": True, "fake": "2xZ100L"},
    },
}
FLEET = {
    "nodes": [
        {"name": "gpu-0", "backends": ["mock"]},
        {"name": "npu-0", "backends": ["ascend910b3"]},
        {"name": "mlu-0", "backends": ["mlu"]},
        {"name": "dcu-0", "backends": ["dcu"]},
    ]
}
TWO_VENDORS = """
apiVersion: v1
kind: Pod
metadata: {name: mlu-and-dcu}
spec:
  containers:
    - {name: mlu, image: busybox, resources: {limits: {cambricon.com/vmlu: 1}}}
    - {name: dcu, image: busybox, resources: {limits: {hygon.com/dcunum: 1}}}
"""
VNPU_ON_TWO = """
apiVersion: v1
kind: Pod
metadata: {name: vnpu-on-two}
spec:
  containers:
    - name: main
      image: busybox
      resources: {limits: {huawei.com/Ascend910B3: 2, huawei.com/Ascend910B3-memory: 16384}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HamiStack]:
    where = Path(tempfile.mkdtemp(prefix="hami-"))  # unix socket paths must stay short
    config = json.loads(json.dumps(CONFIG))
    config["backends"]["dcu"]["vdev_dir"] = str(tmp_path_factory.mktemp("vdev"))
    try:
        with HamiStack(config, load_fleet(FLEET), where, source="mixed-fleet") as running:
            yield running
    finally:
        shutil.rmtree(where, ignore_errors=True)


def kubectl(stack: HamiStack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(stack.cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settled(stack: HamiStack, name: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """The pod once it runs or is reported unschedulable."""
    deadline = time.monotonic() + timeout
    while True:
        pod = dict(stack.kube.get_pod("default", name))
        conditions = pod.get("status", {}).get("conditions") or []
        if pod.get("status", {}).get("phase") == "Running" or any(
            c.get("reason") == "Unschedulable" for c in conditions
        ):
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} did not settle: {pod.get('status')}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def applied(stack: HamiStack, request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    request.getfixturevalue("kubectl_binary")  # fails with the remedy when kubectl is missing
    manifests = ["ascend-vnpu.yaml", "mlu-share.yaml", "dcu-share.yaml", "memory-only.yaml"]
    for manifest in manifests:
        done = kubectl(stack, "apply", "-f", str(EXAMPLES / manifest))
        assert done.returncode == 0, done.stderr
    done = kubectl(stack, "apply", "-f", "-", stdin=TWO_VENDORS)
    assert done.returncode == 0, done.stderr
    names = ["ascend-vnpu", "mlu-share", "dcu-share", "memory-only", "mlu-and-dcu"]
    return {name: settled(stack, name) for name in names}


def annotations(pod: dict[str, Any]) -> dict[str, str]:
    return dict(pod["metadata"].get("annotations") or {})


def allocation(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(annotations(pod)[ALLOCATIONS_ANNOTATION])["main"])


def test_every_pod_runs_on_its_vendors_node(applied: dict[str, dict[str, Any]]) -> None:
    placed = {name: pod["spec"].get("nodeName") for name, pod in applied.items() if name != "mlu-and-dcu"}
    assert placed == {
        "ascend-vnpu": "npu-0",
        "mlu-share": "mlu-0",
        "dcu-share": "dcu-0",
        "memory-only": "gpu-0",
    }
    for name in placed:
        assert applied[name]["status"]["phase"] == "Running"
        assert annotations(applied[name])["hami.io/bind-phase"] == "success"


def test_ascend_pod_gets_a_vnpu_and_hamis_annotations(applied: dict[str, dict[str, Any]]) -> None:
    pod = applied["ascend-vnpu"]
    seen = annotations(pod)
    (entry,) = [e for e in seen["hami.io/Ascend910B3-devices-allocated"].split(";") if e]
    uuid, kind, memory, cores = entry.rstrip(":").split(",")
    assert (kind, memory, cores) == ("Ascend910B3", "16384", "0")
    assert seen["huawei.com/Ascend910B3"] == f'[{{"UUID":"{uuid}","temp":"vir05_1c_16g","memory":16384}}]'
    assert seen["predicate-time"].isdigit()
    # The webhook rounded 12000 MiB up to the template.
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["huawei.com/Ascend910B3-memory"] == "16384"
    logic = int(uuid.rsplit("-", 1)[1])
    assert allocation(pod)["envs"] == {"ASCEND_VISIBLE_DEVICES": str(100 + 16 * logic)}


def test_mlu_device_plugin_removes_the_dsmlu_lock_the_bind_set(
    applied: dict[str, dict[str, Any]], stack: HamiStack
) -> None:
    assert applied["mlu-share"]["status"]["phase"] == "Running"
    annotations_now = stack.kube.get_node("mlu-0")["metadata"].get("annotations") or {}
    assert "cambricon.com/dsmlu.lock" not in annotations_now
    assert "hami.io/mutex.lock" not in annotations_now


def test_mlu_pod_gets_the_dsmlu_annotations_and_split_env(applied: dict[str, dict[str, Any]]) -> None:
    seen = annotations(applied["mlu-share"])
    value = seen["hami.io/cambricon-mlu-devices-allocated"]
    # The device plugin consumed the container's entry of the to-allocate copy.
    assert seen["hami.io/cambricon-mlu-devices-to-allocate"] == ";;"
    (entry,) = [e for e in value.split(";") if e]
    uuid, kind, memory, cores = entry.rstrip(":").split(",")
    index = uuid.rsplit("-", 1)[1]
    assert (kind, memory, cores) == ("MLU", "2048", "25")
    assert seen["CAMBRICON_DSMLU_ASSIGNED"] == "false"
    assert seen["CAMBRICON_DSMLU_PROFILE"] == f"{index}_25_8"
    assert allocation(applied["mlu-share"])["envs"] == {
        "CAMBRICON_SPLIT_ENABLE": "1",
        "CAMBRICON_SPLIT_VISIBLE_DEVICES": index,
        "CAMBRICON_SPLIT_MEMS": "2048",
    }


def test_dcu_pod_gets_a_virtual_dcu(applied: dict[str, dict[str, Any]]) -> None:
    seen = annotations(applied["dcu-share"])
    value = seen["hami.io/dcu-devices-allocated"]
    assert value in ("DCU-0,DCU,2000,60:;", "DCU-1,DCU,2000,60:;")
    card = value.split(",")[0].removeprefix("DCU-")
    record = allocation(applied["dcu-share"])
    paths = [device["containerPath"] for device in record["devices"]]
    assert paths == ["/dev/kfd", "/dev/mkfd", f"/dev/dri/card{card}", f"/dev/dri/renderD{128 + int(card)}"]
    (vdev_mount,) = [m for m in record["mounts"] if m["containerPath"] == "/etc/vdev/docker/"]
    assert not vdev_mount["readOnly"]
    host = Path(vdev_mount["hostPath"])
    conf = (host / "vdev0.conf").read_text()
    assert "mem: 2000 MiB\n" in conf
    assert "cu_count: 36\n" in conf


def test_a_pod_asking_two_vendors_needs_one_node_with_both(applied: dict[str, dict[str, Any]]) -> None:
    pod = applied["mlu-and-dcu"]
    assert pod["status"]["phase"] == "Pending"
    (condition,) = [c for c in pod["status"]["conditions"] if c.get("type") == "PodScheduled"]
    assert "NodeInsufficientDevice" in condition["message"]


@pytest.mark.usefixtures("kubectl_binary")
def test_a_vnpu_template_on_two_npus_is_refused_at_admission(stack: HamiStack) -> None:
    done = kubectl(stack, "apply", "-f", "-", stdin=VNPU_ON_TWO)
    assert done.returncode != 0
    assert "vNPU not supported for multiple devices" in done.stderr
    assert "whole NPUs" in done.stderr
