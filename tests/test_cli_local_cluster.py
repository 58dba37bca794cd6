"""``hami local-cluster up``: the embedded cluster as a process that kubectl can talk to.

Each test runs on both back ends (the ``control_plane`` fixture): the emulator, and ``--real`` (etcd,
kube-apiserver and kube-scheduler from ``make kube``), where the pod goes through the real API
server's webhook call and the real kube-scheduler's extender calls.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hami_core import codec
from hami_core.localcluster.controlplane import ControlPlaneKind
from hami_core.localcluster.kubelet import ALLOCATIONS_ANNOTATION
from tests.tools import KUBECTL
from tests.tools import kubectl_binary  # noqa: F401 (a fixture)


@pytest.mark.usefixtures("kubectl_binary")
def test_local_cluster_up_serves_kubectl_and_stops_on_sigterm(
    tmp_path: Path, control_plane: ControlPlaneKind
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hlc"))
    proc = subprocess.Popen(
        [
            *[sys.executable, "-m", "hami_core", "local-cluster", "up", "--nodes", "2"],
            *(["--real"] if control_plane == "real" else []),
            *["--workdir", str(workdir)],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        kubectl_line = proc.stdout.readline().split()
        scheme = "https" if control_plane == "real" else "http"
        assert banner.startswith(f"API server {scheme}://127.0.0.1:"), banner
        assert kubectl_line[:2] == ["kubectl", "--kubeconfig"]
        kubeconfig = kubectl_line[2]
        env = {**os.environ, "HOME": str(tmp_path)}
        nodes = subprocess.run(
            [str(KUBECTL), "--kubeconfig", kubeconfig, "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        ).stdout.split()
        assert nodes == ["node/node-0", "node/node-1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    sockets = list(workdir.glob("*/kubelet.sock"))
    shutil.rmtree(workdir)
    assert proc.returncode == 0, err
    assert not sockets, "kubelet sockets are removed on stop"


@pytest.mark.slow
@pytest.mark.usefixtures("kubectl_binary")
def test_local_cluster_up_with_hami_runs_a_shared_gpu_pod_applied_with_kubectl(
    tmp_path: Path, control_plane: ControlPlaneKind
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hlc"))
    proc = subprocess.Popen(
        [
            *[sys.executable, "-m", "hami_core", "local-cluster", "up", "--hami", "--nodes", "1"],
            *(["--real"] if control_plane == "real" else []),
            *["--workdir", str(workdir)],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("hami scheduler https://127.0.0.1:")
        proc.stdout.readline()
        kubeconfig = proc.stdout.readline().split()[2]

        def kubectl(*args: str) -> str:
            return subprocess.run(
                [str(KUBECTL), "--kubeconfig", kubeconfig, *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=90,
                check=True,
            ).stdout

        key = workdir / "tls" / "tls.key"
        assert (key.stat().st_mode & 0o777, key.parent.stat().st_mode & 0o777) == (0o600, 0o700)
        kubectl("apply", "-f", str(Path(__file__).resolve().parents[1] / "examples" / "share-by-memory.yaml"))
        kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/share-by-memory", "--timeout=60s")
        annotations = json.loads(kubectl("get", "pod", "share-by-memory", "-o", "json"))["metadata"][
            "annotations"
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        shutil.rmtree(workdir)
    assert proc.returncode == 0, err
    assert annotations[codec.BIND_PHASE] == codec.BIND_PHASE_SUCCESS
    allocations = json.loads(annotations[ALLOCATIONS_ANNOTATION])
    assert allocations["main"]["envs"]["CUDA_DEVICE_MEMORY_LIMIT_0"] == "4096m"
