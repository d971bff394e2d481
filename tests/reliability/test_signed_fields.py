"""Tampering with signed fields, and members sending as someone else.

One real node (hotline-nl, responsible for NL) in a module-scoped network;
hotline-dk, hotline-de and the secretariat call it with their own TLS
identities. Every scenario flips EVERY bit of the field under attack (one
item per flipped bit, delivered in full batches), then checks what the
reliability suite cares about beyond the single refusal: every variant is
refused with the reason the verification order prescribes, nothing is
echoed from an unauthenticated payload, not one row is let in, and the
genuine item is still accepted afterwards (a forgery never occupies its id).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import timedelta

import pytest

from crypto.dsse import Envelope
from federation.core.case_status import CaseStatus
from federation.core.ids import is_key_id, is_member_id, new_uuid7
from federation.core.reasons import STATUS_UPDATE_TYPE
from federation.core.report import ContentHash, HashAlgorithm, Report
from federation.core.status_update import StatusUpdate
from federation.wire.convert import encode_status_update
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import receipt_pb2, report_pb2
from tests.support.hostile import (
    deliver_many,
    field_spans,
    flip_bit,
    flip_text,
    unmetered_network,
    watch,
)
from tests.support.net import (
    DEADLINE,
    Network,
    count_inbound,
    item,
    make_report,
    now,
    outcome_name,
    reason_name,
    sign,
    sign_report,
    small_members,
)

RECEIVER = "hotline-nl"
SENDER = "hotline-dk"
OTHER = "hotline-de"

ACCEPTED = ("OUTCOME_ACCEPTED", "REJECT_REASON_UNSPECIFIED")
BAD_SIGNATURE = ("OUTCOME_REJECTED", "REJECT_REASON_BAD_SIGNATURE")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("signed-fields") / "net"
    with unmetered_network(directory, small_members(RECEIVER)) as network:
        yield network


def _full_report(origin: str = SENDER) -> Report:
    """A report with every field set, so every field region is on the wire."""
    return make_report(
        origin,
        "NL",
        hashes=(
            ContentHash(HashAlgorithm.SHA256, bytes(range(32))),
            ContentHash(HashAlgorithm.MD5, bytes(range(16))),
        ),
        hosting_ip="192.0.2.7",
        hosting_asn=64500,
        site_type="forum",
        victim_age_group=2,
        analyst_note="synthetic test note",
    )


def _outcomes(receipts: list[receipt_pb2.Receipt]) -> list[tuple[str, str]]:
    return [(outcome_name(r), reason_name(r)) for r in receipts]


def _genuine_still_accepted(net: Network, envelope: Envelope, report_id: str) -> None:
    """The untouched item is accepted after its forgeries, and stored once."""
    (receipt,) = deliver_many(net, SENDER, RECEIVER, [item(envelope)])
    assert (outcome_name(receipt), reason_name(receipt)) == ACCEPTED, receipt.detail
    assert receipt.item_id == report_id
    assert count_inbound(net, RECEIVER, report_id) == 1


def _refused_unread(receipts: list[receipt_pb2.Receipt], payloads: list[bytes]) -> None:
    """Refused before the payload was parsed: no id echoed, each receipt names its bytes."""
    for receipt, payload in zip(receipts, payloads, strict=True):
        assert receipt.item_id == "", "nothing is read from an unauthenticated payload"
        assert receipt.payload_sha256 == hashlib.sha256(payload).digest()
        assert receipt.detail


# --- the payload, field by field ------------------------------------------------

REPORT_FIELDS = [f.name for f in report_pb2.Report.DESCRIPTOR.fields]


@pytest.mark.parametrize("field", REPORT_FIELDS)
def test_every_bit_flip_in_a_report_field_is_bad_signature(net: Network, field: str) -> None:
    """Flip each bit of one field's bytes (key, length and value) in a signed
    report, expect BAD_SIGNATURE for every variant, nothing stored, the genuine
    report still accepted."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    number = report_pb2.Report.DESCRIPTOR.fields_by_name[field].number
    spans = [s for s in field_spans(envelope.payload) if s.number == number]
    assert spans, f"{field} is not on the wire"
    payloads = [
        flip_bit(envelope.payload, bit)
        for span in spans
        for bit in range(span.start * 8, span.end * 8)
    ]
    items = [item(dataclasses.replace(envelope, payload=p)) for p in payloads]
    before = watch(net, RECEIVER)

    receipts = deliver_many(net, SENDER, RECEIVER, items)

    assert set(_outcomes(receipts)) == {BAD_SIGNATURE}
    _refused_unread(receipts, payloads)
    assert before.let_in() == 0
    _genuine_still_accepted(net, envelope, report.report_id)


