"""Checking a peer's receipts before they count as proof of delivery."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from crypto.dsse import Envelope, pae, verify_many
from federation.core import envelope_checks as checks
from federation.core.errors import PeerError
from federation.core.ids import ItemId, MemberId
from federation.core.reasons import RECEIPT_TYPE, Outcome, Rejection
from federation.core.receipt import Receipt
from federation.core.roster import MemberKey, Roster
from federation.wire.convert import decode_receipt
from federation.wire.errors import MalformedMessageError


class BadReceiptError(PeerError):
    """A receipt that proves nothing: the item stays queued."""


@dataclass(frozen=True, slots=True)
class Sent:
    """What a receipt must answer: the item's id and the digest of its payload."""

    item_id: ItemId
    payload_sha256: bytes


def verify_receipts(
    envelopes: Sequence[Envelope],
    sent: Sequence[Sent],
    roster: Roster,
    peer: MemberId,
    executor: Executor | None = None,
) -> list[Receipt | BadReceiptError]:
    """Check a batch's receipts, signatures verified in bulk (on ``executor``'s
    threads when given); per receipt, the Receipt or why it proves nothing."""
    keys = [_signing_key(envelope, roster, peer) for envelope in envelopes]
    jobs = [
        (key.public_key, pae(envelope.payload_type, envelope.payload), envelope.signature)
        for envelope, key in zip(envelopes, keys, strict=True)
        if isinstance(key, MemberKey)
    ]
    verdicts = iter(verify_many(jobs, executor))
    results: list[Receipt | BadReceiptError] = []
    for envelope, key, item in zip(envelopes, keys, sent, strict=True):
        if isinstance(key, BadReceiptError):
            results.append(key)
        elif not next(verdicts):
            results.append(BadReceiptError("receipt signature does not verify"))
        else:
            results.append(_answers(envelope, key, peer, item))
    return results


def _signing_key(envelope: Envelope, roster: Roster, peer: MemberId) -> MemberKey | BadReceiptError:
    if envelope.payload_type != RECEIPT_TYPE or envelope.signer_member_id != peer:
        return BadReceiptError("receipt is not a receipt signed by the peer")
    key = checks.find_signing_key(envelope, roster)
    if isinstance(key, Rejection):
        return BadReceiptError(f"receipt key: {key.detail}")
    return key


def _answers(
    envelope: Envelope, key: MemberKey, peer: MemberId, sent: Sent
) -> Receipt | BadReceiptError:
    """The receipt, if it is within its key's window and answers exactly ``sent``."""
    try:
        receipt = decode_receipt(envelope.payload)
    except MalformedMessageError as exc:
        return BadReceiptError(str(exc))
    if not key.covers(receipt.received_at) or receipt.receiver_member_id != peer:
        return BadReceiptError("receipt key window or receiver does not match")
    if receipt.payload_sha256 != sent.payload_sha256:
        return BadReceiptError("receipt answers different bytes than were sent")
    expected_ids = {sent.item_id, ""} if receipt.outcome is Outcome.REJECTED else {sent.item_id}
    if receipt.item_id not in expected_ids:
        return BadReceiptError("receipt answers a different item")
    return receipt
