"""CertificateSync on FakeKube: Secret, caBundle and files, idempotence, renewal and the renewal loop."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from hami_core.errors import ConfigError
from hami_core.errors import NotFoundError
from hami_core.kube.objects import MutatingWebhookConfiguration
from hami_core.testing.fake_kube import FakeKube
from hami_core.webhook import certs
from hami_core.webhook.certs import RenewalPolicy
from hami_core.webhook.certs import ServingIdentity
from hami_core.webhook.certs_sync import CertificateSync
from hami_core.webhook.certs_sync import CertTarget
from hami_core.webhook.certs_sync import SyncResult
from hami_core.webhook.certs_sync import parse_duration
from hami_core.webhook.registration import webhook_configuration

START = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = RenewalPolicy(
    renew_before=timedelta(days=30), ca_validity=timedelta(days=730), cert_validity=timedelta(days=90)
)
TARGET = CertTarget(
    namespace="kube-system",
    secret="hami-scheduler-tls",
    webhook_config="hami-webhook",
    identity=ServingIdentity.for_service("hami-scheduler", "kube-system"),
    policy=POLICY,
)


@attrs.define
class Clock:
    """A virtual UTC clock."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def _kube(webhooks: int = 1) -> FakeKube:
    kube = FakeKube()
    configuration: MutatingWebhookConfiguration = webhook_configuration(
        "hami-webhook", service={"namespace": "kube-system", "name": "hami-scheduler"}
    )
    configuration["webhooks"] = [
        {**configuration["webhooks"][0], "name": f"w{index}.hami.io"} for index in range(webhooks)
    ]
    kube.create_mutating_webhook_configuration(configuration)
    return kube


def _trusted_cas(kube: FakeKube) -> list[list[bytes]]:
    """Per webhook, the DER of each CA its caBundle holds."""
    webhooks = kube.get_mutating_webhook_configuration("hami-webhook")["webhooks"]
    return [certs.der_certificates(base64.b64decode(w["clientConfig"]["caBundle"])) for w in webhooks]


def _secret_data(kube: FakeKube) -> dict[str, bytes]:
    data = kube.get_secret("kube-system", "hami-scheduler-tls")["data"]
    return {key: base64.b64decode(value) for key, value in data.items()}


def _ca_der(result: SyncResult) -> bytes:
    return certs.der_certificates(result.bundle.ca.cert_pem)[0]


def test_a_first_sync_stores_the_secret_and_sets_every_webhooks_cabundle() -> None:
    kube = _kube(webhooks=2)
    result = CertificateSync(kube, TARGET, clock=Clock()).sync()
    assert (result.action, result.ca_bundle_patched, result.files_written) == ("created", True, False)
    secret = kube.get_secret("kube-system", "hami-scheduler-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert _secret_data(kube) == {
        "tls.crt": result.bundle.serving.cert_pem,
        "tls.key": result.bundle.serving.key_pem,
        "ca.crt": result.bundle.ca.cert_pem,
        "ca.key": result.bundle.ca.key_pem,
    }
    assert _trusted_cas(kube) == [[_ca_der(result)], [_ca_der(result)]]
    assert result.expires == START + timedelta(days=90)
    assert result.renew_at == START + timedelta(days=60)
    assert result.describe().startswith("certificate created (no certificate was stored); expires 2025-04-01")


def test_running_again_changes_nothing() -> None:
    kube = _kube()
    clock = Clock()
    sync = CertificateSync(kube, TARGET, clock=clock)
    sync.sync()
    versions = (
        kube.get_secret("kube-system", "hami-scheduler-tls")["metadata"]["resourceVersion"],
        kube.get_mutating_webhook_configuration("hami-webhook")["metadata"]["resourceVersion"],
    )
    clock.now += timedelta(days=59)
    again = sync.sync()
    assert (again.action, again.ca_bundle_patched) == ("unchanged", False)
    assert again.describe().startswith("certificate is current; expires")
    assert versions == (
        kube.get_secret("kube-system", "hami-scheduler-tls")["metadata"]["resourceVersion"],
        kube.get_mutating_webhook_configuration("hami-webhook")["metadata"]["resourceVersion"],
    )


