"""What the chart install test needs from the cluster beyond hami's client, on either back end.

Raw REST calls with the kubeconfig's own credentials; a service account's credentials (the
emulator's account token, or a real token from the TokenRequest API); and every object of a
release, found through the server's discovery documents. (A webhook Service's route to the process
behind it is ``LocalCluster.map_service`` on either back end.)
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.rbac import TOKEN_PREFIX


class ClusterApi:
    """JSON requests to the cluster's API server as the kubeconfig's user."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"].rstrip("/")
        self._token = (config["users"][0]["user"] or {}).get("token", "")
        ca = cluster.get("certificate-authority-data")
        self._context = ssl.create_default_context(cadata=base64.b64decode(ca).decode()) if ca else None

    def request(self, method: str, path: str, body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._context) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path}: HTTP {err.code}: {err.read()[:2000]!r}") from err

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: object) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str, body: object = None) -> Any:
        return self.request("DELETE", path, body)

    def listable_resources(self) -> list[tuple[str, str]]:
        """(kind, collection path) of every top-level resource the server lists, from discovery."""
        prefixes = ["/api/v1"]
        prefixes += [
            f"/apis/{group['preferredVersion']['groupVersion']}" for group in self.get("/apis")["groups"]
        ]
        return [
            (resource["kind"], f"{prefix}/{resource['name']}")
            for prefix in prefixes
            for resource in self.get(prefix)["resources"]
            if "/" not in resource["name"] and "list" in resource.get("verbs", [])
        ]


def release_objects(api: ClusterApi, release: str) -> list[str]:
    """Every object the release owns or that carries its name, across every served resource."""
    found = []
    for kind, path in api.listable_resources():
        if kind == "Event":
            continue
        for obj in api.get(path)["items"]:
            meta = obj["metadata"]
            labels = meta.get("labels") or {}
            if (
                labels.get("app.kubernetes.io/instance") == release
                or labels.get("owner") == "helm"
                or meta["name"].startswith(f"{release}-")
            ):
                found.append(f"{kind}/{meta.get('namespace', '')}/{meta['name']}")
    return found


def service_account_kubeconfig(cluster: LocalCluster, namespace: str, account: str, out: Path) -> Path:
    """A copy of the cluster's kubeconfig whose token authenticates as ``namespace/account``.

    The emulator reads the account from its token; a real API server issues a bound token for the
    account (which must exist) through the TokenRequest API, as the kubelet does for a pod.
    """
    if cluster.control_plane == "real":
        answer = ClusterApi(cluster.kubeconfig).post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        token = answer["status"]["token"]
    else:
        token = f"{TOKEN_PREFIX}{namespace}:{account}"
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    out.write_text(yaml.safe_dump(config))
    return out
