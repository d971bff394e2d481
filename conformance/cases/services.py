"""Health and reflection (section 4), transport and authorization (sections 1 and 8)."""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conformance.context import DEADLINE, Context, rpc_code, rpc_text
from conformance.network import TlsIdentity, secure_channel
from conformance.pbwire import bytes_fields, length_delimited
from conformance.registry import CaseSkippedError, case, fail
from hfp.v1 import (
    federation_service_pb2,
    federation_service_pb2_grpc,
    hotline_service_pb2,
    hotline_service_pb2_grpc,
)

FEDERATION_SERVICE = "hfp.v1.FederationService"
REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
#: ServerReflectionRequest.list_services / ServerReflectionResponse.list_services_response
LIST_SERVICES_FIELD = 7
LIST_SERVICES_RESPONSE_FIELD = 6
#: ListServiceResponse.service, ServiceResponse.name
SERVICE_FIELD = 1
NAME_FIELD = 1
MEMBER_URI_PREFIX = "hfp://member/"
UNKNOWN_MEMBER = "cf-unknown-member"


# --- services ------------------------------------------------------------------------------


@case("SVC-001", "4", "grpc.health.v1.Health answers SERVING for the server")
def health_serving(ctx: Context) -> None:
    stub = health_pb2_grpc.HealthStub(ctx.channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE)
    except grpc.RpcError as exc:
        fail(f"expected SERVING, got the call failing with {rpc_text(exc)}")
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        fail(f"expected SERVING, got {name}")


def list_services(channel: grpc.Channel) -> list[str]:
    """Service names from server reflection (v1, else v1alpha)."""
    request = length_delimited(LIST_SERVICES_FIELD, b"")
    last_error = "no reflection service"
    for method in REFLECTION_METHODS:
        call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)
        try:
            responses = list(call(iter([request]), timeout=DEADLINE))
        except grpc.RpcError as exc:
            last_error = rpc_text(exc)
            if rpc_code(exc) == grpc.StatusCode.UNIMPLEMENTED:
                continue
            fail(f"server reflection failed: {last_error}")
        names = []
        for response in responses:
            for listing in bytes_fields(response, LIST_SERVICES_RESPONSE_FIELD):
                for service in bytes_fields(listing, SERVICE_FIELD):
                    names += [n.decode() for n in bytes_fields(service, NAME_FIELD)]
        return names
    fail(f"server reflection is not served: {last_error}")


@case("SVC-002", "4", "server reflection lists hfp.v1.FederationService")
def reflection_lists_service(ctx: Context) -> None:
    names = list_services(ctx.channel)
    if FEDERATION_SERVICE not in names:
        fail(f"expected {FEDERATION_SERVICE} in the reflection listing, got {sorted(names)}")


# --- transport -----------------------------------------------------------------------------


def _deliver_empty(credentials: grpc.ChannelCredentials, endpoint: str) -> grpc.StatusCode | None:
    """Deliver an empty batch with these credentials; the error code, or None on success."""
    with secure_channel(endpoint, credentials) as channel:
        stub = federation_service_pb2_grpc.FederationServiceStub(channel)
        try:
            stub.Deliver(federation_service_pb2.DeliverRequest(), timeout=DEADLINE)
        except grpc.RpcError as exc:
            return rpc_code(exc)
    return None


REFUSED_HANDSHAKE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED}


@case("TLS-001", "1", "a client without a certificate cannot call Deliver", reject=True)
def no_client_cert(ctx: Context) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=ctx.tls.ca_cert)
    code = _deliver_empty(credentials, ctx.target.endpoint)
    if code not in REFUSED_HANDSHAKE:
        fail(f"expected UNAVAILABLE or UNAUTHENTICATED, got {code.name if code else 'OK'}")


