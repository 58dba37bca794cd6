"""kubectl (the real binary, from `make tools`) against the API server emulator and a real kube-apiserver.

Covers what specs/kube-wire.md section 1.3 and the local-cluster issue ask of it: get, describe,
client-side apply of a new and of a changed manifest (without --validate=false), patch of every
type, annotate, delete and ``get -w``; every test runs on both back ends (``tests.backends``).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from hami_core.kube.client import RealKubeClient
from hami_core.localcluster import ApiServer
from hami_core.localcluster.controlplane import ControlPlane
from hami_core.localcluster.controlplane import ControlPlaneKind
from tests.tools import KUBECTL
from tests.tools import kubectl_binary  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("kubectl_binary")

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
  annotations: {{team: a}}
spec:
  containers:
  - name: main
    image: busybox:1.36
    env:
    - {{name: A, value: "1"}}
    - {{name: B, value: "2"}}
  - name: side
    image: busybox:1.36
"""


@attrs.frozen
class Kubectl:
    """Runs kubectl with a private HOME, cache and kubeconfig."""

    kubeconfig: Path
    home: Path
    control_plane: ControlPlaneKind

    def command(self, *args: str) -> list[str]:
        cache = str(self.home / "cache")
        return [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "--cache-dir", cache, *args]

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": os.environ.get("PATH", "")}

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, kind: str, name: str, namespace: str = "") -> None:
        """Create a bare object with ``kubectl apply`` (``kubectl create <kind>`` sends protobuf)."""
        api_version = "v1"
        meta = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
        self("apply", "-f", "-", stdin=f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n{meta}")

    def bind(self, pod: str, node: str) -> None:
        """Bind a pod through the API, as a scheduler does."""
        with RealKubeClient(kubeconfig=self.kubeconfig) as kube:
            kube.bind_pod("default", pod, node)


def user_annotations(obj: dict[str, Any]) -> dict[str, str]:
    """Annotations other than the one ``kubectl apply`` keeps for itself."""
    annotations: dict[str, str] = obj["metadata"].get("annotations", {})
    return {k: v for k, v in annotations.items() if k != "kubectl.kubernetes.io/last-applied-configuration"}


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory, control_plane: ControlPlaneKind) -> Iterator[Kubectl]:
    home = tmp_path_factory.mktemp("kubectl-home")
    if control_plane == "real":
        with ControlPlane(home / "real") as real:
            yield Kubectl(real.kubeconfig, home, control_plane)
        return
    with ApiServer() as server:
        yield Kubectl(server.write_kubeconfig(home / "kubeconfig"), home, control_plane)


def test_get_lists_pods_and_nodes(kubectl: Kubectl) -> None:
    kubectl.apply("Namespace", "get-ns")
    assert "No resources found in get-ns namespace." in kubectl("get", "pods", "-n", "get-ns").stderr
    kubectl("apply", "-n", "get-ns", "-f", "-", stdin=POD.format(name="p1"))
    header, row = kubectl("get", "pods", "-n", "get-ns").stdout.splitlines()
    assert header.split()[0] == "NAME"
    assert row.split()[0] == "p1"
    names = kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system", "get-ns"} <= set(names)


def test_apply_of_a_changed_manifest_merges_strategically(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=POD.format(name="applied"))
    kubectl("annotate", "pod", "applied", "set-by=server")
    # A pod's spec is immutable but for images (and a few other fields), on both back ends.
    changed = (
        POD.format(name="applied")
        .replace("  - name: side\n    image: busybox:1.36", "  - name: side\n    image: busybox:1.37")
        .replace("annotations: {team: a}", "annotations: {team: b}")
    )
    done = kubectl("apply", "-f", "-", stdin=changed)
    assert done.stdout.strip() == "pod/applied configured"
    assert "warning" not in done.stderr.lower()
    pod = kubectl.json("get", "pod", "applied")
    main, side = pod["spec"]["containers"]
    assert [(e["name"], e["value"]) for e in main["env"]] == [("A", "1"), ("B", "2")]
    assert (main["image"], side["name"], side["image"]) == ("busybox:1.36", "side", "busybox:1.37")
    annotations = pod["metadata"]["annotations"]
    assert (annotations["team"], annotations["set-by"]) == ("b", "server")
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations
    version = pod["metadata"]["resourceVersion"]
    assert kubectl("apply", "-f", "-", stdin=changed).stdout.strip() == "pod/applied unchanged"
    assert kubectl.json("get", "pod", "applied")["metadata"]["resourceVersion"] == version


def test_apply_that_changes_a_pods_containers_is_refused(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=POD.format(name="reordered"))
    swapped = POD.format(name="reordered").replace("  - name: side\n    image: busybox:1.36\n", "")
    swapped = swapped.replace("  containers:\n", "  containers:\n  - name: first\n    image: alpine\n")
    done = kubectl("apply", "-f", "-", stdin=swapped, check=False)
    assert done.returncode != 0
    assert 'The Pod "reordered" is invalid: spec: Forbidden: pod updates may not change fields' in done.stderr
    names = [c["name"] for c in kubectl.json("get", "pod", "reordered")["spec"]["containers"]]
    assert names == ["main", "side"]


