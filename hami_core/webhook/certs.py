"""The webhook's certificates: a private CA, the serving certificate it signs, and when to renew them;
also the client certificates kube-scheduler presents to the extender (mutual TLS).

kube-apiserver calls the webhook over HTTPS and trusts only the ``caBundle`` of the
MutatingWebhookConfiguration, so hami keeps its own small CA. This module creates the CA and a
serving certificate for the webhook Service's DNS names (and optional extra names and IPs),
reads them back from PEM, and decides whether a stored pair must be renewed: missing, unreadable,
mismatched, not covering the names, or closer to expiry than the renewal margin. Renewal keeps a
healthy CA, so only the serving certificate changes and the ``caBundle`` stays valid.

Keys are ECDSA P-256 (fast to make, accepted by kube-apiserver and Python's ``ssl``). Everything
here is pure apart from key generation's randomness: times come from the caller, so tests use a
virtual clock, and nothing touches files or the API (``certs_sync`` does).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Literal

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from hami_core.errors import ConfigError

#: How long a new CA is valid; it is replaced once it gets within the renewal margin.
DEFAULT_CA_VALIDITY = timedelta(days=3650)
#: How long a new serving certificate is valid (never beyond its CA).
DEFAULT_CERT_VALIDITY = timedelta(days=365)
#: Renew a certificate once less than this much validity is left.
DEFAULT_RENEW_BEFORE = timedelta(days=30)
#: New certificates start this far in the past, so peers with a slightly slow clock accept them.
_BACKDATE = timedelta(minutes=5)
_CA_NAME = "hami-webhook-ca"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@attrs.frozen
class KeyPair:
    """A certificate and its private key, both PEM (the key unencrypted PKCS#8)."""

    cert_pem: bytes
    key_pem: bytes


@attrs.frozen
class CertificateBundle:
    """What the webhook needs: the CA (its certificate becomes ``caBundle``) and the serving pair."""

    ca: KeyPair
    serving: KeyPair


@attrs.frozen
class ServingIdentity:
    """The names the serving certificate must be valid for.

    Args:
        dns_names: DNS subject alternative names; the first is also the common name.
        ip_addresses: IP subject alternative names, e.g. ``127.0.0.1`` for a webhook called by URL.
    """

    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()

    @classmethod
    def for_service(
        cls,
        service: str,
        namespace: str,
        *,
        extra_dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str] = (),
    ) -> ServingIdentity:
        """The identity of Service ``service`` in ``namespace``, as kube-apiserver dials it.

        Raises:
            ConfigError: a name is empty or an IP address is not one.
        """
        if not service or not namespace:
            raise ConfigError("the webhook Service needs a name and a namespace")
        names = [*service_dns_names(service, namespace)]
        names += [name for name in extra_dns_names if name not in names]
        ips = tuple(str(_ip(text)) for text in ip_addresses)
        return cls(dns_names=tuple(names), ip_addresses=ips)


@attrs.frozen
class RenewalPolicy:
    """How long new certificates live and when they are renewed.

    Args:
        renew_before: renew once less than this much validity is left.
        ca_validity: lifetime of a new CA.
        cert_validity: lifetime of a new serving certificate (capped at its CA's expiry).
    """

    renew_before: timedelta = DEFAULT_RENEW_BEFORE
    ca_validity: timedelta = DEFAULT_CA_VALIDITY
    cert_validity: timedelta = DEFAULT_CERT_VALIDITY

    def __attrs_post_init__(self) -> None:
        if self.renew_before < timedelta(0):
            raise ConfigError("the renewal margin must not be negative")
        if self.cert_validity <= self.renew_before or self.ca_validity <= self.renew_before:
            raise ConfigError(
                f"certificates must be valid longer than the renewal margin ({self.renew_before}), "
                "or they would be renewed on every check"
            )


