"""A TLS server context that follows its certificate files, so rotation needs no restart.

The serving certificate is renewed by ``hami certs`` (or a mounted Secret that kubelet
refreshes) while the scheduler keeps running. :class:`ReloadingCertificate` hands out one
server ``SSLContext`` whose SNI callback, run on every handshake (also when the client sends no
server name), compares the files' contents with what was last loaded (two small reads, cheap
next to a handshake, and unlike modification times blind to neither in-place rewrites within one
clock tick nor kubelet's symlink swaps) and switches the connection to a freshly loaded context
when they changed. A half-written pair (the
certificate renewed but not yet its key) fails to load and the previous pair keeps serving until
the next handshake finds a consistent one.

With a client CA the context asks every client for a certificate and verifies one that is sent
against that CA (``CERT_OPTIONAL``): kube-apiserver calls the webhook and kubelet probes the health
routes without one, so the server, not the handshake, refuses the extender verbs to a client that
sent none (``docs/security.md``). The CA file is reloaded with the pair.

It reads those files and nothing else.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

from hami_core.errors import ConfigError

log = logging.getLogger(__name__)


def _load(cert_file: Path, key_file: Path, client_ca: Path | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class ReloadingCertificate:
    """Serving TLS from ``cert_file`` and ``key_file``, reloaded when either changes.

    Wrap the listening socket (or each accepted one) with :meth:`context`; every handshake then
    uses the newest pair that loads.

    Args:
        cert_file: PEM certificate chain, leaf first.
        key_file: PEM private key of the leaf.
        client_ca: PEM CA bundle that verifies client certificates; ``None`` asks for none.

    Raises:
        ConfigError: the files cannot be read or do not form a certificate and its key (and CA).
    """

    def __init__(
        self,
        cert_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        client_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        self._cert_file = Path(cert_file)
        self._key_file = Path(key_file)
        self._client_ca = Path(client_ca) if client_ca is not None else None
        self._lock = threading.Lock()
        try:
            self._loaded = self._read_files()
            self._current = self._load()
        except (OSError, ssl.SSLError) as err:
            client = f" and client CA {self._client_ca}" if self._client_ca is not None else ""
            raise ConfigError(
                f"cannot load the serving certificate {self._cert_file} with key {self._key_file}"
                f"{client}: {err}"
            ) from err
        #: How many times a changed pair was loaded (for logs and tests).
        self.reloads = 0
        self._front = self._load()
        self._front.sni_callback = self._on_hello

    @property
    def verifies_clients(self) -> bool:
        """Whether client certificates are verified (a client CA was given)."""
        return self._client_ca is not None

    def _load(self) -> ssl.SSLContext:
        return _load(self._cert_file, self._key_file, self._client_ca)

    def _read_files(self) -> tuple[bytes, ...]:
        files = (self._cert_file, self._key_file, *([self._client_ca] if self._client_ca else []))
        return tuple(path.read_bytes() for path in files)

    def context(self) -> ssl.SSLContext:
        """The server context to wrap sockets with; it is the same object for the whole lifetime."""
        return self._front

    def current(self) -> ssl.SSLContext:
        """The context loaded from the newest readable pair, checking the files first."""
        with self._lock:
            try:
                contents = self._read_files()
            except OSError:
                return self._current
            if contents != self._loaded:
                try:
                    self._current = self._load()
                except (OSError, ssl.SSLError) as err:
                    # Mid-rotation (certificate written, key not yet): keep serving the old pair.
                    log.warning("keeping the previous serving certificate: %s", err)
                    return self._current
                self._loaded = contents
                self.reloads += 1
                log.info("reloaded the serving certificate from %s", self._cert_file)
            return self._current

    def _on_hello(
        self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        sock.context = self.current()
