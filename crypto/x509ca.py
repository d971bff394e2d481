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
    "CsrIdentity",
    "IssuedCert",
    "cert_not_after",
    "create_ca",
    "create_member_csr",
    "is_valid_member_id",
    "issue_cert_for_csr",
    "issue_member_cert",
    "member_id_from_cert",
    "read_member_csr",
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
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _sign_member_cert(ca, member_id, key.public_key(), hosts, valid_days, now)
    return IssuedCert(cert_pem=cert_pem, key_pem=_key_to_pem(key))


def create_member_csr(member_id: str, hosts: Sequence[str]) -> IssuedCert:
    """A new P-256 TLS key and a CSR naming ``member_id`` (CN and SAN URI) and ``hosts``.

    The returned ``cert_pem`` holds the CSR (PEM); ``key_pem`` the private key.

    Raises:
        CertificateError: invalid member id or host.
    """
    if not is_valid_member_id(member_id):
        raise CertificateError(f"invalid member id {member_id!r}")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)]))
        .add_extension(_member_san(member_id, hosts), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCert(
        cert_pem=csr.public_bytes(serialization.Encoding.PEM), key_pem=_key_to_pem(key)
    )


@dataclass(frozen=True)
class CsrIdentity:
    """What a verified CSR asks for: a member id and the hosts of its SAN."""

    member_id: str
    hosts: tuple[str, ...]


def read_member_csr(csr_pem: bytes) -> CsrIdentity:
    """Parse a CSR, check its self-signature and return the identity it asks for.

    Raises:
        CertificateError: unparsable, badly signed, not P-256, or without one
            valid member id (CN and SAN URI must agree when both are present).
    """
    csr = _load_csr(csr_pem)
    uri_ids = _member_ids_from_san(csr)
    common_names = {str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    candidates = uri_ids | common_names
    if len(candidates) != 1:
        raise CertificateError(f"CSR names {len(candidates)} member ids, expected exactly one")
    (member_id,) = candidates
    if not is_valid_member_id(member_id):
        raise CertificateError(f"CSR member id {member_id!r} is malformed")
    return CsrIdentity(member_id, _san_hosts(csr))


def issue_cert_for_csr(
    ca: IssuedCert,
    csr_pem: bytes,
    member_id: str,
    hosts: Sequence[str],
    *,
    valid_days: int = 825,
    now: datetime | None = None,
) -> bytes:
    """Issue a member certificate (PEM) for the public key of a verified CSR.

    The caller decides ``member_id`` and ``hosts`` (see :func:`read_member_csr`);
    nothing else in the CSR is copied into the certificate.
    """
    public_key = _load_csr(csr_pem).public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("CSR key is not ECDSA")
    return _sign_member_cert(ca, member_id, public_key, hosts, valid_days, now)


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and check its self-signature."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"cannot parse PEM certificate request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CertificateError("certificate request signature does not verify")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise CertificateError("certificate request key is not ECDSA P-256")
    return csr


def _san_hosts(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    """The DNS names and IP addresses of a CSR's SAN, in order."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return (*ips, *san.get_values_for_type(x509.DNSName))


def _sign_member_cert(
    ca: IssuedCert,
    member_id: str,
    public_key: ec.EllipticCurvePublicKey,
    hosts: Sequence[str],
    valid_days: int,
    now: datetime | None,
) -> bytes:
    """The member certificate for ``public_key``, signed by the CA (PEM)."""
    if not is_valid_member_id(member_id):
        raise CertificateError(f"invalid member id {member_id!r}")
    ca_cert, ca_key = _load_ca(ca)
    not_before, not_after = _validity(now, valid_days)
    not_after = min(not_after, ca_cert.not_valid_after_utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)])
    builder = (
        _base_builder(subject, ca_cert.subject, public_key, not_before, not_after)
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
    return _cert_to_pem(builder.sign(ca_key, hashes.SHA256()))


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


def _member_ids_from_san(cert: x509.Certificate | x509.CertificateSigningRequest) -> set[str]:
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
