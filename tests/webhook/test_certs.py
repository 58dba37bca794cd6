"""The webhook's CA and serving certificate, and the renewal decision under a virtual clock."""

from __future__ import annotations

import ipaddress
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import attrs
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hami_core.errors import ConfigError
from hami_core.webhook import certs
from hami_core.webhook.certs import CertificateBundle
from hami_core.webhook.certs import KeyPair
from hami_core.webhook.certs import RenewalPolicy
from hami_core.webhook.certs import ServingIdentity

NOW = datetime(2025, 1, 1, tzinfo=UTC)
IDENTITY = ServingIdentity.for_service("hami-scheduler", "kube-system", ip_addresses=["127.0.0.1"])
POLICY = RenewalPolicy(
    renew_before=timedelta(days=30), ca_validity=timedelta(days=3650), cert_validity=timedelta(days=365)
)


@pytest.fixture(scope="module")
def bundle() -> CertificateBundle:
    return certs.create_bundle(IDENTITY, NOW, POLICY)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_the_identity_of_a_service_lists_every_name_it_is_dialled_by() -> None:
    assert IDENTITY.dns_names == (
        "hami-scheduler.kube-system.svc",
        "hami-scheduler.kube-system.svc.cluster.local",
        "hami-scheduler",
        "hami-scheduler.kube-system",
    )
    extra = ServingIdentity.for_service("s", "n", extra_dns_names=["webhook.example.com", "s.n.svc"])
    assert extra.dns_names[-1] == "webhook.example.com"
    assert len(extra.dns_names) == 5


@pytest.mark.parametrize(
    ("service", "namespace", "ips"),
    [
        pytest.param("", "ns", [], id="no-service"),
        pytest.param("svc", "", [], id="no-namespace"),
        pytest.param("svc", "ns", ["localhost"], id="not-an-ip"),
    ],
)
def test_a_bad_identity_is_a_config_error(service: str, namespace: str, ips: list[str]) -> None:
    with pytest.raises(ConfigError):
        ServingIdentity.for_service(service, namespace, ip_addresses=ips)


