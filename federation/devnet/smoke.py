"""``hfed devnet smoke``: one signed report from one node's member to another.

Shows the foundation working end to end on a running test network: mutual
TLS, a signed envelope, a durable receipt whose signature verifies against
the roster, and an idempotent redelivery.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from crypto.dsse import Envelope, sign_envelope
from crypto.keys import SigningKey
from federation.core.ids import MemberId, ReportId, new_uuid7
from federation.core.reasons import RECEIPT_TYPE, REPORT_TYPE
from federation.core.receipt import Receipt
from federation.core.report import ContentHash, HashAlgorithm, Report
from federation.devnet.manifest import Manifest
from federation.runtime.clock import utc_now
from federation.trust import signed_by_member
from federation.wire.convert import (
    decode_receipt,
    encode_report,
    envelope_from_proto,
    envelope_to_proto,
)
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from peers.channel import ClientIdentity, secure_channel

DEADLINE = 10.0


class SmokeError(RuntimeError):
    """The smoke delivery did not behave as the protocol requires."""


@dataclass(frozen=True)
class SmokeResult:
    """What happened to the smoke report."""

    sender: str
    receiver: str
    report_id: str
    #: Its signature verified against the roster (run_smoke raises otherwise).
    receipt: Receipt
    redelivery_identical: bool


def synthetic_report(origin: str, country: str) -> Report:
    """A synthetic report: a .test URL and a random hash, never real data."""
    report_id = ReportId(new_uuid7())
    return Report(
        report_id=report_id,
        origin_member_id=MemberId(origin),
        created_at=utc_now(),
        url=f"https://smoke.example.test/item/{report_id}",
        hashes=(ContentHash(HashAlgorithm.SHA256, os.urandom(32)),),
        media_type=1,
        classification=3,
        hosting_country=country,
    )


def _verify_receipt(directory: Path, manifest: Manifest, envelope: Envelope) -> Receipt:
    roster = manifest.verified_roster(directory)
    if envelope.payload_type != RECEIPT_TYPE or not signed_by_member(envelope, roster):
        raise SmokeError("receipt is not signed by a key of a roster member")
    return decode_receipt(envelope.payload)


def run_smoke(
    directory: Path, sender: str = "hotline-dk", receiver: str = "hotline-nl"
) -> SmokeResult:
    """Deliver one signed report from ``sender`` to ``receiver`` twice."""
    directory = directory.resolve()
    manifest = Manifest.load(directory)
    me, them = manifest.members[sender], manifest.members[receiver]
    key = SigningKey.load(directory / me.signing_key)
    report = synthetic_report(sender, (them.jurisdictions or ["ZZ"])[0])
    envelope = sign_envelope(key, sender, REPORT_TYPE, encode_report(report))
    request = fed_pb.DeliverRequest(
        items=[fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope))]
    )
    identity = ClientIdentity.from_files(
        directory / manifest.ca_cert, directory / me.tls_cert, directory / me.tls_key
    )
    with secure_channel(them.endpoint, identity) as channel:
        stub = fed_grpc.FederationServiceStub(channel)
        first = stub.Deliver(request, timeout=DEADLINE)
        second = stub.Deliver(request, timeout=DEADLINE)
    receipt_env = envelope_from_proto(first.receipts[0])
    receipt = _verify_receipt(directory, manifest, receipt_env)
    return SmokeResult(
        sender=sender,
        receiver=receiver,
        report_id=report.report_id,
        receipt=receipt,
        redelivery_identical=first.receipts[0].SerializeToString()
        == second.receipts[0].SerializeToString(),
    )
