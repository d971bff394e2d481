"""The harness as a peer node: a FederationService on the reserved endpoint.

Nodes forward items for ``XA`` (the harness member's jurisdiction), push
rosters and fan out status updates to this server. It records every call,
answers with correctly signed receipts by default, and can be told to
misbehave for a given item (be unavailable, sign a bad receipt, answer for
other bytes, reject) so that the sender's retry behaviour can be observed.
"""

from __future__ import annotations

import enum
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from conformance.dsse import (
    RECEIPT_TYPE,
    REPORT_TYPE,
    STATUS_UPDATE_TYPE,
    sign_envelope,
    verify_envelope,
)
from conformance.items import Party
from conformance.network import TlsIdentity, channel_options, is_loopback
from conformance.rosters import RosterView
from hfp.v1 import (
    envelope_pb2,
    federation_service_pb2,
    federation_service_pb2_grpc,
    receipt_pb2,
    report_pb2,
    status_pb2,
)

MEMBER_URI_PREFIX = "hfp://member/"
T = TypeVar("T")


class Behaviour(enum.Enum):
    """How the peer answers a delivery that contains a given item."""

    ACCEPT = "accept"
    UNAVAILABLE = "unavailable"
    BAD_RECEIPT_SIGNATURE = "bad-receipt-signature"
    WRONG_DIGEST = "wrong-digest"
    REJECT = "reject"


@dataclass(frozen=True)
class ArrivedItem:
    """One item of a Deliver call the peer received."""

    envelope: envelope_pb2.SignedEnvelope
    via_member_ids: tuple[str, ...]
    item_id: str
    status: status_pb2.StatusUpdate | None
    behaviour: Behaviour


@dataclass(frozen=True)
class Arrival:
    """One call the peer received."""

    rpc: str
    sender: str
    at: float
    items: tuple[ArrivedItem, ...] = ()
    roster_version: int = 0


