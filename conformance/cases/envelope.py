"""Signed envelopes (section 2) and the verification order (section 2, envelope.proto)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from conformance.dsse import RECEIPT_TYPE, ROSTER_TYPE, STATUS_UPDATE_TYPE
from conformance.items import ItemFactory, ItemSpec, rejected
from conformance.pbwire import length_delimited
from conformance.registry import item_case
from hfp.v1 import receipt_pb2, roster_pb2

R = receipt_pb2
#: The envelope payload cap (envelope.proto: at most 64 KiB).
MAX_PAYLOAD = 64 * 1024
#: An unknown field number for padding a report without touching its fields.
PADDING_FIELD = 1000
GARBAGE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
NO_SUCH_MEMBER = "cf-not-a-member"


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def oversized_payload(f: ItemFactory, tag: str) -> bytes:
    """A well-formed report padded past 64 KiB with an unknown field."""
    payload = f.report(tag).SerializeToString()
    return payload + length_delimited(PADDING_FIELD, b"\x00" * (MAX_PAYLOAD + 16 - len(payload)))


def unknown_key_id(f: ItemFactory) -> str:
    """A well-formed key id that belongs to nobody."""
    return hashlib.sha256(b"hfp-conformance: nobody's key " + f.url_prefix.encode()).hexdigest()


# --- BAD_SIGNATURE ---------------------------------------------------------------


@item_case("ENV-001", "2", "a flipped payload byte is refused with BAD_SIGNATURE", reject=True)
def flipped_payload(f: ItemFactory) -> ItemSpec:
    report = f.report("env-flipped-payload")
    envelope = f.sign(report)
    envelope.payload = _flip(envelope.payload, len(envelope.payload) - 1)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case("ENV-002", "2", "a flipped signature bit is refused with BAD_SIGNATURE", reject=True)
def flipped_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-flipped-signature"))
    envelope.signature = _flip(envelope.signature, 10)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case("ENV-003", "2", "a 63-byte signature is refused with BAD_SIGNATURE", reject=True)
def short_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-short-signature"))
    envelope.signature = envelope.signature[:63]
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case("ENV-004", "2", "a 65-byte signature is refused with BAD_SIGNATURE", reject=True)
def long_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-long-signature"))
    envelope.signature += b"\x00"
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case("ENV-005", "2", "an empty signature is refused with BAD_SIGNATURE", reject=True)
def empty_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-empty-signature"))
    envelope.signature = b""
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case(
    "ENV-006",
    "2",
    "a signature over the PAE of another payload_type (StatusUpdate) gets BAD_SIGNATURE",
    reject=True,
)
def other_type_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-other-type"), signed_type=STATUS_UPDATE_TYPE)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case(
    "ENV-007", "2", "a signature over the bare payload (no PAE) gets BAD_SIGNATURE", reject=True
)
def no_pae_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-no-pae"))
    envelope.signature = f.me.key.sign(envelope.payload)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case(
    "ENV-008",
    "2",
    "a signature by another member's key under the signer's key_id gets BAD_SIGNATURE",
    reject=True,
)
def wrong_key_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-wrong-key"), key=f.other.key, key_id=f.me.key.key_id)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


# --- signer and key ------------------------------------------------------------------


@item_case("ENV-009", "1", "a signer that is not in the roster gets UNKNOWN_SIGNER", reject=True)
def unknown_signer(f: ItemFactory) -> ItemSpec:
    report = f.report("env-unknown-signer", author=NO_SUCH_MEMBER)
    return f.report_spec(report, rejected(R.REJECT_REASON_UNKNOWN_SIGNER), signer=NO_SUCH_MEMBER)


@item_case(
    "ENV-010",
    "2",
    "a malformed signer_member_id is refused at the limits step with MALFORMED_PAYLOAD",
    reject=True,
)
def malformed_signer(f: ItemFactory) -> ItemSpec:
    report = f.report("env-malformed-signer")
    return f.report_spec(
        report, rejected(R.REJECT_REASON_MALFORMED_PAYLOAD), signer="Conformance Harness!"
    )


@item_case("ENV-011", "1", "a key_id that is no key of the signer gets KEY_NOT_VALID", reject=True)
def unknown_key(f: ItemFactory) -> ItemSpec:
    report = f.report("env-unknown-key")
    return f.report_spec(report, rejected(R.REJECT_REASON_KEY_NOT_VALID), key_id=unknown_key_id(f))


@item_case(
    "ENV-012",
    "1",
    "another member's key (and its valid signature) under our signer id gets KEY_NOT_VALID",
    reject=True,
)
def other_members_key(f: ItemFactory) -> ItemSpec:
    report = f.report("env-other-members-key")
    return f.report_spec(report, rejected(R.REJECT_REASON_KEY_NOT_VALID), key=f.other.key)


@item_case(
    "ENV-013",
    "2",
    "a malformed key_id (not 64 lower-case hex) is refused with MALFORMED_PAYLOAD",
    reject=True,
)
def malformed_key_id(f: ItemFactory) -> ItemSpec:
    report = f.report("env-malformed-key-id")
    return f.report_spec(report, rejected(R.REJECT_REASON_MALFORMED_PAYLOAD), key_id="not-a-key-id")


# --- payload type ------------------------------------------------------------------


@item_case("ENV-014", "4", "payload_type hfp.v1.Receipt gets UNSUPPORTED_PAYLOAD_TYPE", reject=True)
def receipt_type(f: ItemFactory) -> ItemSpec:
    receipt = receipt_pb2.Receipt(
        item_id=f.new_id(),
        payload_type="hfp.v1.Report",
        outcome=receipt_pb2.OUTCOME_ACCEPTED,
        receiver_member_id=f.me.member_id,
    )
    receipt.received_at.FromDatetime(f.clock())
    envelope = f.sign(receipt.SerializeToString(), payload_type=RECEIPT_TYPE)
    return f.spec(envelope, rejected(R.REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE))


@item_case("ENV-015", "4", "payload_type hfp.v1.Roster gets UNSUPPORTED_PAYLOAD_TYPE", reject=True)
def roster_type(f: ItemFactory) -> ItemSpec:
    roster = roster_pb2.Roster(version=1, fallback_member_id=f.fallback)
    envelope = f.sign(roster.SerializeToString(), payload_type=ROSTER_TYPE)
    return f.spec(envelope, rejected(R.REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE))


@item_case(
    "ENV-016",
    "2",
    "a made-up payload_type (hfp.v1.Picture) gets UNSUPPORTED_PAYLOAD_TYPE",
    reject=True,
)
def made_up_type(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-made-up-type"), payload_type="hfp.v1.Picture")
    return f.spec(envelope, rejected(R.REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE))


@item_case("ENV-017", "2", "an empty payload_type gets UNSUPPORTED_PAYLOAD_TYPE", reject=True)
def empty_type(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-empty-type"), payload_type="")
    return f.spec(envelope, rejected(R.REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE))


@item_case("ENV-018", "2", "a payload_type longer than 64 bytes gets LIMIT_EXCEEDED", reject=True)
def long_type(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("env-long-type"), payload_type="hfp.v1." + "Report" * 11)
    return f.spec(envelope, rejected(R.REJECT_REASON_LIMIT_EXCEEDED))


@item_case("ENV-019", "2", "a payload over 64 KiB gets LIMIT_EXCEEDED", reject=True)
def oversized(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(oversized_payload(f, "env-oversized"))
    return f.spec(envelope, rejected(R.REJECT_REASON_LIMIT_EXCEEDED))


@item_case(
    "ENV-020",
    "2",
    "a correctly signed payload that does not parse gets MALFORMED_PAYLOAD",
    reject=True,
)
def garbage(f: ItemFactory) -> ItemSpec:
    return f.spec(f.sign(GARBAGE), rejected(R.REJECT_REASON_MALFORMED_PAYLOAD))


# --- verification order --------------------------------------------------------------


@item_case(
    "ORD-001",
    "2",
    "unknown signer with a bad signature: UNKNOWN_SIGNER (signer first)",
    reject=True,
)
def order_signer_before_signature(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("ord-signer", author=NO_SUCH_MEMBER), signer=NO_SUCH_MEMBER)
    envelope.signature = bytes(64)
    return f.spec(envelope, rejected(R.REJECT_REASON_UNKNOWN_SIGNER))


@item_case(
    "ORD-002",
    "2",
    "unknown key over an unparseable payload: KEY_NOT_VALID (key before parse)",
    reject=True,
)
def order_key_before_parse(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(GARBAGE, key_id=unknown_key_id(f))
    return f.spec(envelope, rejected(R.REJECT_REASON_KEY_NOT_VALID))


@item_case(
    "ORD-003",
    "2",
    "bad signature on an unparseable payload: BAD_SIGNATURE (verify before parse)",
    reject=True,
)
def order_signature_before_parse(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(GARBAGE)
    envelope.signature = _flip(envelope.signature, 0)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case(
    "ORD-004",
    "2",
    "oversized, unknown signer, bad signature: LIMIT_EXCEEDED (limits first)",
    reject=True,
)
def order_limits_first(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(oversized_payload(f, "ord-limits"), signer=NO_SUCH_MEMBER)
    envelope.signature = bytes(64)
    return f.spec(envelope, rejected(R.REJECT_REASON_LIMIT_EXCEEDED))


@item_case(
    "ORD-005",
    "2",
    "made-up type from an unknown signer: UNSUPPORTED_PAYLOAD_TYPE (type first)",
    reject=True,
)
def order_type_before_signer(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(
        f.report("ord-type", author=NO_SUCH_MEMBER),
        payload_type="hfp.v1.Picture",
        signer=NO_SUCH_MEMBER,
    )
    return f.spec(envelope, rejected(R.REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE))


@item_case(
    "ORD-006",
    "2",
    "author mismatch and a future created_at: AUTHOR_MISMATCH (author first)",
    reject=True,
)
def order_author_before_semantics(f: ItemFactory) -> ItemSpec:
    report = f.report(
        "ord-author", author=f.other.member_id, created_at=f.future(timedelta(days=1))
    )
    return f.report_spec(report, rejected(R.REJECT_REASON_AUTHOR_MISMATCH))


@item_case(
    "ORD-007",
    "2",
    "bad signature on a report whose author differs: BAD_SIGNATURE (signature before author)",
    reject=True,
)
def order_signature_before_author(f: ItemFactory) -> ItemSpec:
    envelope = f.sign(f.report("ord-sig-author", author=f.other.member_id))
    envelope.signature = _flip(envelope.signature, 5)
    return f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE))


@item_case(
    "ORD-008",
    "2",
    "another member's key on a report by that member: KEY_NOT_VALID (key before author)",
    reject=True,
)
def order_key_before_author(f: ItemFactory) -> ItemSpec:
    report = f.report("ord-key-author", author=f.other.member_id)
    return f.report_spec(report, rejected(R.REJECT_REASON_KEY_NOT_VALID), key=f.other.key)
