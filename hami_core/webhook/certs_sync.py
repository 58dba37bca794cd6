"""Keeping the webhook's certificates current in the cluster: the Secret, the ``caBundle`` and local files.

:class:`CertificateSync` is what ``hami certs`` runs. One :meth:`~CertificateSync.sync` reads the
Secret, renews what :func:`hami_core.webhook.certs.ensure` says must be renewed, makes every webhook
of the MutatingWebhookConfiguration trust the current CA, stores the Secret and, optionally, writes
``tls.crt`` / ``tls.key`` / ``ca.crt`` for the server (atomically, so a reloading server never
reads half a file), and with a client name ``client.crt`` / ``client.key``: a client certificate
signed by the same CA, which kube-scheduler presents to the extender (``docs/security.md``). The
client pair is local to the pod (each replica issues its own; the server trusts the CA, not a
certificate), renewed like the serving one and when the CA changes. Running it again changes nothing while the certificates are healthy.
:meth:`~CertificateSync.run_forever` repeats it, so certificates renew before they expire without
anyone rerunning a command (DESIGN.md section 9).

When the CA itself is replaced, ``caBundle`` is patched *before* the Secret, to trust both the new
and the old CA: kube-apiserver keeps accepting the running server's old certificate until the server
picks up the new one. Writes carry the read ``resourceVersion``; a concurrent writer makes the sync
start over from a fresh read. Only :class:`~hami_core.kube.client.KubeClient` calls, so unit tests
use ``FakeKube``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Literal

import attrs

from hami_core.errors import ConfigError
from hami_core.errors import ConflictError
from hami_core.errors import HamiError
from hami_core.errors import NotFoundError
from hami_core.kube.client import KubeClient
from hami_core.kube.objects import MutatingWebhook
from hami_core.kube.objects import Secret
from hami_core.looping import Loop
from hami_core.webhook import certs
from hami_core.webhook.certs import CertificateBundle
from hami_core.webhook.certs import KeyPair
from hami_core.webhook.certs import RenewalPolicy
from hami_core.webhook.certs import ServingIdentity

log = logging.getLogger(__name__)

#: Secret keys: the serving pair under the ``kubernetes.io/tls`` names, the CA beside it.
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
#: Files of the client pair in ``cert_dir`` (never in the Secret).
CLIENT_CERT = "client.crt"
CLIENT_KEY = "client.key"
SECRET_TYPE = "kubernetes.io/tls"
_MANAGED_BY = {"app.kubernetes.io/managed-by": "hami-certs"}
_ATTEMPTS = 5
#: After a failed sync the loop retries this soon (or sooner, at its interval).
_RETRY_AFTER = 30.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> timedelta:
    """A duration such as ``30d``, ``720h``, ``1h30m`` or ``45s``.

    Raises:
        ConfigError: ``text`` is not such a duration.
    """
    compact = text.strip()
    parts = _DURATION.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ConfigError(f"{text!r} is not a duration such as 30d, 720h, 1h30m or 45s")
    return timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


@attrs.frozen
class CertTarget:
    """Where the webhook's certificates live.

    Args:
        namespace: namespace of the Service and the Secret.
        secret: the Secret holding the CA and the serving pair.
        webhook_config: the MutatingWebhookConfiguration whose ``caBundle`` to keep; empty skips it.
        identity: names the serving certificate must cover (see ``ServingIdentity.for_service``).
        policy: lifetimes and renewal margin.
        cert_dir: also write ``tls.crt``, ``tls.key`` and ``ca.crt`` here, for the server.
        client_name: also write a client pair for this common name into ``cert_dir``; empty for none.
    """

    namespace: str
    secret: str
    webhook_config: str
    identity: ServingIdentity
    policy: RenewalPolicy = attrs.field(factory=RenewalPolicy)
    cert_dir: Path | None = None
    client_name: str = ""


@attrs.frozen
class SyncResult:
    """What one sync did.

    Args:
        action: ``created``, ``renewed`` or ``unchanged``.
        reason: why certificates were made; empty when unchanged.
        expires: when the serving certificate expires.
        renew_at: when it will be renewed.
        ca_bundle_patched: the webhook configuration was changed to trust the current CA.
        files_written: files in ``cert_dir`` were (re)written.
        bundle: the certificates now stored.
    """

    action: Literal["created", "renewed", "unchanged"]
    reason: str
    expires: datetime
    renew_at: datetime
    ca_bundle_patched: bool
    files_written: bool
    bundle: CertificateBundle = attrs.field(repr=False)

    def describe(self) -> str:
        """One line for logs and the CLI."""
        what = {"created": "created", "renewed": "renewed", "unchanged": "is current"}[self.action]
        line = f"certificate {what}"
        if self.reason:
            line += f" ({self.reason})"
        line += f"; expires {self.expires:%Y-%m-%d %H:%M:%S} UTC, renews after {self.renew_at:%Y-%m-%d %H:%M:%S} UTC"
        if self.ca_bundle_patched:
            line += "; caBundle updated"
        if self.files_written:
            line += "; files written"
        return line


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle_from_secret(secret: Secret | None) -> tuple[CertificateBundle | None, str]:
    """The stored bundle, or ``None`` and what is wrong with the Secret (empty when there is none)."""
    if secret is None:
        return None, ""
    data = secret.get("data") or {}
    missing = [key for key in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY) if not data.get(key)]
    if missing:
        return None, f"secret lacks {', '.join(missing)}"
    try:
        parts = {
            key: base64.b64decode(data[key], validate=True) for key in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)
        }
    except (ValueError, binascii.Error, TypeError):
        return None, "secret holds data that is not base64"
    bundle = CertificateBundle(
        KeyPair(parts[CA_CERT], parts[CA_KEY]), KeyPair(parts[TLS_CERT], parts[TLS_KEY])
    )
    return bundle, ""


def _secret_data(bundle: CertificateBundle) -> dict[str, str]:
    return {
        TLS_CERT: _b64(bundle.serving.cert_pem),
        TLS_KEY: _b64(bundle.serving.key_pem),
        CA_CERT: _b64(bundle.ca.cert_pem),
        CA_KEY: _b64(bundle.ca.key_pem),
    }


def _trusted(ca_bundle: object) -> list[bytes]:
    """DER of every certificate in a ``caBundle`` field (base64 PEM); empty when unreadable."""
    if not isinstance(ca_bundle, str) or not ca_bundle:
        return []
    try:
        pem = base64.b64decode(ca_bundle, validate=True)
    except (ValueError, binascii.Error):
        return []
    return certs.der_certificates(pem)


def _write_atomically(path: Path, data: bytes, mode: int) -> bool:
    """Replace ``path`` with ``data`` in one rename; returns whether it changed."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


