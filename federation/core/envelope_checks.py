"""Checks on a delivered envelope, in the protocol's verification order.

Each function returns ``None`` when the check passes or a ``Rejection``
saying why not. The order in which the delivery pipeline calls them is the
order documented on ``hfp.v1.SignedEnvelope``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from crypto.dsse import Envelope
from federation.core.ids import KeyId, MemberId, is_key_id, is_member_id
from federation.core.limits import Limits
from federation.core.reasons import Rejection, RejectReason
from federation.core.roster import MemberKey, Roster

SIGNATURE_BYTES = 64


def check_envelope_limits(
    envelope: Envelope, accepted_types: Collection[str], limits: Limits
) -> Rejection | None:
    """Step 1-2: sizes and shapes, then whether the payload type is accepted."""
    if len(envelope.payload) > limits.max_payload_bytes:
        return Rejection(
            RejectReason.LIMIT_EXCEEDED, f"payload larger than {limits.max_payload_bytes} bytes"
        )
    if len(envelope.payload_type.encode()) > limits.max_payload_type_bytes:
        return Rejection(RejectReason.LIMIT_EXCEEDED, "payload_type too long")
    if len(envelope.signature) != SIGNATURE_BYTES:
        return Rejection(RejectReason.BAD_SIGNATURE, "signature must be 64 bytes")
    if not is_member_id(envelope.signer_member_id):
        return Rejection(RejectReason.MALFORMED_PAYLOAD, "signer_member_id is not a member id")
    if not is_key_id(envelope.key_id):
        return Rejection(
            RejectReason.MALFORMED_PAYLOAD, "key_id must be 64 lower-case hex characters"
        )
    if envelope.payload_type not in accepted_types:
        return Rejection(
            RejectReason.UNSUPPORTED_PAYLOAD_TYPE,
            f"payload_type must be one of {', '.join(sorted(accepted_types))}",
        )
    return None


def find_signing_key(envelope: Envelope, roster: Roster) -> MemberKey | Rejection:
    """Steps 3-4: the signer is a member and the key is one of its live keys."""
    # crypto's Envelope holds plain strings: here they become ids. A malformed
    # signer id names no member, so only the key id needs its check first.
    member = roster.member(MemberId(envelope.signer_member_id))
    if member is None:
        return Rejection(RejectReason.UNKNOWN_SIGNER, "signer is not a roster member")
    key = member.keys.get(KeyId(envelope.key_id)) if is_key_id(envelope.key_id) else None
    if key is None:
        return Rejection(RejectReason.KEY_NOT_VALID, "key_id is not a key of the signer")
    if key.revoked:
        return Rejection(RejectReason.KEY_NOT_VALID, "signing key is revoked")
    return key


def check_key_window(key: MemberKey, signed_at: datetime) -> Rejection | None:
    """Step 7: the item's own timestamp lies inside the key's validity window."""
    if key.covers(signed_at):
        return None
    return Rejection(
        RejectReason.KEY_NOT_VALID, "item timestamp is outside the signing key's validity"
    )


def check_author(author: MemberId, envelope: Envelope) -> Rejection | None:
    """Step 8: the author named inside the payload is the signer."""
    if author == envelope.signer_member_id:
        return None
    return Rejection(RejectReason.AUTHOR_MISMATCH, "author field differs from the signer")


def check_path(
    sender: MemberId,
    envelope: Envelope,
    via: Sequence[str],
    self_id: MemberId,
    limits: Limits,
) -> Rejection | None:
    """Who may hand us this item, and has it been here before?

    The TLS peer must be the author when it sends its own item, or the last
    forwarder when it relays one; a node already on the path, or a path over
    the limit, means a routing loop.
    """
    if len(via) > limits.max_via_entries:
        return Rejection(RejectReason.LOOP_DETECTED, "via_member_ids has too many entries")
    if not all(is_member_id(entry) for entry in via):
        return Rejection(RejectReason.MALFORMED_PAYLOAD, "via_member_ids holds a malformed id")
    expected = via[-1] if via else envelope.signer_member_id
    if sender != expected:
        return Rejection(
            RejectReason.SENDER_MISMATCH,
            "sender is neither the signer nor the last entry of via_member_ids",
        )
    if self_id in via:
        return Rejection(RejectReason.LOOP_DETECTED, "item has already passed through this node")
    return None