def test_every_bit_flip_anywhere_in_the_payload_is_bad_signature(net: Network) -> None:
    """Flip every bit of the whole payload (field keys and unknown gaps
    included), expect BAD_SIGNATURE for all, nothing stored."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    payloads = [flip_bit(envelope.payload, b) for b in range(len(envelope.payload) * 8)]
    before = watch(net, RECEIVER)

    receipts = deliver_many(
        net, SENDER, RECEIVER, [item(dataclasses.replace(envelope, payload=p)) for p in payloads]
    )

    assert set(_outcomes(receipts)) == {BAD_SIGNATURE}
    _refused_unread(receipts, payloads)
    assert before.let_in() == 0
    _genuine_still_accepted(net, envelope, report.report_id)


# --- the envelope's other fields -------------------------------------------------


def test_every_bit_flip_in_the_signature_is_bad_signature(net: Network) -> None:
    """Flip each of the 512 signature bits, expect BAD_SIGNATURE for all (Ed25519
    signatures are not malleable), nothing stored, genuine report accepted."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    variants = [
        dataclasses.replace(envelope, signature=flip_bit(envelope.signature, b))
        for b in range(len(envelope.signature) * 8)
    ]
    before = watch(net, RECEIVER)

    receipts = deliver_many(net, SENDER, RECEIVER, [item(v) for v in variants])

    assert set(_outcomes(receipts)) == {BAD_SIGNATURE}
    _refused_unread(receipts, [envelope.payload] * len(variants))
    assert before.let_in() == 0
    _genuine_still_accepted(net, envelope, report.report_id)


def test_every_bit_flip_in_payload_type_is_refused(net: Network) -> None:
    """Flip each low bit of payload_type, expect UNSUPPORTED_PAYLOAD_TYPE (the
    type check comes before the signature, and one flipped bit can never name
    another accepted type), nothing stored."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    bits = len(envelope.payload_type) * 7
    variants = [
        dataclasses.replace(envelope, payload_type=flip_text(envelope.payload_type, b))
        for b in range(bits)
    ]
    before = watch(net, RECEIVER)

    receipts = deliver_many(net, SENDER, RECEIVER, [item(v) for v in variants])

    assert set(_outcomes(receipts)) == {
        ("OUTCOME_REJECTED", "REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE")
    }
    _refused_unread(receipts, [envelope.payload] * len(variants))
    assert before.let_in() == 0
    _genuine_still_accepted(net, envelope, report.report_id)


def _status_update(member: str) -> bytes:
    update = StatusUpdate(
        update_id=new_uuid7(),
        case_id=new_uuid7(),
        report_ids=(new_uuid7(),),
        member_id=member,
        status=CaseStatus.RECEIVED,
        sequence=1,
        observed_at=now() - timedelta(seconds=1),
    )
    return encode_status_update(update)


def test_signature_binds_the_payload_type(net: Network) -> None:
    """Relabel a signed report as a status update and a signed status update as
    a report (both accepted types), expect BAD_SIGNATURE: the DSSE encoding
    covers the type, so a signature never carries over to another type."""
    key = net.signing_key(SENDER)
    report = _full_report()
    as_report = sign_report(report, key)
    as_update = sign(_status_update(SENDER), key, SENDER, STATUS_UPDATE_TYPE)
    relabelled = [
        dataclasses.replace(as_report, payload_type=STATUS_UPDATE_TYPE),
        dataclasses.replace(as_update, payload_type=as_report.payload_type),
    ]
    before = watch(net, RECEIVER)

    receipts = deliver_many(net, SENDER, RECEIVER, [item(e) for e in relabelled])

    assert _outcomes(receipts) == [BAD_SIGNATURE, BAD_SIGNATURE]
    _refused_unread(receipts, [e.payload for e in relabelled])
    assert before.let_in() == 0
    _genuine_still_accepted(net, as_report, report.report_id)


def _expected_for_signer(net: Network, signer: str) -> tuple[str, str]:
    """What the verification order prescribes for an envelope naming ``signer``
    with hotline-dk's key id: malformed id, unknown member, or not its key."""
    if not is_member_id(signer):
        return ("OUTCOME_REJECTED", "REJECT_REASON_MALFORMED_PAYLOAD")
    if signer not in net.manifest.members:
        return ("OUTCOME_REJECTED", "REJECT_REASON_UNKNOWN_SIGNER")
    return ("OUTCOME_REJECTED", "REJECT_REASON_KEY_NOT_VALID")


