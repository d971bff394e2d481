"""The network CA and member TLS certificates.

Keys are ECDSA P-256 rather than Ed25519: gRPC's TLS stack does not reliably
accept Ed25519 certificates, while P-256 works everywhere. The member's
identity travels in a SAN URI ``hfp://member/<member_id>`` so the node can
read it off the verified TLS peer certificate.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crypto.errors import CertificateError

__all__ = [
    "MEMBER_ID_PATTERN",
    "MEMBER_URI_PREFIX",
    "IssuedCert",
    "cert_not_after",
    "create_ca",
    "is_valid_member_id",
    "issue_member_cert",
    "member_id_from_cert",
]

MEMBER_URI_PREFIX: Final = "hfp://member/"
MEMBER_ID_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")

# Backdate notBefore a little so a peer whose clock runs slightly behind does
# not reject a certificate issued a moment ago.
_CLOCK_SKEW: Final = timedelta(minutes=5)

_NO_KEY_USAGE: Final = {
    "digital_signature": False,
    "content_commitment": False,
    "key_encipherment": False,
    "data_encipherment": False,
    "key_agreement": False,
    "key_cert_sign": False,
    "crl_sign": False,
    "encipher_only": False,
    "decipher_only": False,
}


@dataclass(frozen=True)
class IssuedCert:
    """A PEM certificate and its unencrypted PKCS#8 PEM private key."""

    cert_pem: bytes
    key_pem: bytes


def is_valid_member_id(member_id: str) -> bool:
    """True iff ``member_id`` matches ``^[a-z0-9][a-z0-9-]{1,62}$``."""
    # fullmatch, not match with "$": "$" would also accept a trailing newline.
    return isinstance(member_id, str) and MEMBER_ID_PATTERN.fullmatch(member_id) is not None


def create_ca(
    common_name: str, *, valid_days: int = 3650, now: datetime | None = None
) -> IssuedCert:
    """Create a self-signed network CA (P-256) that may only sign leaf certs."""
    not_before, not_after = _validity(now, valid_days)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _base_builder(name, name, key.public_key(), not_before, not_after)
        # path_length=0: the CA signs member certs directly, never sub-CAs.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**{**_NO_KEY_USAGE, "key_cert_sign": True, "crl_sign": True}),
            critical=True,
        )
    )
    cert = builder.sign(key, hashes.SHA256())
    return IssuedCert(cert_pem=_cert_to_pem(cert), key_pem=_key_to_pem(key))


def issue_member_cert(
    ca: IssuedCert,
    member_id: str,
    hosts: Sequence[str],
    *,
    valid_days: int = 825,
    now: datetime | None = None,
) -> IssuedCert:
    """Issue a member's TLS certificate, used both as TLS server and client.

    The notAfter is capped at the CA's own notAfter, since a certificate can
    never be valid beyond its issuer.

    Raises:
        CertificateError: invalid member id or host, or an unusable CA.
    """
    if not is_valid_member_id(member_id):
        raise CertificateError(f"invalid member id {member_id!r}")
    ca_cert, ca_key = _load_ca(ca)
    not_before, not_after = _validity(now, valid_days)
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)])
    builder = (
        _base_builder(subject, ca_cert.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**{**_NO_KEY_USAGE, "digital_signature": True}), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_member_san(member_id, hosts), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    return IssuedCert(cert_pem=_cert_to_pem(cert), key_pem=_key_to_pem(key))


def member_id_from_cert(cert_pem: bytes) -> str | None:
    """Return the member id of a certificate, or None if it has no valid one.

    The SAN URI ``hfp://member/<id>`` wins; the subject CN is used only when
    the certificate has no such URI. Ambiguous identities (several different
    member URIs or several CNs) yield None rather than a guess.

    Raises:
        CertificateError: if ``cert_pem`` is not a parsable PEM certificate.
    """
    cert = _load_cert(cert_pem)
    uri_ids = _member_ids_from_san(cert)
    if uri_ids:
        candidates = uri_ids
    else:
        common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        candidates = {str(attribute.value) for attribute in common_names}
    if len(candidates) != 1:
        return None
    (member_id,) = candidates
    return member_id if is_valid_member_id(member_id) else None


def cert_not_after(cert_pem: bytes) -> datetime:
    """Return the certificate's notAfter as an aware UTC datetime.

    Raises:
        CertificateError: if ``cert_pem`` is not a parsable PEM certificate.
    """
    return _load_cert(cert_pem).not_valid_after_utc


def _validity(now: datetime | None, valid_days: int) -> tuple[datetime, datetime]:
    """Compute (notBefore, notAfter) from an aware ``now`` and a lifetime."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        # A naive time is ambiguous; silently assuming local or UTC could
        # shift validity by hours.
        raise CertificateError("now must be a timezone-aware datetime")
    if valid_days < 1:
        raise CertificateError("valid_days must be at least 1")
    now = now.astimezone(UTC)
    return now - _CLOCK_SKEW, now + timedelta(days=valid_days)


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    """Fields every certificate we issue shares, including the SKI."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _member_san(member_id: str, hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    """SAN with the member URI plus each host as an IP or DNS name."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(MEMBER_URI_PREFIX + member_id)]
    for host in dict.fromkeys(hosts):  # dedupe, keep order
        names.append(_host_name(host))
    return x509.SubjectAlternativeName(names)


def _host_name(host: str) -> x509.GeneralName:
    """An IPAddress entry if ``host`` parses as an IP, else a DNSName."""
    if not isinstance(host, str) or not host:
        raise CertificateError(f"invalid host {host!r}")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii() or any(char.isspace() for char in host):
        # DNSName needs the ASCII (A-label) form; IDNA encoding is the
        # caller's job so that what is certified is exactly what was asked.
        raise CertificateError(f"invalid DNS name {host!r}")
    return x509.DNSName(host)


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI from the CA's SKI extension, or computed from its key if absent."""
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = ca_cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CertificateError("CA certificate key is not ECDSA") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _member_ids_from_san(cert: x509.Certificate) -> set[str]:
    """All ids carried in ``hfp://member/`` SAN URIs (empty if none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    except ValueError as exc:  # malformed or duplicate extensions
        raise CertificateError(f"cannot parse certificate extensions: {exc}") from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return {
        uri.removeprefix(MEMBER_URI_PREFIX) for uri in uris if uri.startswith(MEMBER_URI_PREFIX)
    }


def _load_ca(ca: IssuedCert) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Parse the CA cert and key and check they belong together."""
    ca_cert = _load_cert(ca.cert_pem)
    try:
        ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"cannot parse CA private key: {exc}") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError("CA private key is not ECDSA")
    if ca_key.public_key() != ca_cert.public_key():
        raise CertificateError("CA private key does not match the CA certificate")
    if not _is_ca(ca_cert):
        raise CertificateError("CA certificate is not marked as a CA")
    return ca_cert, ca_key


def _is_ca(cert: x509.Certificate) -> bool:
    """True iff the certificate's BasicConstraints say ca=True."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.ca


def _load_cert(cert_pem: bytes) -> x509.Certificate:
    """Parse one PEM certificate, mapping failures to CertificateError."""
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"cannot parse PEM certificate: {exc}") from exc


def _cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
