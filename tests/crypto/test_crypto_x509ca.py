"""Tests for crypto.x509ca: the network CA and member TLS certificates."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crypto import CertificateError
from crypto.x509ca import (
    MEMBER_URI_PREFIX,
    IssuedCert,
    cert_not_after,
    create_ca,
    issue_member_cert,
    member_id_from_cert,
)

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> IssuedCert:
    return create_ca("HFP Test Network CA", now=NOW)


@pytest.fixture(scope="module")
def member(ca: IssuedCert) -> IssuedCert:
    return issue_member_cert(ca, "hotline-nl", ["127.0.0.1", "localhost", "::1"], now=NOW)


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_extensions(ca: IssuedCert) -> None:
    cert = _load(ca.cert_pem)
    assert cert.subject == cert.issuer
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(cert)


def test_ca_key_is_unencrypted_pkcs8(ca: IssuedCert) -> None:
    assert ca.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


def test_member_cert_verifies_against_ca(ca: IssuedCert, member: IssuedCert) -> None:
    _load(member.cert_pem).verify_directly_issued_by(_load(ca.cert_pem))


def test_member_cert_not_signed_by_other_ca(member: IssuedCert) -> None:
    other = _load(create_ca("HFP Test Network CA", now=NOW).cert_pem)
    with pytest.raises(InvalidSignature):
        _load(member.cert_pem).verify_directly_issued_by(other)


def test_member_id_round_trip(member: IssuedCert) -> None:
    assert member_id_from_cert(member.cert_pem) == "hotline-nl"


def test_member_cert_san(member: IssuedCert) -> None:
    san = _load(member.cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        MEMBER_URI_PREFIX + "hotline-nl"
    ]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]


def test_member_cert_extensions(ca: IssuedCert, member: IssuedCert) -> None:
    cert = _load(member.cert_pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == ["hotline-nl"]
    assert cert.issuer == _load(ca.cert_pem).subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = _load(ca.cert_pem).extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ca_ski.value.digest
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"


def test_member_key_matches_cert(member: IssuedCert) -> None:
    key = serialization.load_pem_private_key(member.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == _load(member.cert_pem).public_key()


def test_validity_window(ca: IssuedCert, member: IssuedCert) -> None:
    assert cert_not_after(ca.cert_pem) == NOW + timedelta(days=3650)
    assert cert_not_after(member.cert_pem) == NOW + timedelta(days=825)
    assert cert_not_after(member.cert_pem).tzinfo is not None
    assert _load(member.cert_pem).not_valid_before_utc <= NOW


def test_member_validity_capped_at_ca_expiry() -> None:
    short_ca = create_ca("short", valid_days=10, now=NOW)
    member = issue_member_cert(short_ca, "hotline-be", [], now=NOW)
    assert cert_not_after(member.cert_pem) == cert_not_after(short_ca.cert_pem)


def test_naive_now_is_rejected(ca: IssuedCert) -> None:
    with pytest.raises(CertificateError):
        create_ca("x", now=datetime(2030, 1, 1))
    with pytest.raises(CertificateError):
        issue_member_cert(ca, "hotline-nl", [], now=datetime(2030, 1, 1))


@pytest.mark.parametrize(
    "member_id",
    [
        "",
        "a",
        "-hotline",
        "Hotline",
        "hotline_nl",
        "hotline.nl",
        "hotline nl",
        "hotline-nl\n",
        "h" * 64,
        "hotl\u0131ne",
        "hotline/../x",
    ],
)
def test_issue_rejects_invalid_member_id(ca: IssuedCert, member_id: str) -> None:
    with pytest.raises(CertificateError):
        issue_member_cert(ca, member_id, [], now=NOW)


@pytest.mark.parametrize("member_id", ["ab", "0x", "a-", "h" * 63, "police-nl-01"])
def test_issue_accepts_valid_member_id(ca: IssuedCert, member_id: str) -> None:
    cert = issue_member_cert(ca, member_id, [], now=NOW)
    assert member_id_from_cert(cert.cert_pem) == member_id


@pytest.mark.parametrize("host", ["", "bad host", "h\u00f6st.example"])
def test_issue_rejects_invalid_host(ca: IssuedCert, host: str) -> None:
    with pytest.raises(CertificateError):
        issue_member_cert(ca, "hotline-nl", [host], now=NOW)


def test_issue_rejects_leaf_as_ca(member: IssuedCert) -> None:
    with pytest.raises(CertificateError, match="not marked as a CA"):
        issue_member_cert(member, "hotline-de", [], now=NOW)


def test_issue_rejects_mismatched_ca_key(ca: IssuedCert, member: IssuedCert) -> None:
    mixed = IssuedCert(cert_pem=ca.cert_pem, key_pem=member.key_pem)
    with pytest.raises(CertificateError, match="does not match"):
        issue_member_cert(mixed, "hotline-de", [], now=NOW)


def _custom_cert(
    common_names: list[str], uris: list[str], dns_names: list[str] | None = None
) -> bytes:
    """A self-signed certificate with arbitrary CN attributes and SAN URIs."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    general_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    general_names += [x509.DNSName(d) for d in dns_names or []]
    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("common_names", "uris", "expected"),
    [
        pytest.param(["hotline-cn"], [], "hotline-cn", id="cn-only"),
        pytest.param([], ["hfp://member/hotline-uri"], "hotline-uri", id="uri-only"),
        pytest.param(["hotline-cn"], ["hfp://member/hotline-uri"], "hotline-uri", id="uri-wins"),
        pytest.param([], [], None, id="neither"),
        pytest.param(["Not Valid"], [], None, id="invalid-cn"),
        pytest.param(["hotline-cn"], ["hfp://member/BAD"], None, id="invalid-uri-no-cn-fallback"),
        pytest.param([], ["hfp://member/a/b"], None, id="uri-with-path"),
        pytest.param([], ["hfp://member/"], None, id="empty-uri-id"),
        pytest.param(["hotline-cn"], ["https://example.com/x"], "hotline-cn", id="foreign-uri"),
        pytest.param(
            [], ["hfp://member/hotline-a", "hfp://member/hotline-b"], None, id="two-member-uris"
        ),
        pytest.param(
            [], ["hfp://member/hotline-a", "hfp://member/hotline-a"], "hotline-a", id="same-uri-2x"
        ),
        pytest.param(["hotline-a", "hotline-b"], [], None, id="two-cns"),
        pytest.param([], ["HFP://member/hotline-a"], None, id="prefix-case"),
    ],
)
def test_member_id_from_cert_cases(
    common_names: list[str], uris: list[str], expected: str | None
) -> None:
    assert member_id_from_cert(_custom_cert(common_names, uris)) == expected


