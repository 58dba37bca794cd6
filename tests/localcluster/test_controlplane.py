"""The real control plane's harness: its configuration documents, its binaries check, its teardown
and its route to webhook Services."""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from hami_core.localcluster.controlplane import ControlPlane
from hami_core.localcluster.controlplane import ControlPlaneError
from hami_core.localcluster.controlplane import find_binaries
from hami_core.localcluster.controlplane import kube_scheduler_document
from hami_core.localcluster.resource_fit import canonical_quantity
from hami_core.localcluster.scheduler_config import load_scheduler_config
from hami_core.localcluster.stack import kube_scheduler_configuration
from tests.chart.clusterapi import ClusterApi


def test_the_scheduler_document_reads_back_as_the_configuration_it_was_made_from(tmp_path: Path) -> None:
    chart = kube_scheduler_configuration(
        "hami-scheduler", "https://127.0.0.1:9443", ["mock.hami.io/gpu", "mock.hami.io/gpumem"]
    )
    config = load_scheduler_config(chart)
    document = kube_scheduler_document(config, tmp_path / "kubeconfig")
    assert load_scheduler_config(document) == config
    assert document["clientConnection"] == {"kubeconfig": str(tmp_path / "kubeconfig")}
    assert document["leaderElection"] == {"leaderElect": False}
    (extender,) = document["extenders"]
    assert (extender["filterVerb"], extender["bindVerb"], extender["httpTimeout"]) == (
        "filter",
        "bind",
        "30s",
    )
    assert extender["tlsConfig"] == {"insecure": True}


def test_missing_binaries_name_make_kube(tmp_path: Path) -> None:
    with pytest.raises(
        ControlPlaneError, match=r"etcd, kube-apiserver, kube-scheduler not found in .*make kube"
    ):
        find_binaries(tmp_path)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("1000", "1k"),
        ("1500", "1500"),
        ("6000", "6k"),
        (4096, "4096"),
        ("0.5", "500m"),
        ("250m", "250m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1e3", "1e3"),
        ("0", "0"),
    ],
)
def test_quantities_are_stored_in_kube_apiservers_canonical_form(sent: str | int, stored: str) -> None:
    assert canonical_quantity(sent) == stored


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    find_binaries()  # fails with the remedy when `make kube` has not run
    plane = ControlPlane(tmp_path / "cp").start()
    try:
        pids = plane.pids()
        assert set(pids) == {"etcd", "kube-apiserver"}
        assert all(os.getpgid(pid) == pid for pid in pids.values())
    finally:
        plane.stop()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert plane.pids() == {}


def test_a_killed_component_is_reported_and_restarted(tmp_path: Path) -> None:
    """``local-cluster up --real`` supervises its children: kube-apiserver comes back after SIGKILL."""
    import signal
    import time

    from hami_core.errors import KubeError
    from hami_core.kube.client import RealKubeClient

    find_binaries()
    plane = ControlPlane(tmp_path / "cp").start()
    try:
        killed = plane.pids()["kube-apiserver"]
        os.killpg(killed, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while plane.supervisor.restarts("kube-apiserver") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        (death,) = plane.supervisor.deaths
        assert (death.name, death.status, death.restart) == ("kube-apiserver", -signal.SIGKILL, 1)
        with RealKubeClient(kubeconfig=plane.kubeconfig, timeout=5) as kube:
            while True:
                try:
                    kube.list_nodes()
                    break
                except KubeError:
                    assert time.monotonic() < deadline, "the restarted kube-apiserver never answered"
                    time.sleep(0.5)
        assert plane.pids()["kube-apiserver"] != killed
    finally:
        plane.stop()


class _Mutator(BaseHTTPRequestHandler):
    """An admission webhook that labels what it admits ``mutated=yes``."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        patch = [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]
        response = {
            "uid": review["request"]["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        }
        body = json.dumps(
            {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the effect, not the access log."""


def test_kube_apiserver_calls_a_mapped_webhook_service_through_the_proxy_and_no_other(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = trustme.CA()
    webhook = ThreadingHTTPServer(("127.0.0.1", 0), _Mutator)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("hook.default.svc").configure_cert(context)
    webhook.socket = context.wrap_socket(webhook.socket, server_side=True)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    plane = ControlPlane(tmp_path / "cp").start()
    try:
        api = ClusterApi(plane.kubeconfig)
        for name in ("hook", "unrouted"):
            api.post(
                "/api/v1/namespaces/default/services",
                {"metadata": {"name": name}, "spec": {"ports": [{"port": 443, "targetPort": 9443}]}},
            )
        bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
        api.post(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            {
                "metadata": {"name": "hooks"},
                "webhooks": [
                    {
                        "name": f"{name}.hami.io",
                        "clientConfig": {
                            "service": {"namespace": "default", "name": name, "path": "/"},
                            "caBundle": bundle,
                        },
                        "objectSelector": {"matchLabels": {"to": name}},
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE"],
                                "resources": ["configmaps"],
                            }
                        ],
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Fail",
                        "timeoutSeconds": 10,
                    }
                    for name in ("hook", "unrouted")
                ],
            },
        )
        plane.map_service("default", "hook", 443, int(webhook.server_address[1]))

        def create(name: str, to: str) -> Any:
            body = {"metadata": {"name": name, "labels": {"to": to}}}
            return api.post("/api/v1/namespaces/default/configmaps", body)

        # The API server picks the configuration up from its informer: retry until it calls.
        deadline = time.monotonic() + 60
        attempt = 0
        while "mutated" not in create(f"hooked-{attempt}", "hook")["metadata"]["labels"]:
            assert time.monotonic() < deadline, "the webhook was never called"
            attempt += 1
            time.sleep(0.5)
        with (
            caplog.at_level(logging.WARNING, logger="hami_core.localcluster.service_proxy"),
            pytest.raises(AssertionError, match="failed calling webhook"),
        ):
            create("unrouted", "unrouted")
        unrouted_ip = api.get("/api/v1/namespaces/default/services/unrouted")["spec"]["clusterIP"]
        assert f"refused {unrouted_ip}:443" in caplog.text
    finally:
        plane.stop()
        webhook.shutdown()
        webhook.server_close()