@attrs.frozen
class Renewal:
    """The outcome of :func:`ensure`.

    Args:
        bundle: the bundle to use from now on.
        action: ``created`` (there was none), ``renewed`` or ``unchanged``.
        reason: why a new certificate was made; empty when unchanged.
        ca_rotated: the CA changed too, so ``caBundle`` must trust the new one.
    """

    bundle: CertificateBundle
    action: Literal["created", "renewed", "unchanged"]
    reason: str = ""
    ca_rotated: bool = False


def service_dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """The names a Service is reached by: ``<svc>.<ns>.svc`` (what kube-apiserver verifies) first."""
    return (
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        service,
        f"{service}.{namespace}",
    )


def _ip(text: str) -> IpAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError as err:
        raise ConfigError(f"{text!r} is not an IP address") from err


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    # A CN is at most 64 characters (RFC 5280 ub-common-name); SANs carry the full names.
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def create_ca(now: datetime, validity: timedelta = DEFAULT_CA_VALIDITY) -> KeyPair:
    """A new self-signed CA valid from ``now`` (less a small backdate) for ``validity``."""
    key = _new_key()
    name = _name(_CA_NAME)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_serving_certificate(
    ca: KeyPair, identity: ServingIdentity, now: datetime, validity: timedelta = DEFAULT_CERT_VALIDITY
) -> KeyPair:
    """A serving certificate for ``identity`` signed by ``ca``, never outliving the CA.

    Raises:
        ConfigError: ``ca`` cannot be read, or ``identity`` names nothing.
    """
    if not identity.dns_names and not identity.ip_addresses:
        raise ConfigError("a serving certificate needs at least one DNS name or IP address")
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in identity.dns_names]
    alt_names += [x509.IPAddress(_ip(text)) for text in identity.ip_addresses]
    common_name = identity.dns_names[0] if identity.dns_names else identity.ip_addresses[0]
    return _issue(ca, common_name, ExtendedKeyUsageOID.SERVER_AUTH, now, validity, alt_names)


def issue_client_certificate(
    ca: KeyPair, common_name: str, now: datetime, validity: timedelta = DEFAULT_CERT_VALIDITY
) -> KeyPair:
    """A client certificate (``clientAuth`` only) for ``common_name`` signed by ``ca``: what
    kube-scheduler presents to the extender (its ``tlsConfig`` ``certFile``/``keyFile``).

    Raises:
        ConfigError: ``ca`` cannot be read, or ``common_name`` is empty.
    """
    if not common_name:
        raise ConfigError("a client certificate needs a common name")
    return _issue(ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, now, validity, [])


def _issue(
    ca: KeyPair,
    common_name: str,
    usage: x509.ObjectIdentifier,
    now: datetime,
    validity: timedelta,
    alt_names: list[x509.GeneralName],
) -> KeyPair:
    """A leaf for one ``usage`` signed by ``ca`` (a serving leaf cannot authenticate a client, nor the reverse)."""
    ca_cert, ca_key = _load_pair(ca, "CA")
    key = _new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def create_bundle(
    identity: ServingIdentity, now: datetime, policy: RenewalPolicy | None = None
) -> CertificateBundle:
    """A new CA and a serving certificate for ``identity`` signed by it."""
    policy = policy if policy is not None else RenewalPolicy()
    ca = create_ca(now, policy.ca_validity)
    return CertificateBundle(ca, issue_serving_certificate(ca, identity, now, policy.cert_validity))


def _load_pair(pair: KeyPair, what: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert_pem)
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"the {what} certificate or key is not readable PEM: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigError(f"the {what} key does not belong to its certificate")
    return cert, key


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle such as a ``caBundle``; empty when there is none or it is unreadable."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def der_certificates(pem: bytes) -> list[bytes]:
    """The DER encoding of every certificate in ``pem``, for comparing certificates exactly."""
    return [cert.public_bytes(serialization.Encoding.DER) for cert in load_certificates(pem)]