def member_id_of_cert(pem: bytes) -> str:
    """The member id a certificate names: SAN URI hfp://member/<id>, else the CN."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [
            u.removeprefix(MEMBER_URI_PREFIX)
            for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(MEMBER_URI_PREFIX)
        ]
    except x509.ExtensionNotFound:
        uris = []
    if uris:
        return uris[0] if len(set(uris)) == 1 else ""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if len(names) == 1 else ""


def caller_of(context: grpc.ServicerContext) -> str:
    """The member id of the verified client certificate of a call."""
    certs = list(context.auth_context().get("x509_pem_cert", []))
    first = certs[0] if certs else b""
    return member_id_of_cert(first) if isinstance(first, bytes) and first else ""


class PeerServer:
    """A recording FederationService for the harness member."""

    def __init__(
        self,
        endpoint: str,
        tls: TlsIdentity,
        me: Party,
        roster: Callable[[], RosterView | None],
    ) -> None:
        if not is_loopback(endpoint):
            raise ValueError(f"the peer endpoint {endpoint} is not on loopback")
        self.endpoint = endpoint
        self._tls = tls
        self._me = me
        self._roster = roster
        self._cond = threading.Condition()
        self._arrivals: list[Arrival] = []
        self._plans: dict[str, list[Behaviour]] = {}
        self._case_ids: dict[str, str] = {}
        self._server: grpc.Server | None = None

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Listen on the reserved endpoint (mutual TLS, network CA)."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=channel_options())
        federation_service_pb2_grpc.add_FederationServiceServicer_to_server(_Servicer(self), server)
        try:
            port = server.add_secure_port(self.endpoint, self._tls.server_credentials())
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self.endpoint}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {self.endpoint}")
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop listening (in-flight calls get a short grace)."""
        if self._server is not None:
            self._server.stop(grace=0.5).wait(timeout=5)
            self._server = None

    # --- control --------------------------------------------------------------

    def _assign_case(self, report_id: str) -> str:
        with self._cond:
            case_id = self._case_ids.setdefault(report_id, str(uuid.uuid4()))
            self._cond.notify_all()
        return case_id

    def case_id_of(self, report_id: str) -> str:
        """The case id our receipts gave a report delivered to us ("" if none)."""
        with self._cond:
            return self._case_ids.get(report_id, "")

    def plan(self, item_id: str, *behaviours: Behaviour) -> None:
        """Answer the next deliveries containing ``item_id`` like this, then ACCEPT."""
        with self._cond:
            self._plans[item_id] = list(behaviours)

    def arrivals(self) -> list[Arrival]:
        """Every call so far."""
        with self._cond:
            return list(self._arrivals)

    def items(self, item_id: str) -> list[tuple[Arrival, ArrivedItem]]:
        """Every delivery of ``item_id`` so far, oldest first."""
        with self._cond:
            return [(a, i) for a in self._arrivals for i in a.items if i.item_id == item_id]

    def wait_for(self, probe: Callable[[list[Arrival]], T | None], timeout: float) -> T | None:
        """Wait (bounded) until ``probe(arrivals)`` returns something."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = probe(self._arrivals)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._cond.wait(remaining)

    def wait_quiet(self, quiet: float, limit: float) -> None:
        """Wait (at most ``limit`` s) until nothing has arrived for ``quiet`` seconds.

        Used before stopping, so that what nodes still send (status updates
        for the last cases) is answered instead of leaving them backing off
        against an endpoint that went away.
        """
        deadline = time.monotonic() + limit
        with self._cond:
            while True:
                last = self._arrivals[-1].at if self._arrivals else 0.0
                now = time.monotonic()
                wake = min(last + quiet, deadline)
                if wake <= now:
                    return
                self._cond.wait(wake - now)

    # --- handlers -------------------------------------------------------------

    def _next_behaviour(self, item_id: str) -> Behaviour:
        queue = self._plans.get(item_id)
        return queue.pop(0) if queue else Behaviour.ACCEPT

    def _record(self, arrival: Arrival) -> None:
        with self._cond:
            self._arrivals.append(arrival)
            self._cond.notify_all()

    def deliver(
        self, request: federation_service_pb2.DeliverRequest, context: grpc.ServicerContext
    ) -> federation_service_pb2.DeliverResponse:
        sender = caller_of(context)
        with self._cond:
            items = tuple(self._arrived(item) for item in request.items)
        self._record(Arrival("Deliver", sender, time.monotonic(), items))
        if any(i.behaviour is Behaviour.UNAVAILABLE for i in items):
            context.abort(grpc.StatusCode.UNAVAILABLE, "conformance harness: deliberately down")
        response = federation_service_pb2.DeliverResponse()
        for item in items:
            response.receipts.append(self._receipt(item))
        return response

    def _arrived(self, item: federation_service_pb2.ForwardedItem) -> ArrivedItem:
        envelope = envelope_pb2.SignedEnvelope()
        envelope.CopyFrom(item.envelope)
        item_id, status = "", None
        try:
            if envelope.payload_type == REPORT_TYPE:
                item_id = report_pb2.Report.FromString(envelope.payload).report_id
            elif envelope.payload_type == STATUS_UPDATE_TYPE:
                status = status_pb2.StatusUpdate.FromString(envelope.payload)
                item_id = status.update_id
        except Exception:
            item_id, status = "", None
        return ArrivedItem(
            envelope, tuple(item.via_member_ids), item_id, status, self._next_behaviour(item_id)
        )

    def _authentic(self, envelope: envelope_pb2.SignedEnvelope) -> bool:
        roster = self._roster()
        if roster is None:
            return False
        key = roster.keys_of(envelope.signer_member_id).get(envelope.key_id)
        return key is not None and not key.revoked and verify_envelope(envelope, key.public_key)

    def _receipt(self, item: ArrivedItem) -> envelope_pb2.SignedEnvelope:
        envelope = item.envelope
        receipt = receipt_pb2.Receipt(
            item_id=item.item_id,
            payload_type=envelope.payload_type[:64],
            receiver_member_id=self._me.member_id,
            payload_sha256=hashlib.sha256(envelope.payload).digest(),
        )
        receipt.received_at.FromDatetime(datetime.now(UTC))
        if item.behaviour is Behaviour.REJECT:
            receipt.outcome = receipt_pb2.OUTCOME_REJECTED
            receipt.reject_reason = receipt_pb2.REJECT_REASON_MALFORMED_PAYLOAD
            receipt.detail = "conformance harness: deliberate rejection"
        elif not item.item_id or not self._authentic(envelope):
            receipt.item_id = ""
            receipt.outcome = receipt_pb2.OUTCOME_REJECTED
            receipt.reject_reason = receipt_pb2.REJECT_REASON_BAD_SIGNATURE
            receipt.detail = "conformance harness: does not verify against the roster"
        else:
            receipt.outcome = receipt_pb2.OUTCOME_ACCEPTED
            if item.status is None:
                receipt.case_id = self._assign_case(item.item_id)
        if item.behaviour is Behaviour.WRONG_DIGEST:
            receipt.payload_sha256 = hashlib.sha256(b"not the bytes you sent").digest()
        payload = receipt.SerializeToString()
        signed = sign_envelope(self._me.key, self._me.member_id, RECEIPT_TYPE, payload)
        if item.behaviour is Behaviour.BAD_RECEIPT_SIGNATURE:
            signed.signature = bytes([signed.signature[0] ^ 0x01]) + signed.signature[1:]
        return signed

    def roster_pushed(
        self, request: federation_service_pb2.PublishRosterRequest, context: grpc.ServicerContext
    ) -> federation_service_pb2.PublishRosterResponse:
        version = 0
        try:
            version = RosterView.parse(request.roster).version
        except Exception:
            version = 0
        self._record(Arrival("PublishRoster", caller_of(context), time.monotonic(), (), version))
        return federation_service_pb2.PublishRosterResponse(version=version)

    def roster_asked(
        self, request: federation_service_pb2.GetRosterRequest, context: grpc.ServicerContext
    ) -> federation_service_pb2.GetRosterResponse:
        self._record(Arrival("GetRoster", caller_of(context), time.monotonic()))
        return federation_service_pb2.GetRosterResponse()


@dataclass
class _Servicer(federation_service_pb2_grpc.FederationServiceServicer):
    peer: PeerServer = field()

    def Deliver(  # noqa: N802 - gRPC method name
        self, request: federation_service_pb2.DeliverRequest, context: grpc.ServicerContext
    ) -> federation_service_pb2.DeliverResponse:
        return self.peer.deliver(request, context)

    def GetRoster(  # noqa: N802
        self, request: federation_service_pb2.GetRosterRequest, context: grpc.ServicerContext
    ) -> federation_service_pb2.GetRosterResponse:
        return self.peer.roster_asked(request, context)

    def PublishRoster(  # noqa: N802
        self, request: federation_service_pb2.PublishRosterRequest, context: grpc.ServicerContext
    ) -> federation_service_pb2.PublishRosterResponse:
        return self.peer.roster_pushed(request, context)