def test_the_serving_certificate_covers_the_names_and_is_signed_by_the_ca(bundle: CertificateBundle) -> None:
    ca, serving = _cert(bundle.ca.cert_pem), _cert(bundle.serving.cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == list(IDENTITY.dns_names)
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert serving.not_valid_before_utc < NOW < serving.not_valid_after_utc == NOW + timedelta(days=365)
    assert certs.not_after(bundle.serving.cert_pem) == NOW + timedelta(days=365)


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    ca = certs.create_ca(NOW, timedelta(days=40))
    serving = certs.issue_serving_certificate(ca, IDENTITY, NOW, timedelta(days=365))
    assert _cert(serving.cert_pem).not_valid_after_utc == _cert(ca.cert_pem).not_valid_after_utc


def test_healthy_certificates_are_kept(bundle: CertificateBundle) -> None:
    later = NOW + timedelta(days=300)
    assert certs.ensure(bundle, IDENTITY, later, POLICY) == certs.Renewal(bundle, "unchanged")


def test_nothing_stored_creates_a_ca_and_a_serving_certificate() -> None:
    renewal = certs.ensure(None, IDENTITY, NOW, POLICY)
    assert (renewal.action, renewal.reason, renewal.ca_rotated) == (
        "created",
        "no certificate was stored",
        True,
    )
    assert certs.serving_problem(renewal.bundle, IDENTITY, NOW, POLICY.renew_before) == ""


def test_a_serving_certificate_near_expiry_is_renewed_keeping_the_ca(bundle: CertificateBundle) -> None:
    near = NOW + timedelta(days=336)
    renewal = certs.ensure(bundle, IDENTITY, near, POLICY)
    assert renewal.action == "renewed"
    assert renewal.reason == "the serving certificate expires at 2026-01-01 00:00:00 UTC"
    assert not renewal.ca_rotated
    assert renewal.bundle.ca == bundle.ca
    assert _cert(renewal.bundle.serving.cert_pem).not_valid_after_utc == near + timedelta(days=365)


def test_a_ca_near_expiry_is_replaced_with_everything_else(bundle: CertificateBundle) -> None:
    near = NOW + timedelta(days=3640)
    renewal = certs.ensure(bundle, IDENTITY, near, POLICY)
    assert (renewal.action, renewal.ca_rotated) == ("renewed", True)
    assert renewal.reason.startswith("the CA certificate expires at 2034-12-30")
    assert renewal.bundle.ca != bundle.ca
    assert certs.serving_problem(renewal.bundle, IDENTITY, near, POLICY.renew_before) == ""


def test_new_names_renew_the_serving_certificate(bundle: CertificateBundle) -> None:
    wider = ServingIdentity.for_service(
        "hami-scheduler", "kube-system", ip_addresses=["127.0.0.1", "10.0.0.7"]
    )
    renewal = certs.ensure(bundle, wider, NOW, POLICY)
    assert (renewal.action, renewal.reason) == ("renewed", "the serving certificate does not cover 10.0.0.7")


def test_a_clock_set_back_before_the_certificate_renews_it(bundle: CertificateBundle) -> None:
    renewal = certs.ensure(bundle, IDENTITY, NOW - timedelta(days=2), POLICY)
    assert renewal.action == "renewed"
    assert "is not valid before" in renewal.reason


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(
            lambda b: attrs.evolve(b, serving=KeyPair(b.serving.cert_pem, b.ca.key_pem)),
            "the serving key does not belong to its certificate",
            id="wrong-serving-key",
        ),
        pytest.param(
            lambda b: attrs.evolve(b, serving=KeyPair(b"junk", b.serving.key_pem)),
            "the serving certificate or key is not readable PEM",
            id="unreadable-serving",
        ),
        pytest.param(
            lambda b: attrs.evolve(
                b, serving=certs.issue_serving_certificate(certs.create_ca(NOW), IDENTITY, NOW)
            ),
            "the serving certificate is not signed by the CA",
            id="other-ca",
        ),
    ],
)
def test_a_damaged_serving_pair_is_reissued_by_the_same_ca(
    bundle: CertificateBundle, damage: object, reason: str
) -> None:
    damaged = damage(bundle)  # type: ignore[operator]
    renewal = certs.ensure(damaged, IDENTITY, NOW, POLICY)
    assert renewal.action == "renewed"
    assert renewal.reason.startswith(reason)
    assert renewal.bundle.ca == bundle.ca
    assert certs.serving_problem(renewal.bundle, IDENTITY, NOW, POLICY.renew_before) == ""


@pytest.mark.parametrize(
    ("ca", "reason"),
    [
        pytest.param(
            KeyPair(b"junk", b"junk"), "the CA certificate or key is not readable PEM", id="unreadable"
        ),
        pytest.param(None, "the CA certificate is not marked as a CA", id="not-a-ca"),
    ],
)
def test_a_damaged_ca_replaces_everything(bundle: CertificateBundle, ca: KeyPair | None, reason: str) -> None:
    damaged = attrs.evolve(bundle, ca=ca if ca is not None else bundle.serving)
    renewal = certs.ensure(damaged, IDENTITY, NOW, POLICY)
    assert (renewal.action, renewal.ca_rotated) == ("renewed", True)
    assert renewal.reason.startswith(reason)


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({"renew_before": timedelta(days=-1)}, id="negative-margin"),
        pytest.param({"cert_validity": timedelta(days=30)}, id="cert-not-longer-than-margin"),
        pytest.param({"ca_validity": timedelta(days=10)}, id="ca-shorter-than-margin"),
    ],
)
def test_a_policy_that_would_renew_on_every_check_is_refused(policy: dict[str, timedelta]) -> None:
    with pytest.raises(ConfigError):
        RenewalPolicy(**policy)


def test_unreadable_pem_holds_no_certificates() -> None:
    assert certs.load_certificates(b"junk") == []
    assert certs.der_certificates(b"") == []
    with pytest.raises(ConfigError, match="no readable certificate"):
        certs.not_after(b"junk")