def _issue(
    issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Name, member_id: str
) -> tuple[bytes, bytes]:
    """A P-256 member certificate (PEM) and key (PEM) for ``member_id``, signed by the issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(MEMBER_URI_PREFIX + member_id),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@case("TLS-002", "1", "a client certificate from another CA cannot call Deliver", reject=True)
def foreign_ca(ctx: Context) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the network CA")])
    cert, key = _issue(ca_key, ca_name, ctx.me.member_id)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ctx.tls.ca_cert, private_key=key, certificate_chain=cert
    )
    code = _deliver_empty(credentials, ctx.target.endpoint)
    if code not in REFUSED_HANDSHAKE:
        fail(f"expected UNAVAILABLE or UNAUTHENTICATED, got {code.name if code else 'OK'}")


@case(
    "TLS-003",
    "1",
    "a network-CA certificate naming no roster member gets UNAUTHENTICATED",
    reject=True,
)
def unknown_member_cert(ctx: Context) -> None:
    ca_key_path = ctx.target.ca_key
    if ca_key_path is None:
        raise CaseSkippedError("the target file gives no CA key (ca_key) to issue a certificate")
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CaseSkippedError("the network CA key is not an EC key")
    ca_cert = x509.load_pem_x509_certificate(ctx.tls.ca_cert)
    cert, key = _issue(ca_key, ca_cert.subject, UNKNOWN_MEMBER)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ctx.tls.ca_cert, private_key=key, certificate_chain=cert
    )
    code = _deliver_empty(credentials, ctx.target.endpoint)
    if code != grpc.StatusCode.UNAUTHENTICATED:
        fail(f"expected UNAUTHENTICATED, got {code.name if code else 'OK'}")


def _liaison(ctx: Context) -> TlsIdentity:
    if ctx.target.liaison is None:
        raise CaseSkippedError("the target file names no liaison")
    return ctx.target.liaison.tls(ctx.tls.ca_cert)


@case("TLS-004", "1", "a liaison's certificate gets PERMISSION_DENIED on Deliver", reject=True)
def liaison_deliver(ctx: Context) -> None:
    identity = _liaison(ctx)
    code = _deliver_empty(identity.channel_credentials(), ctx.target.endpoint)
    if code != grpc.StatusCode.PERMISSION_DENIED:
        fail(f"expected PERMISSION_DENIED, got {code.name if code else 'OK'}")


@case(
    "TLS-005",
    "1",
    "a liaison's certificate gets PERMISSION_DENIED on GetRoster and PublishRoster",
    reject=True,
)
def liaison_roster(ctx: Context) -> None:
    identity = _liaison(ctx)
    with secure_channel(ctx.target.endpoint, identity.channel_credentials()) as channel:
        stub = federation_service_pb2_grpc.FederationServiceStub(channel)
        calls: dict[str, Callable[[], object]] = {
            "GetRoster": lambda: stub.GetRoster(
                federation_service_pb2.GetRosterRequest(), timeout=DEADLINE
            ),
            "PublishRoster": lambda: stub.PublishRoster(
                federation_service_pb2.PublishRosterRequest(roster=ctx.roster.signed),
                timeout=DEADLINE,
            ),
        }
        for name, call in calls.items():
            try:
                call()
            except grpc.RpcError as exc:
                if rpc_code(exc) != grpc.StatusCode.PERMISSION_DENIED:
                    fail(f"{name}: expected PERMISSION_DENIED, got {rpc_text(exc)}")
                continue
            fail(f"{name}: expected PERMISSION_DENIED, got OK")


@case(
    "TLS-006",
    "4",
    "another member's certificate gets PERMISSION_DENIED on the node's HotlineService",
    reject=True,
)
def foreign_hotline_service(ctx: Context) -> None:
    stub = hotline_service_pb2_grpc.HotlineServiceStub(ctx.channel)
    request = hotline_service_pb2.GetCaseRequest(case_id="00000000-0000-7000-8000-000000000000")
    try:
        stub.GetCase(request, timeout=DEADLINE)
    except grpc.RpcError as exc:
        if rpc_code(exc) != grpc.StatusCode.PERMISSION_DENIED:
            fail(f"expected PERMISSION_DENIED, got {rpc_text(exc)}")
        return
    fail("expected PERMISSION_DENIED, got OK")


@case(
    "TLS-007",
    "1",
    "the node's server certificate is from the network CA, valid for 127.0.0.1, names the node",
)
def server_certificate(ctx: Context) -> None:
    host, _, port = ctx.target.endpoint.rpartition(":")
    tls = ctx.tls
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=tls.ca_cert.decode())
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(tls.cert)
        key_file.write_bytes(tls.key)
        context.load_cert_chain(cert_file, key_file)
    try:
        with (
            socket.create_connection((host, int(port)), timeout=DEADLINE) as sock,
            context.wrap_socket(sock, server_hostname=host) as wrapped,
        ):
            der = wrapped.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        fail(f"TLS handshake verifying the server for {host} failed: {exc}")
    if der is None:
        fail("the server presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    uris = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        pass
    names = [u.removeprefix(MEMBER_URI_PREFIX) for u in uris if u.startswith(MEMBER_URI_PREFIX)]
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [ctx.target_id]:
        fail(f"expected the certificate to name {ctx.target_id}, it names {names}")


@case("TLS-008", "1", "a plaintext (non-TLS) connection cannot call Deliver", reject=True)
def plaintext(ctx: Context) -> None:
    with grpc.insecure_channel(ctx.target.endpoint) as channel:
        stub = federation_service_pb2_grpc.FederationServiceStub(channel)
        try:
            stub.Deliver(federation_service_pb2.DeliverRequest(), timeout=DEADLINE)
        except grpc.RpcError as exc:
            if rpc_code(exc) == grpc.StatusCode.DEADLINE_EXCEEDED:
                fail("expected the plaintext call to fail fast, it hung until the deadline")
            return
    fail("expected the plaintext call to fail, got OK")