@pytest.mark.parametrize("pem", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\n-----END"])
def test_unparsable_cert_raises(pem: bytes) -> None:
    with pytest.raises(CertificateError):
        member_id_from_cert(pem)
    with pytest.raises(CertificateError):
        cert_not_after(pem)


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@dataclass
class _TlsEnd:
    """One side of an in-memory TLS connection (no sockets, no network)."""

    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    done: bool = False


def _tls_end(context: ssl.SSLContext, *, server: bool, hostname: str | None) -> _TlsEnd:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=server, server_hostname=hostname)
    return _TlsEnd(tls, incoming, outgoing)


def _handshake(client: _TlsEnd, server: _TlsEnd) -> None:
    """Drive the handshake, shuttling bytes between the two ends."""
    for _ in range(20):
        for end in (client, server):
            if not end.done:
                try:
                    end.tls.do_handshake()
                    end.done = True
                except ssl.SSLWantReadError:
                    pass
        server.incoming.write(client.outgoing.read())
        client.incoming.write(server.outgoing.read())
        if client.done and server.done:
            return
    raise AssertionError("TLS handshake did not complete")


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_real_mutual_tls_handshake(tmp_path: Path, hostname: str) -> None:
    now = datetime.now(UTC)
    live_ca = create_ca("HFP Live CA", now=now)
    server_cert = issue_member_cert(live_ca, "hotline-server", ["127.0.0.1", "localhost"], now=now)
    client_cert = issue_member_cert(live_ca, "hotline-client", [], now=now)
    ca_file = _write(tmp_path, "ca.pem", live_ca.cert_pem)

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(
        _write(tmp_path, "s.pem", server_cert.cert_pem),
        _write(tmp_path, "s.key", server_cert.key_pem),
    )
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(ca_file)

    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(ca_file)
    client_ctx.load_cert_chain(
        _write(tmp_path, "c.pem", client_cert.cert_pem),
        _write(tmp_path, "c.key", client_cert.key_pem),
    )

    client = _tls_end(client_ctx, server=False, hostname=hostname)
    server = _tls_end(server_ctx, server=True, hostname=None)
    _handshake(client, server)

    peer_der = server.tls.getpeercert(binary_form=True)
    assert peer_der is not None
    peer_pem = x509.load_der_x509_certificate(peer_der).public_bytes(serialization.Encoding.PEM)
    assert member_id_from_cert(peer_pem) == "hotline-client"


def test_tls_rejects_wrong_hostname(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    live_ca = create_ca("HFP Live CA", now=now)
    server_cert = issue_member_cert(live_ca, "hotline-server", ["127.0.0.1"], now=now)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(
        _write(tmp_path, "s.pem", server_cert.cert_pem),
        _write(tmp_path, "s.key", server_cert.key_pem),
    )
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(_write(tmp_path, "ca.pem", live_ca.cert_pem))
    client = _tls_end(client_ctx, server=False, hostname="evil.example")
    server = _tls_end(server_ctx, server=True, hostname=None)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server)


# --- certificate requests (hfed member init / hfed ca issue) --------------------


def test_a_csr_names_its_member_and_hosts_and_gets_a_certificate() -> None:
    from crypto.x509ca import create_member_csr, issue_cert_for_csr, read_member_csr

    ca = create_ca("CSR test CA")
    request = create_member_csr("hotline-se", ["127.0.0.1", "hfp.example.se"])
    identity = read_member_csr(request.cert_pem)
    assert identity.member_id == "hotline-se"
    assert identity.hosts == ("127.0.0.1", "hfp.example.se")
    cert = issue_cert_for_csr(ca, request.cert_pem, "hotline-se", identity.hosts)
    assert member_id_from_cert(cert) == "hotline-se"


def test_a_csr_that_does_not_parse_or_names_a_bad_member_is_refused() -> None:
    from crypto.x509ca import create_member_csr, read_member_csr

    with pytest.raises(CertificateError):
        read_member_csr(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
    with pytest.raises(CertificateError):
        create_member_csr("Bad_Id", [])
