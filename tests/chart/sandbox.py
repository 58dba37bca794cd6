"""Running a pod template's containers as local processes, the way a kubelet would on a node.

What a container runtime gives a pod is given here explicitly: each volume becomes a directory
(configMap and secret volumes hold the object's current data, emptyDir is empty, hostPath is the
node's directory), the pod's container ports become free local ports, and paths and ports named
in the arguments and in the mounted files are translated accordingly; a pod listens on its own
network namespace's every address (``0.0.0.0``), a local process on loopback only. ``KUBECONFIG`` stands in
for in-cluster credentials: its token is the pod's service account's (``clusterapi``), so the API
server (emulator or real) authorizes every request with the chart's RBAC. Nothing else of the
rendered object is changed: the command and arguments run as written, through the real ``hami``
console script or the executable the caller names for the container's command.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.stack import free_port
from tests.chart.clusterapi import service_account_kubeconfig

Doc = dict[str, Any]
HAMI = Path(sys.executable).parent / "hami"


class PodSandbox:
    """One pod of ``template`` on ``node``, its volumes under ``root``.

    Args:
        cluster: the cluster whose ConfigMaps and Secrets the volumes name, and whose API
            server the pod's service account talks to.
        template: the pod template (``metadata`` and ``spec``).
        namespace: the pod's namespace.
        pod_name: the pod's name (downward API ``metadata.name``).
        node: the node (downward API ``spec.nodeName``).
        root: where the volumes' directories go.
        host_paths: hostPath path -> local directory; other hostPaths get a fresh directory.
    """

    def __init__(
        self,
        cluster: LocalCluster,
        template: Doc,
        *,
        namespace: str,
        pod_name: str,
        node: str,
        root: Path,
        host_paths: Mapping[str, Path],
    ) -> None:
        self.spec = template["spec"]
        self.namespace = namespace
        self.pod_name = pod_name
        self.node = node
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        account = self.spec.get("serviceAccountName", "default")
        self.kubeconfig = service_account_kubeconfig(cluster, namespace, account, root / "kubeconfig")
        self.cluster = cluster
        self._kube = cluster.kube
        self._host_paths = dict(host_paths)
        self.ports = {
            port["containerPort"]: free_port()
            for container in self.spec["containers"]
            for port in container.get("ports") or []
        }
        self.named_ports = {
            port["name"]: port["containerPort"]
            for container in self.spec["containers"]
            for port in container.get("ports") or []
            if "name" in port
        }
        self.volumes = {volume["name"]: self._volume(volume) for volume in self.spec.get("volumes") or []}
        self.processes: list[subprocess.Popen[bytes]] = []

    def container(self, name: str) -> Doc:
        for container in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            if container["name"] == name:
                return dict(container)
        raise KeyError(name)

    def translate(self, container: Doc, text: str) -> str:
        """``text`` with the container's mount paths, the pod's ports and its any-address binds
        (``0.0.0.0:<port>``) made local."""
        mounts = sorted(container.get("volumeMounts") or [], key=lambda m: -len(m["mountPath"]))
        for mount in mounts:
            local = str(self.volumes[mount["name"]])
            # Only whole leading path segments: /tls in "/tls/tls.crt" once, never inside a path.
            pattern = r"(?<![\w./-])" + re.escape(mount["mountPath"].rstrip("/")) + r"(?![\w.-])"
            text = re.sub(pattern, local, text)
        for port, local_port in self.ports.items():
            text = re.sub(rf"(?<=:){port}\b", str(local_port), text)
        return re.sub(r"(?<![\w.])0\.0\.0\.0(?=:\d)", "127.0.0.1", text)

    def argv(self, container: Doc) -> list[str]:
        """The container's command and args, translated; ``hami`` is the venv's console script."""
        command = [*container.get("command", []), *container.get("args", [])]
        command = [self.translate(container, part) for part in command]
        if command and command[0] == "hami":
            command[0] = str(HAMI)
        return command

    def env(self, container: Doc) -> dict[str, str]:
        fields = {
            "metadata.name": self.pod_name,
            "metadata.namespace": self.namespace,
            "spec.nodeName": self.node,
        }
        env = {"KUBECONFIG": str(self.kubeconfig), "PATH": os.environ["PATH"], "GRPC_VERBOSITY": "ERROR"}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
        return env

    def probe(self, container: Doc, kind: str) -> int:
        """Run the container's ``kind`` probe (an httpGet) once; returns the HTTP status."""
        action = container[kind]["httpGet"]
        port = action["port"]
        local = self.ports[self.named_ports[port] if isinstance(port, str) else port]
        url = f"{action.get('scheme', 'HTTP').lower()}://127.0.0.1:{local}{action.get('path', '/')}"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates either
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return err.code

    def run_init(self, name: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run an init container to completion; it must succeed."""
        container = self.container(name)
        result = subprocess.run(
            self.argv(container), env=self.env(container), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise AssertionError(f"init container {name} failed ({result.returncode}):\n{result.stderr}")
        return result

    def start(
        self, name: str, *, executable: Path | None = None, extra_args: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """Start a container's process; ``executable`` runs its command (``extra_args`` appended)."""
        container = self.container(name)
        argv = self.argv(container)
        if executable is not None:
            argv[0] = str(executable)
        with (self.root / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([*argv, *extra_args], env=self.env(container), stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def _volume(self, volume: Doc) -> Path:
        where = self.root / "volumes" / volume["name"]
        where.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            data = self._kube.get_config_map(self.namespace, volume["configMap"]["name"]).get("data") or {}
            for key, value in data.items():
                (where / key).write_text(value)
        elif "secret" in volume:
            data = self._kube.get_secret(self.namespace, volume["secret"]["secretName"]).get("data") or {}
            for key, value in data.items():
                (where / key).write_bytes(base64.b64decode(value))
        elif "hostPath" in volume:
            local = self._host_paths.get(volume["hostPath"]["path"])
            if local is not None:
                shutil.rmtree(where)
                return local
        elif "emptyDir" not in volume:
            raise AssertionError(f"volume {volume['name']}: kind not supported by the sandbox")
        return where

    def translate_files(self, volume: str, container: Doc) -> None:
        """Translate paths and ports inside the files of a configMap volume, as seen from ``container``."""
        for path in self.volumes[volume].iterdir():
            path.write_text(self.translate(container, path.read_text()))
