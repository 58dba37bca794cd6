"""The NVIDIA backend end to end on the local cluster, with the fake NVML under real nvidia-ml-py.

One hami stack (scheduler with extender and webhook, one ``hami device-plugin --backend nvidia``
process per GPU node) serves three nodes: an 8 x A100 NVLink node and a 4 x T4 node on the fake
libnvidia-ml.so.1, and ``hami-go``, a node registered the way HAMi's own Go plugin registers one
(the annotation from HAMi's ``Test_GetNodeDevices``) with no plugin of ours on it. Pods are created
through the API server, so they pass the webhook, the kube-scheduler stand-in, the extender's filter
and bind, and the kubelet's Allocate calls into our plugin. The tests share the stack and run in
file order; each uses its own pods.

It uses the core's process stack (``localcluster``), not the kit's in-process ``hami_cluster``
(``test_pipeline.py``), because what it tests is the deployment: a device-plugin process per node,
each on its own fake NVML preset, a node no plugin of ours serves, a kubelet restart and a plugin
killed mid-``Allocate``; nothing public starts or kills those processes.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hami_backend_nvidia import resources

from hami_core.kube.client import KubeClient
from hami_core.localcluster.fleet import load_fleet
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from hami_core.localcluster.stack import HamiStack
from hami_core.sdk import BIND_PHASE
from hami_core.sdk import BIND_PHASE_FAILED
from hami_core.sdk import BIND_PHASE_SUCCESS
from hami_core.sdk import NODE_LOCK
from hami_core.sdk import VGPU_NODE
from hami_core.sdk import decode_node_devices
from hami_core.sdk import decode_pod_devices
from hami_core.testing import make_container
from hami_core.testing import make_pod
from plugins.nvidia.tests.conftest import LIBRARY
from plugins.nvidia.tests.conftest import PRESETS
from plugins.nvidia.tests.conftest import eventually

pytestmark = pytest.mark.slow

GPU = "nvidia.com/gpu"
MEM = "nvidia.com/gpumem"
PCT = "nvidia.com/gpumem-percentage"
CORES = "nvidia.com/gpucores"
PRIORITY = "nvidia.com/priority"
#: HAMi's ``Test_GetNodeDevices`` register annotation (pkg/device/nvidia/device_test.go), verbatim.
HAMI_GO_REGISTER = '[{"id":"GPU-0","count":5,"devmem":8192,"devcore":100,"type":"NVIDIA-Tesla P4","numa":0,"health":true,"index":0}]'
#: Keeps the test pods off the node no plugin of ours serves (its kubelet has nobody to call).
NOT_THE_GO_NODE = {resources.NOUSE_GPUTYPE: "P4"}
CONFIG = {"version": "v1", "backends": {"nvidia": {"enabled": True}}}


def _fake_env(preset: str, node: str) -> dict[str, str]:
    return {
        "LD_LIBRARY_PATH": str(LIBRARY.parent),
        "FAKE_NVML_CONFIG": str(PRESETS / f"{preset}.json"),
        "FAKE_NVML_EVENTS": f"{{workdir}}/{node}.xid",
        "HOOK_PATH": f"{{workdir}}/hook/{node}",
        "ENABLE_TOPOLOGY_SCORE": "true",
    }


FLEET = {
    "nodes": [
        {"name": "gpu-a100", "backends": ["nvidia"], "env": _fake_env("a100-8-nvlink", "gpu-a100")},
        {"name": "gpu-t4", "backends": ["nvidia"], "env": _fake_env("t4-4", "gpu-t4")},
        {
            "name": "hami-go",
            "backends": [],
            "annotations": {resources.KEYS.register: HAMI_GO_REGISTER},
            "resources": {GPU: "5"},
        },
    ]
}


@pytest.fixture(scope="module")
def stack(fake_library: object) -> Iterator[HamiStack]:
    workdir = Path(tempfile.mkdtemp(prefix="hn"))
    try:
        with HamiStack(CONFIG, load_fleet(FLEET), workdir) as running:
            yield running
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _create(kube: KubeClient, name: str, **kwargs: Any) -> None:
    annotations = {**NOT_THE_GO_NODE, **kwargs.pop("annotations", {})}
    kube.create_pod("default", make_pod(name, annotations=annotations, **kwargs))


def _pod(kube: KubeClient, name: str) -> dict[str, Any]:
    return dict(kube.get_pod("default", name))


def _running(kube: KubeClient, *names: str) -> None:
    for name in names:
        eventually(
            lambda name=name: _pod(kube, name)["status"].get("phase") == "Running",  # type: ignore[misc]
            timeout=60,
            what=f"{name} Running",
        )


def _no_lock_on(kube: KubeClient, *nodes: str) -> bool:
    return all(
        NODE_LOCK not in (kube.get_node(node)["metadata"].get("annotations") or {}) for node in nodes
    )


def _allocations(kube: KubeClient, name: str) -> dict[str, Any]:
    return dict(json.loads(_pod(kube, name)["metadata"]["annotations"][ALLOCATIONS_ANNOTATION]))


def _assigned(kube: KubeClient, name: str) -> list[list[tuple[str, int, int]]]:
    value = _pod(kube, name)["metadata"]["annotations"][resources.KEYS.allocated]
    return [[(d.uuid, d.usedmem, d.usedcores) for d in entry] for entry in decode_pod_devices(value)]


def _limits(kube: KubeClient, name: str, container: int = 0) -> dict[str, str]:
    return dict(_pod(kube, name)["spec"]["containers"][container]["resources"]["limits"])


def _check_container(
    record: dict[str, Any], devices: list[tuple[str, int, int]], hook: Path, uid: str, name: str
) -> None:
    """The env and mounts of hami-wire.md 5.4 for one container given ``devices``."""
    envs = record["envs"]
    cache = envs.pop("CUDA_DEVICE_MEMORY_SHARED_CACHE")
    assert cache.startswith(f"{hook}/vgpu/")
    assert cache.endswith(".cache")
    expected = {"NVIDIA_VISIBLE_DEVICES": ",".join(dict.fromkeys(uuid for uuid, _, _ in devices))}
    expected.update({f"CUDA_DEVICE_MEMORY_LIMIT_{i}": f"{mem}m" for i, (_, mem, _) in enumerate(devices)})
    expected["CUDA_DEVICE_SM_LIMIT"] = str(devices[0][2])
    expected["LIBCUDA_LOG_LEVEL"] = "1"
    assert envs == expected
    mounts = {mount["containerPath"]: (mount["hostPath"], mount["readOnly"]) for mount in record["mounts"]}
    assert mounts == {
        f"{hook}/vgpu/libvgpu.so": (f"{hook}/vgpu/libvgpu.so", True),
        f"{hook}/vgpu": (f"{hook}/vgpu/containers/{uid}_{name}", False),
        "/tmp/vgpulock": ("/tmp/vgpulock", False),
        "/etc/ld.so.preload": (f"{hook}/vgpu/ld.so.preload", True),
    }


def test_every_request_form_runs_with_hamis_env_and_mounts(stack: HamiStack) -> None:
    kube = stack.kube
    _create(
        kube, "whole", containers=[make_container(limits={GPU: 1})], annotations={resources.USE_GPUTYPE: "T4"}
    )
    _create(kube, "share-mem", containers=[make_container(limits={GPU: 1, MEM: 3000, CORES: 30})])
    _create(kube, "share-pct", containers=[make_container(limits={GPU: 1, PCT: 50})])
    _create(kube, "mem-only", containers=[make_container(limits={MEM: 2048})])
    _create(
        kube,
        "multi",
        containers=[
            make_container("a", limits={GPU: 2, MEM: 1024, PRIORITY: 0}),
            make_container("sidecar"),
            make_container("b", limits={GPU: 1, PCT: 25, CORES: 10}),
        ],
    )
    _create(
        kube,
        "init",
        init_containers=[make_container("setup", limits={GPU: 1, MEM: 2048})],
        containers=[make_container("main", limits={GPU: 1, MEM: 4096, CORES: 50})],
    )
    names = ["whole", "share-mem", "share-pct", "mem-only", "multi", "init"]
    _running(kube, *names)

    # Admission: the exclusive-core default, defaultGPUNum, and the priority env.
    assert _limits(kube, "whole")[CORES] == "100"
    assert _limits(kube, "mem-only")[GPU] == "1"
    multi_env = {e["name"]: e["value"] for e in _pod(kube, "multi")["spec"]["containers"][0]["env"]}
    assert multi_env["CUDA_TASK_PRIORITY"] == "0"

    for name in names:
        pod = _pod(kube, name)
        annotations = pod["metadata"]["annotations"]
        assert annotations[BIND_PHASE] == BIND_PHASE_SUCCESS, name
        assert annotations[resources.KEYS.to_allocate].strip(";") == "", name  # every entry consumed
        node = pod["spec"]["nodeName"]
        assert node in ("gpu-a100", "gpu-t4"), name
        hook = stack.workdir / "hook" / node
        containers = [
            c["name"] for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]
        ]
        assigned = dict(zip(containers, _assigned(kube, name), strict=False))
        records = _allocations(kube, name)
        assert set(records) == {c for c in containers if assigned.get(c)}, name
        for container, record in records.items():
            _check_container(record, assigned[container], hook, pod["metadata"]["uid"], container)

    (whole,) = _assigned(kube, "whole")[0]
    assert whole[1:] == (15360, 100)  # a whole T4
    (pct,) = _assigned(kube, "share-pct")[0]
    assert pct[1] in (15360 // 2, 81920 // 2)
    assert [len(entry) for entry in _assigned(kube, "multi")] == [2, 0, 1, 0]
    assert [len(entry) for entry in _assigned(kube, "init")] == [1, 1, 0]
    eventually(lambda: _no_lock_on(kube, "gpu-a100", "gpu-t4"), timeout=10, what="node locks released")


def test_topology_aware_pairs_come_from_one_nvlink_island(stack: HamiStack) -> None:
    kube = stack.kube
    scores = kube.get_node("gpu-a100")["metadata"]["annotations"][resources.NODE_SCORE]
    assert '"score":{' in scores
    _create(
        kube,
        "pair",
        containers=[make_container(limits={GPU: 2, MEM: 1000})],
        annotations={resources.USE_GPUTYPE: "A100", "hami.io/gpu-scheduler-policy": "topology-aware"},
    )
    _running(kube, "pair")
    preset = json.loads((PRESETS / "a100-8-nvlink.json").read_text())
    island = {d["uuid"]: i // 4 for i, d in enumerate(preset["devices"])}
    ((first, _, _), (second, _, _)) = _assigned(kube, "pair")[0]
    assert island[first] == island[second]


def test_a_node_registered_by_hamis_go_plugin_schedules_under_our_scheduler(stack: HamiStack) -> None:
    kube = stack.kube
    kube.create_pod(
        "default",
        make_pod(
            "on-go-node",
            annotations={resources.USE_GPUTYPE: "P4"},
            containers=[make_container(limits={GPU: 1, MEM: 1000, CORES: 20})],
        ),
    )
    eventually(
        lambda: _pod(kube, "on-go-node")["spec"].get("nodeName") == "hami-go", timeout=60, what="bound"
    )
    annotations = _pod(kube, "on-go-node")["metadata"]["annotations"]
    assert annotations[VGPU_NODE] == "hami-go"
    assert annotations[resources.KEYS.allocated] == "GPU-0,NVIDIA,1000,20:;"
    assert annotations[resources.KEYS.to_allocate] == annotations[resources.KEYS.allocated]


def test_an_injected_xid_marks_that_gpu_unhealthy_and_the_scheduler_avoids_it(stack: HamiStack) -> None:
    kube = stack.kube
    preset = json.loads((PRESETS / "t4-4.json").read_text())
    sick = preset["devices"][3]["uuid"]
    with (stack.workdir / "gpu-t4.xid").open("a") as events:
        events.write(f"{sick} 79\n")

    def unhealthy_in_annotation() -> bool:
        devices = decode_node_devices(
            kube.get_node("gpu-t4")["metadata"]["annotations"][resources.KEYS.register]
        )
        return any(d.id == sick and not d.health for d in devices)

    try:
        eventually(
            unhealthy_in_annotation, timeout=30, what="the register annotation marks the GPU unhealthy"
        )
    except AssertionError as err:
        log = stack.log_path(stack.device_plugin_name("gpu-t4", "nvidia")).read_text()[-3000:]
        raise AssertionError(f"{err}; plugin log:\n{log}") from err
    eventually(
        lambda: kube.get_node("gpu-t4")["status"]["allocatable"].get(GPU) == "30",
        timeout=30,
        what="the kubelet drops the GPU's 10 slots",
    )
    _create(
        kube,
        "wants-sick",
        containers=[make_container(limits={GPU: 1, MEM: 100})],
        annotations={resources.USE_GPUUUID: sick},
    )
    eventually(
        lambda: "CardNotHealth" in json.dumps(_pod(kube, "wants-sick")["status"].get("conditions") or []),
        timeout=60,
        what="the pod asking only that GPU is unschedulable with CardNotHealth",
    )
    for index in range(3):
        _create(
            kube,
            f"t4-after-xid-{index}",
            containers=[make_container(limits={GPU: 1, MEM: 100, CORES: 1})],
            annotations={resources.USE_GPUTYPE: "T4"},
        )
    _running(kube, *(f"t4-after-xid-{index}" for index in range(3)))
    for index in range(3):
        assert sick not in json.dumps(_assigned(kube, f"t4-after-xid-{index}"))


def test_a_kubelet_restart_makes_the_plugin_register_again(stack: HamiStack) -> None:
    kube = stack.kube
    kubelet = stack.cluster.kubelets["gpu-a100"]
    kubelet.restart()
    eventually(lambda: kubelet.registered_resources() == [GPU], timeout=30, what="the plugin registers again")
    _create(
        kube,
        "after-restart",
        containers=[make_container(limits={GPU: 1, MEM: 500})],
        annotations={resources.USE_GPUTYPE: "A100"},
    )
    _running(kube, "after-restart")
    assert (
        _pod(kube, "after-restart")["metadata"]["annotations"][BIND_PHASE] == BIND_PHASE_SUCCESS
    )


def test_a_plugin_killed_mid_allocation_fails_the_pod_and_its_lock_is_released(stack: HamiStack) -> None:
    kube = stack.kube
    process = stack.device_plugin_process("gpu-a100", "nvidia")
    process.send_signal(signal.SIGSTOP)  # Allocate will hang in the plugin ...
    try:
        _create(
            kube,
            "victim",
            containers=[make_container(limits={GPU: 1, MEM: 500})],
            annotations={resources.USE_GPUTYPE: "A100"},
        )
        eventually(
            lambda: _pod(kube, "victim")["spec"].get("nodeName") == "gpu-a100", timeout=60, what="bound"
        )
        assert not _no_lock_on(kube, "gpu-a100")  # bind took the node lock; the allocation is in flight
    finally:
        process.kill()  # ... and the plugin dies in the middle of it
        process.wait()
    eventually(lambda: _pod(kube, "victim")["status"].get("phase") == "Failed", timeout=60, what="pod failed")
    assert _pod(kube, "victim")["status"]["reason"] == "UnexpectedAdmissionError"
    stack.start_device_plugin("gpu-a100", "nvidia")
    eventually(
        lambda: _no_lock_on(kube, "gpu-a100"), timeout=60, what="the restarted plugin releases the lock"
    )
    assert _pod(kube, "victim")["metadata"]["annotations"][BIND_PHASE] == BIND_PHASE_FAILED
    _create(
        kube,
        "after-crash",
        containers=[make_container(limits={GPU: 1, MEM: 500})],
        annotations={resources.USE_GPUTYPE: "A100"},
    )
    _running(kube, "after-crash")