@pytest.mark.parametrize(
    ("patch_type", "patch", "path", "expected"),
    [
        pytest.param(
            "strategic",
            '{"spec":{"containers":[{"name":"side","image":"alpine"}]}}',
            "{.spec.containers[1].image}",
            "alpine",
            id="strategic",
        ),
        pytest.param(
            "merge",
            '{"metadata":{"labels":{"app":null,"tier":"x"}}}',
            "{.metadata.labels}",
            '{"tier":"x"}',
            id="merge",
        ),
        pytest.param(
            "json",
            '[{"op":"replace","path":"/metadata/labels/app","value":"db"}]',
            "{.metadata.labels.app}",
            "db",
            id="json",
        ),
    ],
)
def test_patch_by_type(kubectl: Kubectl, patch_type: str, patch: str, path: str, expected: str) -> None:
    name = f"patched-{patch_type}"
    kubectl("apply", "-f", "-", stdin=POD.format(name=name))
    assert (
        kubectl("patch", "pod", name, "--type", patch_type, "-p", patch).stdout.strip()
        == f"pod/{name} patched"
    )
    assert kubectl("get", "pod", name, "-o", f"jsonpath={path}").stdout == expected


def test_a_failing_json_patch_test_is_reported(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=POD.format(name="tested"))
    patch = '[{"op":"test","path":"/metadata/labels/app","value":"db"}]'
    done = kubectl("patch", "pod", "tested", "--type", "json", "-p", patch, check=False)
    assert done.returncode != 0
    # kube-apiserver says no more than this (422 Invalid), and so does the emulator.
    assert (
        "The request is invalid: the server rejected our request due to an error in our request"
        in done.stderr
    )


def test_annotate_sets_overwrites_and_removes(kubectl: Kubectl) -> None:
    kubectl.apply("ConfigMap", "annotated")
    kubectl("annotate", "configmap", "annotated", "a=1")
    refused = kubectl("annotate", "configmap", "annotated", "a=2", check=False)
    assert "--overwrite is false" in refused.stderr
    kubectl("annotate", "--overwrite", "configmap", "annotated", "a=2", "b=3")
    kubectl("annotate", "configmap", "annotated", "b-")
    assert user_annotations(kubectl.json("get", "configmap", "annotated")) == {"a": "2"}


def test_annotate_with_a_stale_resource_version_conflicts(kubectl: Kubectl) -> None:
    kubectl.apply("ConfigMap", "versioned")
    done = kubectl("annotate", "configmap", "versioned", "a=1", "--resource-version=1", check=False)
    assert done.returncode != 0
    assert "the object has been modified" in done.stderr


def test_annotate_and_label_nodes(kubectl: Kubectl) -> None:
    kubectl.apply("Node", "node-a")
    kubectl("annotate", "node", "node-a", "hami/lock=x")
    kubectl("label", "node", "node-a", "gpu=on")
    node = kubectl.json("get", "node", "node-a")
    assert user_annotations(node) == {"hami/lock": "x"}
    assert node["metadata"]["labels"] == {"gpu": "on"}
    assert kubectl("get", "nodes", "-l", "gpu=on", "-o", "name").stdout.strip() == "node/node-a"


def test_describe_pod_and_node(kubectl: Kubectl) -> None:
    kubectl.apply("Node", "node-d")
    kubectl("apply", "-f", "-", stdin=POD.format(name="described"))
    kubectl.bind("described", "node-d")
    pod_text = kubectl("describe", "pod", "described").stdout
    assert "Name:         described" in pod_text
    assert "Node:         node-d" in pod_text
    assert "PodScheduled   True" in pod_text
    node_text = kubectl("describe", "node", "node-d").stdout
    assert "Name:               node-d" in node_text
    assert "default                     described" in node_text


def test_typed_create_commands_send_protobuf_which_only_the_real_server_reads(kubectl: Kubectl) -> None:
    done = kubectl("create", "namespace", "protobuf", check=False)
    if kubectl.control_plane == "real":
        assert done.stdout.strip() == "namespace/protobuf created", done.stderr
        return
    # The emulator speaks JSON only (docs/local-cluster.md); it says so instead of misreading the body.
    assert done.returncode != 0
    assert "application/vnd.kubernetes.protobuf" in done.stderr


def test_delete_pod_and_node(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=POD.format(name="doomed"))
    kubectl.apply("Node", "node-x")
    assert kubectl("delete", "pod", "doomed").stdout.strip() == 'pod "doomed" deleted'
    assert kubectl("delete", "node", "node-x").stdout.strip() == 'node "node-x" deleted'
    missing = kubectl("get", "pod", "doomed", check=False)
    assert 'pods "doomed" not found' in missing.stderr


def test_get_shows_the_server_side_columns(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin="apiVersion: v1\nkind: Node\nmetadata:\n  name: node-w\n")
    kubectl(
        "patch",
        "node",
        "node-w",
        "--subresource=status",
        "-p",
        '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    )
    kubectl("apply", "-f", "-", stdin=POD.format(name="wide"))
    kubectl.bind("wide", "node-w")
    header, row = kubectl("get", "pod", "wide", "-o", "wide").stdout.splitlines()
    assert header.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:3] == ["wide", "0/2", "Pending"]
    assert row.split()[6] == "node-w"
    nodes = kubectl("get", "node", "node-w").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["node-w", "Ready", "<none>"]


def test_get_watch_prints_changes_as_they_happen(kubectl: Kubectl) -> None:
    kubectl.apply("Namespace", "watched")
    kubectl("apply", "-n", "watched", "-f", "-", stdin=POD.format(name="w1"))
    proc = subprocess.Popen(
        kubectl.command("get", "pods", "-n", "watched", "-w"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.env,
    )
    lines: queue.Queue[list[str]] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.split())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=20) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert lines.get(timeout=20)[:3] == ["w1", "0/2", "Pending"]
        kubectl("apply", "-n", "watched", "-f", "-", stdin=POD.format(name="w2"))
        assert lines.get(timeout=20)[:3] == ["w2", "0/2", "Pending"]
        kubectl("delete", "-n", "watched", "pod", "w1")
        assert lines.get(timeout=20)[:3] == ["w1", "0/2", "Terminating"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
