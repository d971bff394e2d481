"""The node's key material read from files, checked before use, reloadable.

The TLS certificate and key are handed to gRPC through a certificate
fetcher, which gRPC consults before each new TLS handshake: a reloaded
certificate is used for every connection made after the reload, while
connections (and the calls on them) opened before keep the certificate they
were made with. A file that does not load, or a certificate that does not
match its key, is refused and the material in use stays.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crypto.errors import CryptoError
from crypto.keys import SigningKey
from federation.node.config import TlsConfig
from federation.runtime.clock import utc_now
from peers.channel import ClientIdentity

log = structlog.get_logger(__name__)


class MaterialError(ValueError):
    """A key or certificate file that cannot be used; the message says why."""


def load_signing_keys(paths: Sequence[Path]) -> list[SigningKey]:
    """Every configured signing key, or MaterialError naming the bad file."""
    keys = []
    for path in paths:
        try:
            keys.append(SigningKey.load(path))
        except (OSError, CryptoError) as exc:
            raise MaterialError(f"signing key {path}: {exc}") from exc
    return keys


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """A certificate, its key and the CA that client certificates must chain to."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes
    serial: int
    not_after: datetime

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """The material as gRPC wants it."""
        return grpc.ssl_server_certificate_configuration(
            [(self.key_pem, self.cert_pem)], root_certificates=self.ca_pem
        )


def read_tls(config: TlsConfig) -> TlsMaterial:
    """Read and check the TLS files: parseable, key matching, not yet expired."""
    try:
        key_pem, cert_pem, ca_pem = (
            p.read_bytes() for p in (config.key, config.cert, config.ca_cert)
        )
    except OSError as exc:
        raise MaterialError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise MaterialError(f"TLS files do not parse: {exc}") from exc
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise MaterialError(f"{config.key} is not the key of the certificate {config.cert}")
    if cert.not_valid_after_utc <= utc_now():
        raise MaterialError(f"certificate {config.cert} expired {cert.not_valid_after_utc}")
    return TlsMaterial(key_pem, cert_pem, ca_pem, cert.serial_number, cert.not_valid_after_utc)


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class ServerTls:
    """The server's TLS material, swapped on reload for the next handshakes."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self.current = read_tls(config)
        #: Material loaded since gRPC last asked; None when nothing changed.
        self._pending: TlsMaterial | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials requiring a client certificate, reloadable."""
        return grpc.dynamic_ssl_server_credentials(
            self.current.configuration(),
            self._fetch,  # type: ignore[arg-type]  # the stubs forget that None means "no change"
            require_client_authentication=True,
        )

    def client_identity(self) -> ClientIdentity:
        """The same material as a client presents it to peers."""
        current = self.current
        return ClientIdentity(current.ca_pem, current.cert_pem, current.key_pem)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before every new handshake: answer quickly, and
        # build a new configuration only when the material changed.
        with self._lock:
            pending, self._pending = self._pending, None
        return pending.configuration() if pending else None

    def reload(self) -> bool:
        """Read the files again; True when new material was taken."""
        try:
            fresh = read_tls(self._config)
        except MaterialError as exc:
            log.error("new TLS material refused; the old stays in use", reason=str(exc))
            return False
        if fresh == self.current:
            return False
        with self._lock:
            self.current = self._pending = fresh
        log.info(
            "TLS certificate reloaded",
            serial=f"{fresh.serial:x}",
            not_after=fresh.not_after.isoformat(),
        )
        return True
