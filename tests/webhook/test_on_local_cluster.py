"""The webhook on the local cluster: kube-apiserver's emulator calls it over TLS, trusting only caBundle.

Certificates come from ``hami certs`` (the real command, against the emulator), pods are created
with the official client and kubectl, and the MutatingWebhookConfiguration is the chart's shape
with ``failurePolicy: Fail``.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from kubernetes import client

from hami_core import codec
from hami_core.cli import hami
from hami_core.config import HamiConfig
from hami_core.kube.client import RealKubeClient
from hami_core.localcluster import ApiServer
from hami_core.plugins import load_backends
from hami_core.scheduler.server import ExtenderServer
from hami_core.webhook import certs
from hami_core.webhook.certs import RenewalPolicy
from hami_core.webhook.certs import ServingIdentity
from hami_core.webhook.certs_sync import CertificateSync
from hami_core.webhook.certs_sync import CertTarget
from hami_core.webhook.mutating import WebhookSettings
from hami_core.webhook.registration import webhook_configuration
from hami_core.webhook.server import AdmissionHandler
from hami_core.webhook.tls import ReloadingCertificate
from tests.tools import KUBECTL
from tests.tools import kubectl_binary  # noqa: F401 (a fixture)
from tests.webhook.fakes import FixedCapacity
from tests.webhook.fakes import webhook_server

pytestmark = pytest.mark.slow

NAMESPACE = "kube-system"
SERVICE = "hami-scheduler"
GPU = "mock.hami.io/gpu"
MEM = "mock.hami.io/gpumem"


@attrs.define
class Cluster:
    """The emulator with the webhook registered, serving and trusted."""

    server: ApiServer
    kubeconfig: Path
    home: Path
    cert_dir: Path
    core: client.CoreV1Api
    certificate: ReloadingCertificate
    webhook: ExtenderServer
    kube: RealKubeClient
    certs_output: str

    def sync_with(self, policy: RenewalPolicy) -> CertificateSync:
        """A certificate sync with ``policy`` (a wide renewal margin makes a renewal due now)."""
        target = CertTarget(
            namespace=NAMESPACE,
            secret="hami-scheduler-tls",
            webhook_config="hami-webhook",
            identity=ServingIdentity.for_service(SERVICE, NAMESPACE),
            policy=policy,
            cert_dir=self.cert_dir,
        )
        return CertificateSync(self.kube, target)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("home")
    cert_dir = home / "tls"
    with ApiServer() as server, RealKubeClient(host=server.url) as kube:
        kubeconfig = server.write_kubeconfig(home / "kubeconfig")
        kube.create_mutating_webhook_configuration(
            webhook_configuration(
                "hami-webhook", service={"namespace": NAMESPACE, "name": SERVICE}, failure_policy="Fail"
            )
        )
        done = CliRunner().invoke(
            hami,
            ["certs", "--kubeconfig", str(kubeconfig), "--cert-dir", str(cert_dir)],
            catch_exceptions=False,
        )
        assert done.exit_code == 0, done.output
        certificate = ReloadingCertificate(cert_dir / "tls.crt", cert_dir / "tls.key")
        backends = load_backends(HamiConfig().with_enabled(["mock"]))
        handler = AdmissionHandler(backends, WebhookSettings(), FixedCapacity(memory=16384, count=2))
        with webhook_server(handler, certificate) as webhook:
            server.map_service(NAMESPACE, SERVICE, 443, webhook.url)
            configuration = client.Configuration()
            configuration.host = server.url
            with client.ApiClient(configuration) as api:
                yield Cluster(
                    server,
                    kubeconfig,
                    home,
                    cert_dir,
                    client.CoreV1Api(api),
                    certificate,
                    webhook,
                    kube,
                    done.output,
                )


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace(_namespace(name))
    return name


def _namespace(name: str, labels: dict[str, str] | None = None) -> Any:
    return {"metadata": {"name": name, "labels": labels or {}}}


def _pod(name: str, limits: dict[str, str] | None = None, **spec: object) -> Any:
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    if limits is not None:
        container["resources"] = {"limits": limits}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }


def _create(cluster: Cluster, namespace: str, pod: Any) -> dict[str, Any]:
    created = cluster.core.create_namespaced_pod(namespace, pod)
    return cluster.core.api_client.sanitize_for_serialization(created)  # type: ignore[no-any-return]


def test_hami_certs_stored_the_certificate_and_set_the_cabundle(cluster: Cluster) -> None:
    assert cluster.certs_output.startswith("certificate created (no certificate was stored); expires ")
    assert "caBundle updated; files written" in cluster.certs_output
    secret = cluster.kube.get_secret(NAMESPACE, "hami-scheduler-tls")
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    again = CliRunner().invoke(
        hami, ["certs", "--kubeconfig", str(cluster.kubeconfig), "--cert-dir", str(cluster.cert_dir)]
    )
    assert again.exit_code == 0, again.output
    assert again.output.startswith("certificate is current; expires ")


def test_hami_certs_reports_a_missing_webhook_configuration_as_one_error_line(cluster: Cluster) -> None:
    done = CliRunner().invoke(
        hami,
        [
            "certs",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--secret",
            "other-tls",
            "--webhook-config",
            "absent",
        ],
    )
    assert done.exit_code == 1
    assert done.output.startswith("Error: mutatingwebhookconfiguration absent not found")
    assert set(cluster.kube.get_secret(NAMESPACE, "other-tls")["data"]) == {
        "tls.crt",
        "tls.key",
        "ca.crt",
        "ca.key",
    }


def test_a_gpu_pod_arrives_with_hamis_scheduler_and_its_resources(cluster: Cluster, namespace: str) -> None:
    pod = _create(cluster, namespace, _pod("gpu", {MEM: "4096"}))
    assert pod["spec"]["schedulerName"] == "hami-scheduler"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {MEM: "4096", GPU: "1"}


def test_a_pod_without_devices_is_untouched(cluster: Cluster, namespace: str) -> None:
    pod = _create(cluster, namespace, _pod("plain", {"cpu": "1"}))
    assert pod["spec"]["schedulerName"] == "default-scheduler"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1"}


def test_a_malformed_request_is_refused_with_the_message(cluster: Cluster, namespace: str) -> None:
    with pytest.raises(client.ApiException) as refused:
        cluster.core.create_namespaced_pod(namespace, _pod("bad", {GPU: "1", MEM: "-100"}))
    assert refused.value.status == 400
    assert (
        'admission webhook \\"vgpu.hami.io\\" denied the request: '
        "container main: mock.hami.io/gpumem must not be negative, got -100"
    ) in str(refused.value.body)


def test_pods_in_a_namespace_labelled_ignore_are_not_sent_to_the_webhook(cluster: Cluster) -> None:
    name = f"ignored-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace(_namespace(name, {codec.WEBHOOK_LABEL: codec.WEBHOOK_IGNORE}))
    pod = _create(cluster, name, _pod("gpu", {GPU: "1"}))
    assert pod["spec"]["schedulerName"] == "default-scheduler"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_with_failure_policy_fail_a_gpu_pod_is_refused_while_the_webhook_is_down(
    cluster: Cluster, namespace: str
) -> None:
    cluster.server.map_service(NAMESPACE, SERVICE, 443, f"https://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(client.ApiException) as refused:
            cluster.core.create_namespaced_pod(namespace, _pod("gpu-down", {GPU: "1"}))
    finally:
        cluster.server.map_service(NAMESPACE, SERVICE, 443, cluster.webhook.url)
    assert refused.value.status == 500
    assert 'failed calling webhook \\"vgpu.hami.io\\"' in str(refused.value.body)
    assert cluster.core.list_namespaced_pod(namespace).items == []


def test_a_webhook_presenting_a_certificate_outside_the_cabundle_is_not_trusted(
    cluster: Cluster, namespace: str
) -> None:
    other_ca = certs.create_bundle(ServingIdentity.for_service(SERVICE, NAMESPACE), certs.utc_now()).ca
    original = cluster.kube.get_mutating_webhook_configuration("hami-webhook")
    webhooks = original["webhooks"]
    distrusted = [
        {**w, "clientConfig": {**w["clientConfig"], "caBundle": base64.b64encode(other_ca.cert_pem).decode()}}
        for w in webhooks
    ]
    cluster.kube.patch_mutating_webhook_configuration("hami-webhook", {"webhooks": distrusted})
    try:
        with pytest.raises(client.ApiException) as refused:
            cluster.core.create_namespaced_pod(namespace, _pod("gpu-untrusted", {GPU: "1"}))
    finally:
        cluster.kube.patch_mutating_webhook_configuration("hami-webhook", {"webhooks": webhooks})
    assert refused.value.status == 500
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.body)


def test_a_renewed_certificate_is_served_without_restarting_the_webhook(
    cluster: Cluster, namespace: str
) -> None:
    before = (cluster.cert_dir / "tls.crt").read_bytes()
    reloads = cluster.certificate.reloads
    # A margin wider than the validity left makes the renewal due now.
    left = certs.not_after(before) - certs.utc_now()
    policy = RenewalPolicy(renew_before=left + timedelta(days=1), cert_validity=left + timedelta(days=30))
    renewed = cluster.sync_with(policy).sync()
    assert (renewed.action, renewed.files_written, renewed.ca_bundle_patched) == ("renewed", True, False)
    assert (cluster.cert_dir / "tls.crt").read_bytes() != before
    pod = _create(cluster, namespace, _pod("after-renewal", {GPU: "1"}))
    assert pod["spec"]["schedulerName"] == "hami-scheduler"
    assert cluster.certificate.reloads == reloads + 1


def test_a_rotated_ca_is_trusted_before_the_webhook_serves_its_certificate(
    cluster: Cluster, namespace: str
) -> None:
    # The CA is valid for 3650 days; a 3700-day margin makes its rotation due now.
    policy = RenewalPolicy(
        renew_before=timedelta(days=3700),
        ca_validity=timedelta(days=4000),
        cert_validity=timedelta(days=3800),
    )
    reloads = cluster.certificate.reloads
    rotated = cluster.sync_with(policy).sync()
    assert (rotated.action, rotated.ca_bundle_patched) == ("renewed", True)
    assert (
        len(
            base64.b64decode(
                cluster.kube.get_mutating_webhook_configuration("hami-webhook")["webhooks"][0][
                    "clientConfig"
                ]["caBundle"]
            ).split(b"BEGIN CERTIFICATE")
        )
        == 3
    )
    pod = _create(cluster, namespace, _pod("after-ca-rotation", {GPU: "1"}))
    assert pod["spec"]["schedulerName"] == "hami-scheduler"
    assert cluster.certificate.reloads == reloads + 1


def test_hami_certs_watch_keeps_checking_until_sigterm(cluster: Cluster) -> None:
    def ours(number: int, frame: object) -> None:
        raise AssertionError("the command should have handled SIGTERM itself")

    def terminate_once_the_command_listens() -> None:
        deadline = time.monotonic() + 30
        while signal.getsignal(signal.SIGTERM) is ours and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.2)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, ours)
    killer = threading.Thread(target=terminate_once_the_command_listens)
    try:
        killer.start()
        done = CliRunner().invoke(
            hami, ["certs", "--kubeconfig", str(cluster.kubeconfig), "--watch", "--interval", "1s"]
        )
    finally:
        killer.join()
        signal.signal(signal.SIGTERM, previous)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines
    assert all(line.startswith("certificate is current; expires ") for line in lines)


def test_a_v1beta1_only_webhook_gets_and_answers_v1beta1(cluster: Cluster, namespace: str) -> None:
    original = cluster.kube.get_mutating_webhook_configuration("hami-webhook")["webhooks"]
    beta = [{**w, "admissionReviewVersions": ["v1beta1"]} for w in original]
    cluster.kube.patch_mutating_webhook_configuration("hami-webhook", {"webhooks": beta})
    try:
        pod = _create(cluster, namespace, _pod("beta", {MEM: "1024"}))
    finally:
        cluster.kube.patch_mutating_webhook_configuration("hami-webhook", {"webhooks": original})
    assert pod["spec"]["schedulerName"] == "hami-scheduler"


@pytest.mark.usefixtures("kubectl_binary")
def test_kubectl_shows_the_warning_of_a_request_no_device_can_hold(cluster: Cluster, namespace: str) -> None:
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\nspec:\n  containers:\n  - name: main\n"
        f"    image: busybox\n    resources:\n      limits:\n        {GPU}: 1\n        {MEM}: 40000\n"
    )
    done = subprocess.run(
        [
            str(KUBECTL),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--cache-dir",
            str(cluster.home / "cache"),
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        env={"HOME": str(cluster.home), "PATH": os.environ.get("PATH", "")},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pod/huge created"
    assert (
        "Warning: container main asks for 40000 MiB per mock device but the largest registered device has "
        "16384 MiB; the pod stays Pending until a larger one registers"
    ) in done.stderr
    pod = cluster.core.read_namespaced_pod("huge", namespace)
    assert pod.spec is not None
    assert pod.spec.scheduler_name == "hami-scheduler"