class CertificateSync:
    """Creates, stores and renews the webhook's certificates through a ``KubeClient``.

    Args:
        kube: the API.
        target: where the certificates live and for which names.
        clock: the current UTC time; tests pass a virtual clock.
    """

    def __init__(
        self, kube: KubeClient, target: CertTarget, *, clock: Callable[[], datetime] = certs.utc_now
    ) -> None:
        self._kube = kube
        self._target = target
        self._clock = clock

    def sync(self) -> SyncResult:
        """Make the Secret, ``caBundle`` and files hold healthy certificates; idempotent.

        Raises:
            NotFoundError: the webhook configuration does not exist (the Secret and files are
                still written, so the server can start).
            ConflictError: other writers kept changing the objects.
            KubeError: an API call failed.
        """
        for _ in range(_ATTEMPTS):
            try:
                return self._sync_once()
            except ConflictError as err:
                log.info("certificate objects changed while syncing, starting over: %s", err)
        raise ConflictError(
            f"secret {self._target.namespace}/{self._target.secret} or webhook configuration "
            f"{self._target.webhook_config} kept changing during {_ATTEMPTS} attempts; try again"
        )

    def _sync_once(self) -> SyncResult:
        target = self._target
        try:
            secret: Secret | None = self._kube.get_secret(target.namespace, target.secret)
        except NotFoundError:
            secret = None
        stored, damage = _bundle_from_secret(secret)
        now = self._clock()
        renewal = certs.ensure(stored, target.identity, now, target.policy)
        if damage:
            renewal = attrs.evolve(renewal, action="renewed", reason=f"the {damage}")
        bundle = renewal.bundle
        previous_ca = stored.ca.cert_pem if renewal.ca_rotated and stored is not None else b""
        missing_config: NotFoundError | None = None
        patched = False
        try:
            patched = self._trust(bundle.ca.cert_pem, previous_ca, now)
        except NotFoundError as err:
            missing_config = err
        if renewal.action != "unchanged":
            self._store(secret, bundle)
        written = self._write_files(bundle)
        if missing_config is not None:
            raise NotFoundError(
                f"mutatingwebhookconfiguration {target.webhook_config} not found, so its caBundle cannot be "
                "set (the Secret is stored); create it (install the chart) or pass an empty --webhook-config",
                status=404,
                reason="NotFound",
            ) from missing_config
        expires = certs.not_after(bundle.serving.cert_pem)
        if renewal.action != "unchanged":
            log.info("webhook certificate %s: %s", renewal.action, renewal.reason)
        return SyncResult(
            action=renewal.action,
            reason=renewal.reason,
            expires=expires,
            renew_at=expires - target.policy.renew_before,
            ca_bundle_patched=patched,
            files_written=written,
            bundle=bundle,
        )

    def _store(self, secret: Secret | None, bundle: CertificateBundle) -> None:
        target = self._target
        data = _secret_data(bundle)
        if secret is None:
            self._kube.create_secret(
                target.namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": target.secret,
                        "namespace": target.namespace,
                        "labels": dict(_MANAGED_BY),
                    },
                    "type": SECRET_TYPE,
                    "data": data,
                },
            )
            return
        version = secret.get("metadata", {}).get("resourceVersion", "")
        self._kube.patch_secret(target.namespace, target.secret, {"data": data}, resource_version=version)

    def _trust(self, ca_pem: bytes, previous_ca_pem: bytes, now: datetime) -> bool:
        """Make every webhook of the configuration trust ``ca_pem``; returns whether it patched.

        A webhook that already trusts it is left as is. Otherwise its ``caBundle`` becomes the CA
        plus ``previous_ca_pem`` when that is still valid (a CA rotation in progress).
        """
        name = self._target.webhook_config
        if not name:
            return False
        wanted = certs.der_certificates(ca_pem)[:1]
        if not wanted:
            raise ConfigError("the CA certificate to trust is not readable PEM")
        bundle = ca_pem
        old = certs.load_certificates(previous_ca_pem)
        if old and old[0].not_valid_after_utc > now and certs.der_certificates(previous_ca_pem)[:1] != wanted:
            bundle = ca_pem.rstrip(b"\n") + b"\n" + previous_ca_pem
        configuration = self._kube.get_mutating_webhook_configuration(name)
        webhooks: list[MutatingWebhook] = list(configuration.get("webhooks") or [])
        changed = False
        for index, webhook in enumerate(webhooks):
            client_config = webhook.get("clientConfig") or {}
            if wanted[0] in _trusted(client_config.get("caBundle")):
                continue
            webhooks[index] = {**webhook, "clientConfig": {**client_config, "caBundle": _b64(bundle)}}
            changed = True
        if not changed:
            return False
        version = configuration.get("metadata", {}).get("resourceVersion", "")
        self._kube.patch_mutating_webhook_configuration(
            name, {"webhooks": webhooks}, resource_version=version
        )
        log.info("mutatingwebhookconfiguration %s now trusts the current CA", name)
        return True

    def _write_files(self, bundle: CertificateBundle) -> bool:
        directory = self._target.cert_dir
        if directory is None:
            return False
        directory.mkdir(parents=True, exist_ok=True)
        # Key before certificate: a reloading server that sees a new key with the old certificate
        # fails to load the pair and keeps serving until the certificate follows.
        changed = _write_atomically(directory / TLS_KEY, bundle.serving.key_pem, 0o600)
        changed |= _write_atomically(directory / TLS_CERT, bundle.serving.cert_pem, 0o644)
        changed |= _write_atomically(directory / CA_CERT, bundle.ca.cert_pem, 0o644)
        if self._target.client_name:
            changed |= self._write_client(directory, bundle.ca)
        return changed

    def _write_client(self, directory: Path, ca: KeyPair) -> bool:
        """Issue a client pair into ``directory`` unless the one there is still good for ``ca``."""
        now = self._clock()
        try:
            present = KeyPair((directory / CLIENT_CERT).read_bytes(), (directory / CLIENT_KEY).read_bytes())
        except OSError:
            present = KeyPair(b"", b"")
        reason = certs.client_problem(ca, present, now, self._target.policy.renew_before)
        if not reason:
            return False
        client = certs.issue_client_certificate(
            ca, self._target.client_name, now, self._target.policy.cert_validity
        )
        _write_atomically(directory / CLIENT_KEY, client.key_pem, 0o600)
        _write_atomically(directory / CLIENT_CERT, client.cert_pem, 0o644)
        log.info("client certificate for %s issued: %s", self._target.client_name, reason)
        return True

    def run_forever(
        self,
        interval: float,
        stop: threading.Event,
        *,
        on_result: Callable[[SyncResult], None] | None = None,
    ) -> None:
        """Sync now and then every ``interval`` seconds (sooner when a renewal falls due) until ``stop``.

        A failed sync is logged and retried after at most 30 seconds; it never ends the loop.

        Args:
            interval: seconds between checks.
            stop: set it to end the loop.
            on_result: called with each successful sync's result.
        """
        retry = min(interval, _RETRY_AFTER)

        def step() -> float:
            wait = retry
            try:
                result = self.sync()
            except HamiError as err:
                log.warning("syncing the webhook certificate failed, retrying: %s", err)
            else:
                if on_result is not None:
                    on_result(result)
                due = (result.renew_at - self._clock()).total_seconds()
                wait = min(interval, max(due, 0.0) + 1.0)
            if stop.is_set():
                loop.request_stop()  # no further sync once the caller asked to stop
            return wait

        loop = Loop("syncing the webhook certificate", step, retry=retry, max_retry=_RETRY_AFTER, log=log)
        loop.start()
        stop.wait()
        loop.stop()
