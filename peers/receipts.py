"""Checking a peer's receipt before it counts as proof of delivery."""

from __future__ import annotations

from crypto.dsse import Envelope, verify_envelope_signature
from federation.core import envelope_checks as checks
from federation.core.reasons import RECEIPT_TYPE, Outcome, Rejection
from federation.core.receipt import Receipt
from federation.core.roster import Roster
from federation.wire.convert import decode_receipt
from federation.wire.errors import MalformedMessageError


class BadReceiptError(ValueError):
    """A receipt that proves nothing: the item stays queued."""


def verify_receipt(
    envelope: Envelope, roster: Roster, peer: str, item_id: str, payload_sha256: bytes
) -> Receipt:
    """Verify a receipt's signature and that it answers exactly the item sent."""
    if envelope.payload_type != RECEIPT_TYPE or envelope.signer_member_id != peer:
        raise BadReceiptError("receipt is not a receipt signed by the peer")
    key = checks.find_signing_key(envelope, roster)
    if isinstance(key, Rejection):
        raise BadReceiptError(f"receipt key: {key.detail}")
    if not verify_envelope_signature(envelope, key.public_key):
        raise BadReceiptError("receipt signature does not verify")
    try:
        receipt = decode_receipt(envelope.payload)
    except MalformedMessageError as exc:
        raise BadReceiptError(str(exc)) from exc
    if not key.covers(receipt.received_at) or receipt.receiver_member_id != peer:
        raise BadReceiptError("receipt key window or receiver does not match")
    if receipt.payload_sha256 != payload_sha256:
        raise BadReceiptError("receipt answers different bytes than were sent")
    expected_ids = {item_id, ""} if receipt.outcome is Outcome.REJECTED else {item_id}
    if receipt.item_id not in expected_ids:
        raise BadReceiptError("receipt answers a different item")
    return receipt
