"""Deliver between real nodes: acceptance, and every item-level rejection.

hotline-dk's TLS identity delivers to hotline-nl's node (responsible for NL)
on the shared default network. Every rejected item travels in a batch with
valid items, which must still be accepted: one bad item never fails a batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple

import pytest

from crypto.dsse import Envelope
from crypto.keys import SigningKey
from federation.core.reasons import RECEIPT_TYPE, REPORT_TYPE, ROSTER_TYPE
from federation.core.report import ContentHash, HashAlgorithm
from federation.wire.convert import encode_report, report_to_proto
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.net import (
    Network,
    count_inbound,
    deliver,
    item,
    make_report,
    now,
    outcome_name,
    reason_name,
    sign,
    sign_report,
    verify_receipt,
)

SENDER = "hotline-dk"
RECEIVER = "hotline-nl"


class Bad(NamedTuple):
    """A bad item, what the receiver must answer, and the report id inside it."""

    item: fed_pb.ForwardedItem
    reason: str
    #: The report id the item carries, when the receiver can know it (parsed
    #: and authenticated); a receipt for an unparsed item may leave it empty.
    report_id: str
    parsed: bool


class Ctx(NamedTuple):
    net: Network
    dk: SigningKey
    de: SigningKey


def _flip(data: bytes, index: int = -1) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


def _evaluate(changes: dict[str, object]) -> dict[str, object]:
    """Field changes; callables (e.g. times relative to now) are called late."""
    return {k: v() if callable(v) else v for k, v in changes.items()}


def _signed(ctx: Ctx, **changes: object) -> tuple[Envelope, str]:
    report = make_report(SENDER, "NL", **_evaluate(changes))
    return sign_report(report, ctx.dk), report.report_id


def _report_case(reason: str, **changes: object) -> Callable[[Ctx], Bad]:
    """A report by hotline-dk, correctly signed, with one field changed."""

    def build(ctx: Ctx) -> Bad:
        envelope, report_id = _signed(ctx, **changes)
        return Bad(item(envelope), reason, report_id, parsed=True)

    return build


def _tampered_payload(ctx: Ctx) -> Bad:
    envelope, report_id = _signed(ctx)
    bad = dataclasses.replace(envelope, payload=_flip(envelope.payload))
    return Bad(item(bad), "REJECT_REASON_BAD_SIGNATURE", report_id, parsed=False)


def _tampered_signature(ctx: Ctx) -> Bad:
    envelope, report_id = _signed(ctx)
    bad = dataclasses.replace(envelope, signature=_flip(envelope.signature, 10))
    return Bad(item(bad), "REJECT_REASON_BAD_SIGNATURE", report_id, parsed=False)


def _signature_length(length: int) -> Callable[[Ctx], Bad]:
    def build(ctx: Ctx) -> Bad:
        envelope, report_id = _signed(ctx)
        signature = (envelope.signature * 2)[:length]
        bad = dataclasses.replace(envelope, signature=signature)
        return Bad(item(bad), "REJECT_REASON_BAD_SIGNATURE", report_id, parsed=False)

    return build


def _unknown_key(ctx: Ctx) -> Bad:
    report = make_report(SENDER, "NL")
    envelope = sign_report(report, SigningKey.generate())  # a key not in the roster
    return Bad(item(envelope), "REJECT_REASON_KEY_NOT_VALID", report.report_id, parsed=False)


def _other_members_key(ctx: Ctx) -> Bad:
    # hotline-de's real key, but the envelope claims hotline-dk signed.
    report = make_report(SENDER, "NL")
    envelope = sign(encode_report(report), ctx.de, SENDER)
    return Bad(item(envelope), "REJECT_REASON_KEY_NOT_VALID", report.report_id, parsed=False)


def _key_id_not_hex(ctx: Ctx) -> Bad:
    envelope, report_id = _signed(ctx)
    bad = dataclasses.replace(envelope, key_id=envelope.key_id.upper())
    return Bad(item(bad), "REJECT_REASON_MALFORMED_PAYLOAD", report_id, parsed=False)


def _unknown_signer(ctx: Ctx) -> Bad:
    report = make_report("hotline-xx", "NL")
    envelope = sign_report(report, SigningKey.generate())
    return Bad(item(envelope), "REJECT_REASON_UNKNOWN_SIGNER", report.report_id, parsed=False)


def _author_mismatch(ctx: Ctx) -> Bad:
    report = make_report("hotline-de", "NL")
    envelope = sign_report(report, ctx.dk, signer=SENDER)
    return Bad(item(envelope), "REJECT_REASON_AUTHOR_MISMATCH", report.report_id, parsed=True)


def _garbage(ctx: Ctx) -> Bad:
    # Field number 0 with wire type 7 can never start a valid protobuf message.
    envelope = sign(b"\x07" + os.urandom(200), ctx.dk, SENDER)
    return Bad(item(envelope), "REJECT_REASON_MALFORMED_PAYLOAD", "", parsed=False)


def _payload_type(payload_type: str) -> Callable[[Ctx], Bad]:
    def build(ctx: Ctx) -> Bad:
        report = make_report(SENDER, "NL")
        envelope = sign(encode_report(report), ctx.dk, SENDER, payload_type)
        reason = "REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE"
        return Bad(item(envelope), reason, report.report_id, parsed=False)

    return build


def _missing_created_at(ctx: Ctx) -> Bad:
    report = make_report(SENDER, "NL")
    message = report_to_proto(report)
    message.ClearField("created_at")
    envelope = sign(message.SerializeToString(), ctx.dk, SENDER)
    return Bad(item(envelope), "REJECT_REASON_MALFORMED_PAYLOAD", report.report_id, parsed=False)


def _hash_algorithm(value: int) -> Callable[[Ctx], Bad]:
    def build(ctx: Ctx) -> Bad:
        report = make_report(SENDER, "NL")
        message = report_to_proto(report)
        message.hashes[0].algorithm = value  # type: ignore[assignment]
        envelope = sign(message.SerializeToString(), ctx.dk, SENDER)
        return Bad(item(envelope), MALFORMED, report.report_id, parsed=False)

    return build


def _unknown_field_blob(ctx: Ctx) -> Bad:
    # An unknown length-delimited field (number 999) smuggling 4 KiB of bytes.
    report = make_report(SENDER, "NL")
    blob = os.urandom(4096)
    tag = bytes([(999 << 3 | 2) & 0x7F | 0x80, (999 << 3 | 2) >> 7])
    length = bytes([len(blob) & 0x7F | 0x80, len(blob) >> 7])
    envelope = sign(encode_report(report) + tag + length + blob, ctx.dk, SENDER)
    return Bad(item(envelope), "REJECT_REASON_MEDIA_NOT_ALLOWED", report.report_id, parsed=False)


def _big_hash(ctx: Ctx) -> Bad:
    hashes = (ContentHash(HashAlgorithm.SHA256, os.urandom(1000)),)
    envelope, report_id = _signed(ctx, hashes=hashes)
    return Bad(item(envelope), "REJECT_REASON_MEDIA_NOT_ALLOWED", report_id, parsed=False)


def _oversize_payload(ctx: Ctx) -> Bad:
    envelope = sign(os.urandom(64 * 1024 + 1), ctx.dk, SENDER)
    return Bad(item(envelope), "REJECT_REASON_LIMIT_EXCEEDED", "", parsed=False)


def _sender_mismatch(ctx: Ctx) -> Bad:
    # Authored and signed by hotline-de, handed over by hotline-dk as if its own.
    report = make_report("hotline-de", "NL")
    envelope = sign_report(report, ctx.de)
    return Bad(item(envelope), "REJECT_REASON_SENDER_MISMATCH", report.report_id, parsed=True)


def _via(path: list[str], reason: str) -> Callable[[Ctx], Bad]:
    def build(ctx: Ctx) -> Bad:
        report = make_report("hotline-de", "NL")
        envelope = sign_report(report, ctx.de)
        return Bad(item(envelope, via=path), reason, report.report_id, parsed=True)

    return build


def _hashes(count: int) -> tuple[ContentHash, ...]:
    return tuple(ContentHash(HashAlgorithm.SHA256, os.urandom(32)) for _ in range(count))


def _url(length: int) -> str:
    """A unique URL of exactly ``length`` characters."""
    prefix = f"https://reports.example.com/{uuid.uuid4().hex}/"
    return prefix + "a" * (length - len(prefix))


LOOP = "REJECT_REASON_LOOP_DETECTED"
MALFORMED = "REJECT_REASON_MALFORMED_PAYLOAD"

CASES: dict[str, Callable[[Ctx], Bad]] = {
    "tampered-payload": _tampered_payload,
    "tampered-signature": _tampered_signature,
    "signature-63-bytes": _signature_length(63),
    "signature-65-bytes": _signature_length(65),
    "signature-empty": _signature_length(0),
    "unknown-key-id": _unknown_key,
    "key-of-another-member": _other_members_key,
    "key-id-upper-case": _key_id_not_hex,
    "unknown-signer": _unknown_signer,
    "author-not-signer": _author_mismatch,
    "garbage-payload": _garbage,
    "payload-type-receipt": _payload_type(RECEIPT_TYPE),
    "payload-type-roster": _payload_type(ROSTER_TYPE),
    "payload-type-unknown": _payload_type("hfp.v1.Nonsense"),
    "created-at-missing": _missing_created_at,
    "created-at-10-min-future": _report_case(
        "REJECT_REASON_CLOCK_SKEW", created_at=lambda: now() + timedelta(minutes=10)
    ),
    "data-url": _report_case(
        "REJECT_REASON_MEDIA_NOT_ALLOWED", url="data:image/png;base64,iVBORw0KGgo="
    ),
    "hash-1000-bytes": _big_hash,
    "unknown-field-blob": _unknown_field_blob,
    "sha256-31-bytes": _report_case(
        MALFORMED, hashes=(ContentHash(HashAlgorithm.SHA256, os.urandom(31)),)
    ),
    "md5-20-bytes": _report_case(
        MALFORMED, hashes=(ContentHash(HashAlgorithm.MD5, os.urandom(20)),)
    ),
    "hash-algorithm-unspecified": _hash_algorithm(0),
    "hash-algorithm-unknown": _hash_algorithm(99),
    "33-hashes": _report_case("REJECT_REASON_LIMIT_EXCEEDED", hashes=_hashes(33)),
    "url-4097-chars": _report_case("REJECT_REASON_LIMIT_EXCEEDED", url=_url(4097)),
    "url-file-scheme": _report_case(MALFORMED, url="file:///srv/example.test/a.jpg"),
    "url-relative": _report_case(MALFORMED, url="/just/a/path"),
    "report-id-not-uuid": _report_case(MALFORMED, report_id="not-a-uuid"),
    "report-id-upper-case": _report_case(
        MALFORMED, report_id="0192F0C6-6C1A-7B3E-8D4F-1A2B3C4D5E6F"
    ),
    "hosting-country-lower-case": _report_case(MALFORMED, hosting_country="nl"),
    "analyst-note-2001-chars": _report_case(
        "REJECT_REASON_LIMIT_EXCEEDED", analyst_note="n" * 2001
    ),
    "payload-over-64-KiB": _oversize_payload,
    "sender-not-signer": _sender_mismatch,
    "via-last-is-not-sender": _via(["hotline-de"], "REJECT_REASON_SENDER_MISMATCH"),
    "via-contains-receiver": _via(["hotline-nl", SENDER], LOOP),
    "via-5-entries": _via(["hotline-de", "secretariat", "hotline-de", "secretariat", SENDER], LOOP),
}


@pytest.fixture(scope="module")
def ctx(net: Network) -> Ctx:
    return Ctx(net, net.signing_key(SENDER), net.signing_key("hotline-de"))


def test_valid_report_is_accepted_with_a_verifiable_receipt(net: Network, ctx: Ctx) -> None:
    report = make_report(SENDER, "NL")
    envelope = sign_report(report, ctx.dk)

    with net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(envelope)])

    assert signed.signer_member_id == RECEIVER
    assert signed.key_id == net.member(RECEIVER).key_id
    receipt = verify_receipt(net, signed)
    assert outcome_name(receipt) == "OUTCOME_ACCEPTED"
    assert receipt.item_id == report.report_id
    assert receipt.payload_type == REPORT_TYPE
    assert receipt.payload_sha256 == hashlib.sha256(envelope.payload).digest()
    assert receipt.receiver_member_id == RECEIVER
    assert receipt.reject_reason == 0
    assert receipt.HasField("received_at")
    assert abs(receipt.received_at.ToDatetime().timestamp() - now().timestamp()) < 60
    assert count_inbound(net, RECEIVER, report.report_id) == 1


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_item_is_rejected_without_failing_its_batch(
    net: Network, ctx: Ctx, case: Callable[[Ctx], Bad]
) -> None:
    bad = case(ctx)
    good = [make_report(SENDER, "NL") for _ in range(2)]
    items = [item(sign_report(good[0], ctx.dk)), bad.item, item(sign_report(good[1], ctx.dk))]

    with net.stub(SENDER, RECEIVER) as stub:
        receipts = [verify_receipt(net, r) for r in deliver(stub, items)]

    rejected = receipts[1]
    assert (outcome_name(rejected), reason_name(rejected)) == ("OUTCOME_REJECTED", bad.reason)
    assert rejected.receiver_member_id == RECEIVER
    assert rejected.payload_sha256 == hashlib.sha256(bad.item.envelope.payload).digest()
    assert rejected.detail, "a rejection explains itself"
    if bad.parsed:
        assert rejected.item_id == bad.report_id
    else:
        assert rejected.item_id in ("", bad.report_id)
    for receipt, report in zip((receipts[0], receipts[2]), good, strict=True):
        assert outcome_name(receipt) == "OUTCOME_ACCEPTED"
        assert receipt.item_id == report.report_id
    if bad.report_id and bad.report_id != "not-a-uuid":
        assert count_inbound(net, RECEIVER, bad.report_id) == 0, "rejected items are not stored"


EDGE_CASES: dict[str, dict[str, object]] = {
    "created-at-4-min-future": {"created_at": lambda: now() + timedelta(minutes=4)},
    "created-at-a-year-ago": {"created_at": lambda: now() - timedelta(days=365)},
    "32-hashes": {"hashes": _hashes(32)},
    "every-hash-algorithm": {
        "hashes": tuple(
            ContentHash(alg, os.urandom(n))
            for alg, n in (
                (HashAlgorithm.SHA256, 32),
                (HashAlgorithm.SHA1, 20),
                (HashAlgorithm.MD5, 16),
                (HashAlgorithm.PDQ, 32),
                (HashAlgorithm.PHOTODNA, 144),
            )
        )
    },
    "no-hashes": {"hashes": ()},
    "url-4096-chars": {"url": _url(4096)},
    "url-ftp": {"url": f"ftp://files.example.net/pub/{uuid.uuid4().hex}.bin"},
    "url-idn": {"url": f"https://bücher.example.test/{uuid.uuid4().hex}/a%20b?q=1#frag"},
    "analyst-note-2000-chars": {"analyst_note": "n" * 2000},
    "hosting-ip-v6": {"hosting_ip": "2001:db8::1", "hosting_asn": 64500},
}


@pytest.mark.parametrize("changes", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_items_at_the_limits_are_accepted(
    net: Network, ctx: Ctx, changes: dict[str, object]
) -> None:
    report = make_report(SENDER, "NL", **_evaluate(changes))
    with net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, ctx.dk))])
    receipt = verify_receipt(net, signed)
    assert (outcome_name(receipt), reason_name(receipt)) == (
        "OUTCOME_ACCEPTED",
        "REJECT_REASON_UNSPECIFIED",
    ), receipt.detail


@pytest.mark.parametrize(
    "via",
    [
        ["hotline-dk"],
        ["secretariat", "hotline-dk"],
        ["hotline-de", "secretariat", "hotline-de", "hotline-dk"],
    ],
    ids=["1-hop", "2-hops", "4-hops"],
)
def test_forwarded_item_from_the_last_hop_is_accepted(
    net: Network, ctx: Ctx, via: list[str]
) -> None:
    # Authored and signed by hotline-de; hotline-dk relays it as the last hop.
    report = make_report("hotline-de", "NL")
    with net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, ctx.de), via=via)])
    receipt = verify_receipt(net, signed)
    assert outcome_name(receipt) == "OUTCOME_ACCEPTED", receipt.detail
    assert receipt.item_id == report.report_id


@pytest.mark.parametrize(
    "case",
    [
        "author-not-signer",
        "sender-not-signer",
        "via-contains-receiver",
        "created-at-10-min-future",
        "tampered-signature",
    ],
)
def test_rejected_item_does_not_occupy_its_report_id(net: Network, ctx: Ctx, case: str) -> None:
    """A refused item must not block the genuine report with the same id."""
    bad = CASES[case](ctx)
    genuine = make_report(SENDER, "NL", report_id=bad.report_id)
    with net.stub(SENDER, RECEIVER) as stub:
        (first,) = deliver(stub, [bad.item])
        (second,) = deliver(stub, [item(sign_report(genuine, ctx.dk))])
    assert outcome_name(verify_receipt(net, first)) == "OUTCOME_REJECTED"
    receipt = verify_receipt(net, second)
    assert outcome_name(receipt) == "OUTCOME_ACCEPTED", receipt.detail
    assert receipt.item_id == bad.report_id


@pytest.mark.parametrize("first_hop", ["Not A Member!", "x" * 100_000], ids=["bad-id", "100k"])
def test_via_entries_must_be_member_ids(net: Network, ctx: Ctx, first_hop: str) -> None:
    report = make_report("hotline-de", "NL")
    with net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, ctx.de), via=[first_hop, SENDER])])
    receipt = verify_receipt(net, signed)
    assert outcome_name(receipt) == "OUTCOME_REJECTED"
    assert reason_name(receipt) in (MALFORMED, "REJECT_REASON_LIMIT_EXCEEDED")
