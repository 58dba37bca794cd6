"""ReloadingCertificate: a rotated serving certificate is served at the next handshake, without restart."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hami_core.errors import ConfigError
from hami_core.webhook import certs
from hami_core.webhook.certs import KeyPair
from hami_core.webhook.certs import ServingIdentity
from hami_core.webhook.tls import ReloadingCertificate

IDENTITY = ServingIdentity.for_service("hami-scheduler", "kube-system", ip_addresses=["127.0.0.1"])
NOW = certs.utc_now()


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return certs.create_ca(NOW)


def _write(directory: Path, pair: KeyPair) -> None:
    (directory / "tls.crt").write_bytes(pair.cert_pem)
    (directory / "tls.key").write_bytes(pair.key_pem)


class TlsEcho:
    """Accepts TLS connections with a ReloadingCertificate and completes each handshake."""

    def __init__(self, certificate: ReloadingCertificate) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5)
        self.port = self._listener.getsockname()[1]
        self._context = certificate.context()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with raw:
                try:
                    with self._context.wrap_socket(raw, server_side=True) as tls:
                        tls.recv(1)
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join()


@pytest.fixture
def files(tmp_path: Path, ca: KeyPair) -> Path:
    _write(tmp_path, certs.issue_serving_certificate(ca, IDENTITY, NOW))
    return tmp_path


@pytest.fixture
def certificate(files: Path) -> ReloadingCertificate:
    return ReloadingCertificate(files / "tls.crt", files / "tls.key")


@pytest.fixture
def server(certificate: ReloadingCertificate) -> Iterator[TlsEcho]:
    echo = TlsEcho(certificate)
    yield echo
    echo.close()


def _served(port: int, ca: KeyPair, server_name: str) -> bytes:
    """The certificate (DER) the server presents, verified against the CA and ``server_name``."""
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"x")
    assert der is not None
    return der


def _der(pair: KeyPair) -> bytes:
    return certs.der_certificates(pair.cert_pem)[0]


@pytest.mark.parametrize(
    "server_name",
    [
        pytest.param("hami-scheduler.kube-system.svc", id="with-sni"),
        pytest.param("127.0.0.1", id="by-ip-without-sni"),
    ],
)
def test_a_rotated_certificate_is_served_without_restart(
    files: Path, certificate: ReloadingCertificate, server: TlsEcho, ca: KeyPair, server_name: str
) -> None:
    first = _served(server.port, ca, server_name)
    assert first == _der(certs.KeyPair((files / "tls.crt").read_bytes(), b""))
    rotated = certs.issue_serving_certificate(ca, IDENTITY, NOW)
    _write(files, rotated)
    assert _served(server.port, ca, server_name) == _der(rotated)
    assert certificate.reloads == 1
    assert _served(server.port, ca, server_name) == _der(rotated)
    assert certificate.reloads == 1, "unchanged files are not loaded again"


def test_a_half_written_rotation_keeps_the_previous_pair_until_the_key_follows(
    files: Path, certificate: ReloadingCertificate, server: TlsEcho, ca: KeyPair
) -> None:
    first = _served(server.port, ca, "127.0.0.1")
    rotated = certs.issue_serving_certificate(ca, IDENTITY, NOW)
    (files / "tls.crt").write_bytes(rotated.cert_pem)
    assert _served(server.port, ca, "127.0.0.1") == first
    (files / "tls.key").write_bytes(rotated.key_pem)
    assert _served(server.port, ca, "127.0.0.1") == _der(rotated)


def test_removed_files_keep_the_loaded_pair(files: Path, certificate: ReloadingCertificate) -> None:
    loaded = certificate.current()
    (files / "tls.crt").unlink()
    assert certificate.current() is loaded


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("missing", id="missing-file"),
        pytest.param("mismatch", id="key-of-another-certificate"),
    ],
)
def test_files_that_do_not_load_at_start_are_a_config_error(files: Path, ca: KeyPair, damage: str) -> None:
    if damage == "missing":
        (files / "tls.key").unlink()
    else:
        (files / "tls.key").write_bytes(certs.issue_serving_certificate(ca, IDENTITY, NOW).key_pem)
    with pytest.raises(ConfigError, match="cannot load the serving certificate"):
        ReloadingCertificate(files / "tls.crt", files / "tls.key")
