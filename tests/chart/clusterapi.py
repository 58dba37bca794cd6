"""What the chart install test needs from the cluster beyond hami's client, on either back end.

Raw REST calls with the kubeconfig's own credentials; a service account's credentials (the
emulator's account token, or a real token from the TokenRequest API); a webhook Service's route to
the process behind it (the emulator's service map, or the Endpoints and EndpointSlice that the
endpoints controllers would write on a real cluster); and every object of a release, found through
the server's discovery documents.
"""

from __future__ import annotations

import base64
import fcntl
import ipaddress
import json
import socket
import ssl
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from hami_core.localcluster.cluster import LocalCluster
from hami_core.localcluster.rbac import TOKEN_PREFIX

#: The ioctl that reads an interface's IPv4 address.
_SIOCGIFADDR = 0x8915


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


def host_address() -> str:
    """An IPv4 address of this machine that a real API server takes for an endpoint (not loopback
    or link-local), read from the interfaces (Linux ``SIOCGIFADDR``)."""
    for _, interface in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                answer = fcntl.ioctl(
                    probe.fileno(), _SIOCGIFADDR, struct.pack("256s", interface[:15].encode())
                )
            except OSError:
                continue  # no IPv4 address on this interface
        address = ipaddress.IPv4Address(answer[20:24])
        if not (address.is_loopback or address.is_link_local):
            return str(address)
    raise AssertionError("the real control plane needs a non-loopback IPv4 address for endpoints")


def route_service(
    cluster: LocalCluster, service: dict[str, Any], port_name: str, pod: dict[str, Any], local_port: int
) -> None:
    """Send the API server's calls to ``service``'s port ``port_name`` to ``local_port`` on this host.

    On a real API server (started with aggregator routing) this writes what the endpoints
    controllers would for the ready ``pod``: the Service's Endpoints and EndpointSlice.
    """
    meta = service["metadata"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == port_name]
    if cluster.control_plane != "real":
        cluster.api_server.map_service(
            meta["namespace"], meta["name"], port["port"], f"https://127.0.0.1:{local_port}"
        )
        return
    api = ClusterApi(cluster.kubeconfig)
    address = host_address()
    target = {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"]}
    api.post(
        f"/api/v1/namespaces/{meta['namespace']}/endpoints",
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "subsets": [
                {
                    "addresses": [{"ip": address, "targetRef": target}],
                    "ports": [{"name": port_name, "port": local_port, "protocol": "TCP"}],
                }
            ],
        },
    )
    api.post(
        f"/apis/discovery.k8s.io/v1/namespaces/{meta['namespace']}/endpointslices",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": {"kubernetes.io/service-name": meta["name"]},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}, "targetRef": target}],
            "ports": [{"name": port_name, "port": local_port, "protocol": "TCP"}],
        },
    )


def unroute_service(cluster: LocalCluster, service: dict[str, Any]) -> None:
    """The endpoints controllers' part of deleting a Service: its Endpoints and EndpointSlice go."""
    if cluster.control_plane != "real":
        return
    api = ClusterApi(cluster.kubeconfig)
    namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
    api.delete(f"/api/v1/namespaces/{namespace}/endpoints/{name}")
    api.delete(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}")