def test_every_bit_flip_in_signer_member_id_is_refused(net: Network) -> None:
    """Flip each low bit of signer_member_id, expect MALFORMED_PAYLOAD (not an
    id), UNKNOWN_SIGNER (no such member) or KEY_NOT_VALID (a member, not its
    key) as the verification order prescribes for that variant; nothing stored."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    signers = [
        flip_text(envelope.signer_member_id, b) for b in range(len(envelope.signer_member_id) * 7)
    ]
    before = watch(net, RECEIVER)

    receipts = deliver_many(
        net,
        SENDER,
        RECEIVER,
        [item(dataclasses.replace(envelope, signer_member_id=s)) for s in signers],
    )

    assert _outcomes(receipts) == [_expected_for_signer(net, s) for s in signers]
    assert {reason_name(r) for r in receipts} >= {
        "REJECT_REASON_MALFORMED_PAYLOAD",
        "REJECT_REASON_UNKNOWN_SIGNER",
    }, "the flips reach both early refusals"
    _refused_unread(receipts, [envelope.payload] * len(signers))
    assert before.let_in() == 0
    _genuine_still_accepted(net, envelope, report.report_id)


def test_every_bit_flip_in_key_id_is_refused(net: Network) -> None:
    """Flip each low bit of key_id, expect MALFORMED_PAYLOAD when it is no longer
    lower-case hex and KEY_NOT_VALID when it names no key of the signer;
    nothing stored."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    key_ids = [flip_text(envelope.key_id, b) for b in range(len(envelope.key_id) * 7)]
    expected = [
        ("OUTCOME_REJECTED", "REJECT_REASON_KEY_NOT_VALID")
        if is_key_id(k)
        else ("OUTCOME_REJECTED", "REJECT_REASON_MALFORMED_PAYLOAD")
        for k in key_ids
    ]
    before = watch(net, RECEIVER)

    receipts = deliver_many(
        net, SENDER, RECEIVER, [item(dataclasses.replace(envelope, key_id=k)) for k in key_ids]
    )

    assert _outcomes(receipts) == expected
    assert len(set(expected)) == 2, "the flips reach both refusals"
    _refused_unread(receipts, [envelope.payload] * len(key_ids))
    assert before.let_in() == 0
    _genuine_still_accepted(net, envelope, report.report_id)


def test_signatures_swapped_between_two_items_are_bad_signature(net: Network) -> None:
    """Splice the valid signature of one report onto another report by the same
    signer (and back), expect BAD_SIGNATURE for both, nothing stored, both
    genuine reports accepted afterwards."""
    key = net.signing_key(SENDER)
    first, second = _full_report(), _full_report()
    a, b = sign_report(first, key), sign_report(second, key)
    swapped = [
        dataclasses.replace(a, signature=b.signature),
        dataclasses.replace(b, signature=a.signature),
    ]
    before = watch(net, RECEIVER)

    receipts = deliver_many(net, SENDER, RECEIVER, [item(e) for e in swapped])

    assert _outcomes(receipts) == [BAD_SIGNATURE, BAD_SIGNATURE]
    assert before.let_in() == 0
    _genuine_still_accepted(net, a, first.report_id)
    _genuine_still_accepted(net, b, second.report_id)


# --- author and sender -----------------------------------------------------------