def test_a_certificate_within_the_margin_is_renewed_and_the_cabundle_stays() -> None:
    kube = _kube()
    clock = Clock()
    sync = CertificateSync(kube, TARGET, clock=clock)
    first = sync.sync()
    clock.now += timedelta(days=61)
    renewed = sync.sync()
    assert (renewed.action, renewed.ca_bundle_patched) == ("renewed", False)
    assert renewed.reason == "the serving certificate expires at 2025-04-01 00:00:00 UTC"
    assert renewed.bundle.ca == first.bundle.ca
    assert _secret_data(kube)["tls.crt"] == renewed.bundle.serving.cert_pem
    assert renewed.expires == clock.now + timedelta(days=90)


def test_a_ca_rotation_trusts_old_and_new_ca_until_the_next_one() -> None:
    kube = _kube()
    clock = Clock()
    sync = CertificateSync(kube, TARGET, clock=clock)
    first = sync.sync()
    clock.now += timedelta(days=701)
    rotated = sync.sync()
    assert (rotated.action, rotated.ca_bundle_patched) == ("renewed", True)
    assert rotated.reason.startswith("the CA certificate expires")
    assert _trusted_cas(kube) == [[_ca_der(rotated), _ca_der(first)]]
    clock.now += timedelta(days=701)
    third = sync.sync()
    assert _trusted_cas(kube) == [[_ca_der(third), _ca_der(rotated)]]


def test_a_cabundle_that_lost_the_ca_is_repaired_without_new_certificates() -> None:
    kube = _kube()
    sync = CertificateSync(kube, TARGET, clock=Clock())
    first = sync.sync()
    configuration = kube.get_mutating_webhook_configuration("hami-webhook")
    webhooks = [
        {**w, "clientConfig": {**w["clientConfig"], "caBundle": "bm90IGEgY2VydA=="}}
        for w in configuration["webhooks"]
    ]
    kube.patch_mutating_webhook_configuration("hami-webhook", {"webhooks": webhooks})
    repaired = sync.sync()
    assert (repaired.action, repaired.ca_bundle_patched) == ("unchanged", True)
    assert _trusted_cas(kube) == [[_ca_der(first)]]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param({}, "the secret lacks ca.crt, ca.key, tls.crt, tls.key", id="empty"),
        pytest.param(
            {"tls.crt": "!!!", "tls.key": "a2V5", "ca.crt": "Y2E=", "ca.key": "a2V5"},
            "the secret holds data that is not base64",
            id="not-base64",
        ),
        pytest.param(
            {key: base64.b64encode(b"junk").decode() for key in ("tls.crt", "tls.key", "ca.crt", "ca.key")},
            "the CA certificate or key is not readable PEM",
            id="junk",
        ),
    ],
)
def test_a_damaged_secret_is_replaced(data: dict[str, str], reason: str) -> None:
    kube = _kube()
    kube.create_secret(
        "kube-system", {"metadata": {"name": "hami-scheduler-tls"}, "type": "kubernetes.io/tls", "data": data}
    )
    result = CertificateSync(kube, TARGET, clock=Clock()).sync()
    assert result.action == "renewed"
    assert result.reason.startswith(reason)
    assert _secret_data(kube)["tls.crt"] == result.bundle.serving.cert_pem