def not_after(cert_pem: bytes) -> datetime:
    """When the (first) certificate in ``cert_pem`` expires, in UTC.

    Raises:
        ConfigError: ``cert_pem`` holds no readable certificate.
    """
    found = load_certificates(cert_pem)
    if not found:
        raise ConfigError("no readable certificate in the PEM data")
    return found[0].not_valid_after_utc


def _expiry_reason(cert: x509.Certificate, what: str, now: datetime, renew_before: timedelta) -> str:
    if cert.not_valid_before_utc > now + _BACKDATE:
        return f"the {what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    if cert.not_valid_after_utc - now < renew_before:
        return f"the {what} expires at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    return ""


def ca_problem(ca: KeyPair, now: datetime, renew_before: timedelta) -> str:
    """Why ``ca`` can no longer sign serving certificates; empty when it can."""
    try:
        cert, _ = _load_pair(ca, "CA")
    except ConfigError as err:
        return str(err)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "the CA certificate is not marked as a CA"
    if not constraints.ca:
        return "the CA certificate is not marked as a CA"
    return _expiry_reason(cert, "CA certificate", now, renew_before)


def serving_problem(
    bundle: CertificateBundle, identity: ServingIdentity, now: datetime, renew_before: timedelta
) -> str:
    """Why the serving certificate must be replaced; empty when it is fine.

    It must be readable, match its key, be signed by the bundle's CA, cover every name of
    ``identity`` and have more than ``renew_before`` of validity left.
    """
    try:
        cert, _ = _load_pair(bundle.serving, "serving")
        ca_cert = x509.load_pem_x509_certificate(bundle.ca.cert_pem)
    except (ConfigError, ValueError) as err:
        return str(err)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "the serving certificate is not signed by the CA"
    try:
        alt_names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        alt_names = x509.SubjectAlternativeName([])
    have_dns = set(alt_names.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in alt_names.get_values_for_type(x509.IPAddress)}
    missing = [name for name in identity.dns_names if name not in have_dns]
    missing += [ip for ip in identity.ip_addresses if str(_ip(ip)) not in have_ips]
    if missing:
        return f"the serving certificate does not cover {', '.join(missing)}"
    return _expiry_reason(cert, "serving certificate", now, renew_before)


def client_problem(ca: KeyPair, client: KeyPair, now: datetime, renew_before: timedelta) -> str:
    """Why a client pair (``issue_client_certificate``) must be replaced; empty when it is fine.

    It must be readable, match its key, be signed by ``ca`` and have more than ``renew_before`` left.
    """
    try:
        cert, _ = _load_pair(client, "client")
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    except (ConfigError, ValueError) as err:
        return str(err)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "the client certificate is not signed by the CA"
    return _expiry_reason(cert, "client certificate", now, renew_before)


def ensure(
    bundle: CertificateBundle | None, identity: ServingIdentity, now: datetime, policy: RenewalPolicy
) -> Renewal:
    """The bundle to use at ``now``: ``bundle`` itself when healthy, else a renewed one.

    A CA that can still sign (readable, a CA, more than the margin left) is kept, so renewing
    the serving certificate does not change ``caBundle``; otherwise both are replaced.
    """
    if bundle is None:
        return Renewal(
            create_bundle(identity, now, policy), "created", "no certificate was stored", ca_rotated=True
        )
    reason = ca_problem(bundle.ca, now, policy.renew_before)
    if reason:
        return Renewal(create_bundle(identity, now, policy), "renewed", reason, ca_rotated=True)
    reason = serving_problem(bundle, identity, now, policy.renew_before)
    if reason:
        serving = issue_serving_certificate(bundle.ca, identity, now, policy.cert_validity)
        return Renewal(CertificateBundle(bundle.ca, serving), "renewed", reason)
    return Renewal(bundle, "unchanged")


def utc_now() -> datetime:
    """The current time in UTC: the default clock of the certificate code."""
    return datetime.now(UTC)
