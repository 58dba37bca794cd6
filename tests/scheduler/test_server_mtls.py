"""Mutual TLS on the extender: verbs need a client certificate of the client CA; webhook and probes do not."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from hami_core.config import parse_config
from hami_core.scheduler.app import build_scheduler
from hami_core.scheduler.server import ExtenderServer
from hami_core.testing.fake_kube import FakeKube
from hami_core.webhook import certs
from hami_core.webhook.tls import ReloadingCertificate
from tests.loopback import request
from tests.scheduler.test_server import POD
from tests.scheduler.test_server import EchoAdmission
from tests.scheduler.test_server import RecordingService

BIND = json.dumps({"PodName": "p", "PodNamespace": "default", "PodUID": "u", "Node": "a"}).encode()
FILTER = json.dumps({"Pod": POD, "NodeNames": ["a"]}).encode()


@attrs.frozen
class Pki:
    """A serving pair, the client CA and client pairs on disk, as ``local-cluster up --hami`` lays them out."""

    directory: Path
    serving: certs.CertificateBundle
    client_ca: certs.KeyPair

    def client(self, name: str, pair: certs.KeyPair) -> tuple[str, str]:
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        return str(cert), str(key)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    now = certs.utc_now()
    serving = certs.create_bundle(
        certs.ServingIdentity(dns_names=("localhost",), ip_addresses=("127.0.0.1",)), now
    )
    client_ca = certs.create_ca(now)
    (tmp_path / "tls.crt").write_bytes(serving.serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.serving.key_pem)
    (tmp_path / "client-ca.crt").write_bytes(client_ca.cert_pem)
    return Pki(tmp_path, serving, client_ca)


@pytest.fixture
def server(pki: Pki) -> Iterator[ExtenderServer]:
    tls = ReloadingCertificate(
        pki.directory / "tls.crt", pki.directory / "tls.key", pki.directory / "client-ca.crt"
    )
    running = ExtenderServer(RecordingService(), admission=EchoAdmission(), tls=tls).start()
    yield running
    running.stop()


def call(
    server: ExtenderServer, pki: Pki, path: str, body: bytes | None, client: tuple[str, str] | None = None
) -> tuple[int, bytes]:
    context = ssl.create_default_context(cadata=pki.serving.ca.cert_pem.decode())
    if client is not None:
        context.load_cert_chain(*client)
    return request(server.port, "GET" if body is None else "POST", path, body, context=context)


def test_the_extender_verbs_answer_a_client_certificate_of_the_client_ca(
    server: ExtenderServer, pki: Pki
) -> None:
    client = pki.client(
        "scheduler", certs.issue_client_certificate(pki.client_ca, "kube-scheduler", certs.utc_now())
    )
    assert call(server, pki, "/bind", BIND, client) == (200, b'{"Error":""}')
    assert call(server, pki, "/filter", FILTER, client)[0] == 200
    assert call(server, pki, "/prioritize", FILTER, client)[0] == 200


@pytest.mark.parametrize("path", ["/filter", "/prioritize", "/bind"])
def test_without_a_client_certificate_the_extender_verbs_are_403(
    server: ExtenderServer, pki: Pki, path: str
) -> None:
    status, reply = call(server, pki, path, BIND)
    assert status == 403
    assert "client certificate" in json.loads(reply)["Error"]


def test_the_webhook_and_the_probes_need_no_client_certificate(server: ExtenderServer, pki: Pki) -> None:
    """kube-apiserver calls the webhook and kubelet probes health without one."""
    assert call(server, pki, "/webhook", b'{"x":1}') == (200, b'{"echo":{"x":1}}')
    assert call(server, pki, "/healthz", None) == (200, b"ok")
    assert call(server, pki, "/readyz", None) == (200, b"ok")


def test_a_certificate_of_another_ca_fails_the_handshake(server: ExtenderServer, pki: Pki) -> None:
    now = certs.utc_now()
    stranger = pki.client(
        "stranger", certs.issue_client_certificate(certs.create_ca(now), "kube-scheduler", now)
    )
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(server, pki, "/bind", BIND, stranger)
    assert call(server, pki, "/healthz", None) == (200, b"ok")


def test_a_serving_certificate_of_the_client_ca_is_no_client_certificate(
    server: ExtenderServer, pki: Pki
) -> None:
    """Only a ``clientAuth`` leaf authenticates: a serving leaf from the same CA is refused."""
    now = certs.utc_now()
    serving = certs.issue_serving_certificate(pki.client_ca, certs.ServingIdentity(dns_names=("x",)), now)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(server, pki, "/bind", BIND, pki.client("server-leaf", serving))


def test_a_rotated_client_ca_is_used_without_a_restart(server: ExtenderServer, pki: Pki) -> None:
    now = certs.utc_now()
    new_ca = certs.create_ca(now)
    (pki.directory / "client-ca.crt").write_bytes(new_ca.cert_pem)
    client = pki.client("renewed", certs.issue_client_certificate(new_ca, "kube-scheduler", now))
    assert call(server, pki, "/bind", BIND, client) == (200, b'{"Error":""}')


CONFIG = {
    "version": "v1",
    "backends": {"mock": {"enabled": True, "devices": [{"count": 1, "memory_mib": 8000}]}},
}


def test_without_a_client_ca_the_scheduler_listens_on_loopback_only_and_says_why(
    fake_kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hami_core.scheduler.app"):
        app = build_scheduler(parse_config(CONFIG, "test"), fake_kube, bind="0.0.0.0:0", metrics_bind="")
    assert app.server is not None
    app.server.stop()
    assert app.server.url.startswith("http://127.0.0.1:")
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "no client CA" in record.getMessage()
    assert "instead of 0.0.0.0" in record.getMessage()


def test_with_a_client_ca_the_scheduler_listens_where_it_is_told(
    fake_kube: FakeKube, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests listen on loopback only, so the server is not started: the host it would be given is the point.
    hosts: list[str] = []

    def recording_server(*args: object, host: str, **kwargs: object) -> None:
        hosts.append(host)

    monkeypatch.setattr("hami_core.scheduler.app.ExtenderServer", recording_server)
    tls = ReloadingCertificate(
        pki.directory / "tls.crt", pki.directory / "tls.key", pki.directory / "client-ca.crt"
    )
    build_scheduler(parse_config(CONFIG, "test"), fake_kube, bind="0.0.0.0:0", metrics_bind="", tls=tls)
    assert hosts == ["0.0.0.0"]