def test_files_are_written_for_the_server_and_only_when_they_change(tmp_path: Path) -> None:
    kube = _kube()
    clock = Clock()
    sync = CertificateSync(kube, attrs.evolve(TARGET, cert_dir=tmp_path / "tls"), clock=clock)
    first = sync.sync()
    assert first.files_written
    assert (tmp_path / "tls" / "tls.crt").read_bytes() == first.bundle.serving.cert_pem
    assert (tmp_path / "tls" / "tls.key").read_bytes() == first.bundle.serving.key_pem
    assert (tmp_path / "tls" / "ca.crt").read_bytes() == first.bundle.ca.cert_pem
    assert (tmp_path / "tls" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert not sync.sync().files_written
    clock.now += timedelta(days=61)
    assert sync.sync().files_written
    assert sorted(path.name for path in (tmp_path / "tls").iterdir()) == ["ca.crt", "tls.crt", "tls.key"]


def test_a_client_pair_is_issued_from_the_ca_kept_and_renewed(tmp_path: Path) -> None:
    """``--client-cert``: kube-scheduler's pair, signed by the CA, reissued near expiry and when the CA changes."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    clock = Clock()
    directory = tmp_path / "tls"
    sync = CertificateSync(
        _kube(), attrs.evolve(TARGET, cert_dir=directory, client_name="kube-scheduler"), clock=clock
    )
    first = sync.sync()
    pair = certs.KeyPair((directory / "client.crt").read_bytes(), (directory / "client.key").read_bytes())
    assert certs.client_problem(first.bundle.ca, pair, clock.now, POLICY.renew_before) == ""
    usage = x509.load_pem_x509_certificate(pair.cert_pem).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert list(usage.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (directory / "client.key").stat().st_mode & 0o777 == 0o600
    assert not sync.sync().files_written
    clock.now += timedelta(days=61)
    assert sync.sync().files_written
    assert (directory / "client.crt").read_bytes() != pair.cert_pem
    other_ca = certs.create_ca(clock.now)
    assert "not signed by the CA" in certs.client_problem(other_ca, pair, clock.now, POLICY.renew_before)


def test_a_missing_webhook_configuration_is_an_error_after_the_secret_is_stored(tmp_path: Path) -> None:
    kube = FakeKube()
    sync = CertificateSync(kube, attrs.evolve(TARGET, cert_dir=tmp_path), clock=Clock())
    with pytest.raises(NotFoundError, match="mutatingwebhookconfiguration hami-webhook not found"):
        sync.sync()
    assert set(_secret_data(kube)) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert (tmp_path / "tls.crt").exists()


def test_without_a_webhook_configuration_name_only_the_secret_is_kept() -> None:
    kube = FakeKube()
    result = CertificateSync(kube, attrs.evolve(TARGET, webhook_config=""), clock=Clock()).sync()
    assert (result.action, result.ca_bundle_patched) == ("created", False)


class RacingKube(FakeKube):
    """Another writer changes the Secret right after each of our first reads."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def get_secret(self, namespace: str, name: str):  # type: ignore[no-untyped-def]
        secret = super().get_secret(namespace, name)
        if self.races:
            self.races -= 1
            super().patch_secret(namespace, name, {"metadata": {"labels": {"touched": str(self.races)}}})
        return secret


def test_a_concurrent_writer_makes_the_sync_start_over() -> None:
    kube = RacingKube(races=2)
    kube.create_secret("kube-system", {"metadata": {"name": "hami-scheduler-tls"}, "data": {}})
    result = CertificateSync(kube, attrs.evolve(TARGET, webhook_config=""), clock=Clock()).sync()
    assert result.action == "renewed"
    assert kube.races == 0
    assert _secret_data(kube)["tls.crt"] == result.bundle.serving.cert_pem


def test_the_loop_renews_before_expiry_without_anyone_rerunning_it() -> None:
    kube = _kube()
    clock = Clock()
    sync = CertificateSync(kube, TARGET, clock=clock)
    results: list[SyncResult] = []
    stop = threading.Event()
    loop = threading.Thread(target=sync.run_forever, args=(0.01, stop), kwargs={"on_result": results.append})
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not results and time.monotonic() < deadline:
            time.sleep(0.01)
        first = _secret_data(kube)["tls.crt"]
        clock.now += timedelta(days=61)
        while _secret_data(kube)["tls.crt"] == first and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join()
    assert _secret_data(kube)["tls.crt"] != first
    assert [result.action for result in results if result.action != "unchanged"] == ["created", "renewed"]


def test_the_loop_survives_failing_syncs() -> None:
    kube = FakeKube()  # no webhook configuration: every sync fails
    stop = threading.Event()
    calls: list[int] = []

    class Counting(CertificateSync):
        def sync(self) -> SyncResult:
            calls.append(1)
            if len(calls) >= 3:
                stop.set()
            return super().sync()

    loop = threading.Thread(target=Counting(kube, TARGET, clock=Clock()).run_forever, args=(0.01, stop))
    loop.start()
    loop.join(timeout=10)
    assert not loop.is_alive()
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("30d", timedelta(days=30), id="days"),
        pytest.param("720h", timedelta(hours=720), id="hours"),
        pytest.param("1h30m", timedelta(minutes=90), id="combined"),
        pytest.param("1.5s", timedelta(seconds=1.5), id="fraction"),
    ],
)
def test_durations_read_like_go_durations_with_days(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "1w", "-1h", "1h 30m"])
def test_a_malformed_duration_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration(text)