def test_report_naming_another_author_is_author_mismatch(net: Network) -> None:
    """hotline-dk signs (with its own valid key) a report whose origin is
    hotline-de, expect AUTHOR_MISMATCH, not stored; the genuine hotline-de
    report with the same id, forwarded by hotline-dk, is then accepted."""
    forged = _full_report(origin=OTHER)
    envelope = sign_report(forged, net.signing_key(SENDER), signer=SENDER)
    before = watch(net, RECEIVER)

    (receipt,) = deliver_many(net, SENDER, RECEIVER, [item(envelope)])

    assert (outcome_name(receipt), reason_name(receipt)) == (
        "OUTCOME_REJECTED",
        "REJECT_REASON_AUTHOR_MISMATCH",
    )
    assert receipt.item_id == forged.report_id  # authenticated, so it may be named
    assert before.let_in() == 0
    genuine = sign_report(forged, net.signing_key(OTHER))
    (again,) = deliver_many(net, SENDER, RECEIVER, [item(genuine, via=[SENDER])])
    assert (outcome_name(again), reason_name(again)) == ACCEPTED, again.detail
    assert count_inbound(net, RECEIVER, forged.report_id) == 1


SENDER_MISMATCH = ("OUTCOME_REJECTED", "REJECT_REASON_SENDER_MISMATCH")

#: (TLS peer, via_member_ids) for an item authored and signed by hotline-de.
PATHS: dict[str, tuple[str, list[str], tuple[str, str]]] = {
    "peer-sends-anothers-item-as-its-own": (SENDER, [], SENDER_MISMATCH),
    "peer-claims-the-author-forwarded-it": (SENDER, [OTHER], SENDER_MISMATCH),
    "peer-claims-a-third-member-forwarded-it": ("secretariat", [SENDER], SENDER_MISMATCH),
    "peer-hidden-behind-a-longer-path": (SENDER, [SENDER, "secretariat"], SENDER_MISMATCH),
    "peer-forwards-as-last-hop": (SENDER, [SENDER], ACCEPTED),
    "peer-forwards-after-another-hop": (SENDER, ["secretariat", SENDER], ACCEPTED),
}


@pytest.mark.parametrize(("peer", "via", "expected"), PATHS.values(), ids=PATHS.keys())
def test_forwarding_is_legal_only_from_the_last_hop(
    net: Network, peer: str, via: list[str], expected: tuple[str, str]
) -> None:
    """A member hands over an item signed by hotline-de with a given path, expect
    SENDER_MISMATCH unless the TLS peer is the last entry of via_member_ids
    (spec §2/§6); a refused item is not stored and the legal delivery of the
    same item afterwards is accepted."""
    report = _full_report(origin=OTHER)
    envelope = sign_report(report, net.signing_key(OTHER))
    before = watch(net, RECEIVER)

    (receipt,) = deliver_many(net, peer, RECEIVER, [item(envelope, via=via)])

    assert (outcome_name(receipt), reason_name(receipt)) == expected, receipt.detail
    assert receipt.item_id == report.report_id
    if expected == ACCEPTED:
        assert before.let_in() == 1
        return
    assert before.let_in() == 0
    (legal,) = deliver_many(net, SENDER, RECEIVER, [item(envelope, via=[SENDER])])
    assert (outcome_name(legal), reason_name(legal)) == ACCEPTED, legal.detail
    assert count_inbound(net, RECEIVER, report.report_id) == 1


def test_replay_by_another_forwarder_gets_the_stored_receipt(net: Network) -> None:
    """hotline-dk delivers its report; the secretariat replays the same envelope
    as a forwarder, expect the very same signed receipt and still one stored row."""
    report = _full_report()
    envelope = sign_report(report, net.signing_key(SENDER))
    with net.stub(SENDER, RECEIVER) as stub:
        first = stub.Deliver(fed_pb.DeliverRequest(items=[item(envelope)]), timeout=DEADLINE)
    with net.stub("secretariat", RECEIVER) as stub:
        replay = stub.Deliver(
            fed_pb.DeliverRequest(items=[item(envelope, via=["secretariat"])]), timeout=DEADLINE
        )

    assert first.receipts[0] == replay.receipts[0]
    assert count_inbound(net, RECEIVER, report.report_id) == 1
