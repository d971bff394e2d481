"""Malformed, oversized and deeply nested input on a live node.

One real node (hotline-nl) in a module-scoped network, fed by hotline-dk.
Requests are built from raw protobuf wire bytes where the generated classes
would refuse to build them (truncated, invalid UTF-8, nested 100,000 deep).

What is defined (spec §4, §8 and federation_service.proto):
- problems of the whole call: more than 1000 items or 8 MiB is
  RESOURCE_EXHAUSTED; a request that is not a DeliverRequest at all fails
  the call (see ``test_undecodable_request_is_invalid_argument``);
- problems of one item, including anything inside its signed payload: a
  REJECTED receipt with a reason code, the rest of the batch unaffected.

After each: nothing let in (inbound_items), node memory bounded (VmRSS), and
a normal valid Deliver still succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf.message import Message

from crypto.keys import SigningKey
from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.core.reasons import REPORT_TYPE, STATUS_UPDATE_TYPE
from federation.core.status_update import StatusUpdate
from federation.wire.convert import encode_report, encode_status_update
from hfp.v1 import envelope_pb2, federation_service_pb2, report_pb2, status_pb2
from tests.support.hostile import (
    END_GROUP,
    RSS_GROWTH_BOUND_KIB,
    START_GROUP,
    Watch,
    deliver_many,
    field_spans,
    length_delimited,
    nested_groups,
    raw_deliver,
    still_serving,
    tag,
    unmetered_network,
    varint,
    varint_field,
    watch,
)
from tests.support.net import (
    BULK_DEADLINE,
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


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("malformed") / "net"
    with unmetered_network(directory, small_members(RECEIVER)) as network:
        yield network


def _num(message: type[Message], field: str) -> int:
    return message.DESCRIPTOR.fields_by_name[field].number


def _after(net: Network, before: Watch, let_in: int = 0) -> None:
    """The aftermath every hostile input must leave: only ``let_in`` rows,
    memory bounded, the node serving."""
    assert before.let_in() == let_in
    assert before.rss_growth() < RSS_GROWTH_BOUND_KIB
    still_serving(net, SENDER, RECEIVER)


# --- item level: inside the signed payload, and the item's own fields -----------

#: Builds one hostile item for the network.
Builder = Callable[[Network], federation_service_pb2.ForwardedItem]
#: A hostile item and the reject reason its receipt must carry.
ItemCase = tuple[Builder, str]


def _report_bytes(*extra: bytes) -> bytes:
    """A valid report by hotline-dk with raw fields appended (a later scalar
    field replaces an earlier one, so appending is how a field is overridden)."""
    return encode_report(make_report(SENDER, "NL")) + b"".join(extra)


def _signed(payload: bytes, payload_type: str = REPORT_TYPE) -> Builder:
    def build(net: Network) -> federation_service_pb2.ForwardedItem:
        return item(sign(payload, net.signing_key(SENDER), SENDER, payload_type))

    return build


def _report_with(reason: str, *extra: bytes) -> ItemCase:
    return _signed(_report_bytes(*extra)), reason


def _truncated_inside_url() -> bytes:
    payload = _report_bytes()
    (url,) = (s for s in field_spans(payload) if s.number == _num(report_pb2.Report, "url"))
    return payload[: url.value_start + 5]


def _update_bytes(*extra: bytes) -> bytes:
    update = StatusUpdate(
        update_id=new_uuid7(),
        case_id=new_uuid7(),
        report_ids=(new_uuid7(),),
        member_id=SENDER,
        status=CaseStatus.RECEIVED,
        sequence=1,
        observed_at=now() - timedelta(seconds=1),
    )
    return encode_status_update(update) + b"".join(extra)


def _report_ids(count: int) -> bytes:
    number = _num(status_pb2.StatusUpdate, "report_ids")
    return b"".join(length_delimited(number, new_uuid7().encode()) for _ in range(count))


def _hashes(count: int) -> bytes:
    # SHA-256 entries with an empty value: the smallest a hash entry can be.
    entry = length_delimited(_num(report_pb2.Report, "hashes"), varint_field(1, 1))
    return entry * count


def _blob_in_group() -> bytes:
    return tag(99, START_GROUP) + length_delimited(1, bytes(4096)) + tag(99, END_GROUP)


def _blob_in_hash_entry() -> bytes:
    entry = varint_field(1, 1) + length_delimited(2, bytes(32)) + length_delimited(99, bytes(4096))
    return length_delimited(_num(report_pb2.Report, "hashes"), entry)


def _blob_in_hash_value_sent_twice() -> bytes:
    # The parser keeps the last value of a field sent twice (a valid 32-byte
    # hash); the first, a blob, stays in the signed payload that is stored.
    entry = varint_field(1, 1) + length_delimited(2, bytes(4096)) + length_delimited(2, bytes(32))
    return length_delimited(_num(report_pb2.Report, "hashes"), entry)


def _blob_in_timestamp() -> bytes:
    stamp = varint_field(1, int(now().timestamp()) - 5) + length_delimited(99, bytes(4096))
    return length_delimited(_num(report_pb2.Report, "created_at"), stamp)


def _envelope_field(**changes: object) -> Builder:
    """A correctly signed report whose envelope then gets ``changes``."""

    def build(net: Network) -> federation_service_pb2.ForwardedItem:
        forwarded = item(sign_report(make_report(SENDER, "NL"), net.signing_key(SENDER)))
        for name, value in changes.items():
            setattr(forwarded.envelope, name, value)
        return forwarded

    return build


def _via(count: int) -> Builder:
    def build(net: Network) -> federation_service_pb2.ForwardedItem:
        envelope = sign_report(make_report("hotline-de", "NL"), net.signing_key("hotline-de"))
        return item(envelope, via=["hotline-de"] * (count - 1) + [SENDER])

    return build


MALFORMED = "REJECT_REASON_MALFORMED_PAYLOAD"
LIMIT = "REJECT_REASON_LIMIT_EXCEEDED"
MEDIA = "REJECT_REASON_MEDIA_NOT_ALLOWED"
URL = _num(report_pb2.Report, "url")

ITEM_CASES: dict[str, ItemCase] = {
    # invalid UTF-8 inside signed string fields
    "url-invalid-utf8": _report_with(MALFORMED, length_delimited(URL, b"https://a.test/\xff")),
    "report-id-lone-continuation-byte": _report_with(MALFORMED, length_delimited(1, b"\x80" * 36)),
    "url-overlong-utf8-slash": _report_with(
        MALFORMED, length_delimited(URL, b"https://a.test\xc0\xaf")
    ),
    "url-utf8-encoded-surrogate": _report_with(
        MALFORMED, length_delimited(URL, b"https://a.test/\xed\xa0\x80")
    ),
    "status-note-invalid-utf8": (
        _signed(_update_bytes(length_delimited(8, b"note \xfe\xff")), STATUS_UPDATE_TYPE),
        MALFORMED,
    ),
    # truncated and inconsistent framing
    "report-truncated-inside-url": (_signed(_truncated_inside_url()), MALFORMED),
    "report-length-beyond-the-end": _report_with(MALFORMED, tag(URL, 2) + varint(1000) + b"abc"),
    "report-field-number-zero": _report_with(MALFORMED, b"\x02\x01x"),
    # deep nesting (groups are the only unbounded nesting a Report can carry)
    "groups-nested-101-deep": _report_with(MALFORMED, nested_groups(99, 101)),
    "groups-nested-16000-deep": _report_with(MALFORMED, nested_groups(99, 16_000)),
    "groups-nested-100000-deep": _report_with(LIMIT, nested_groups(99, 100_000)),
    # enum values out of range
    "media-type-99": _report_with(
        MALFORMED, varint_field(_num(report_pb2.Report, "media_type"), 99)
    ),
    "classification-negative": _report_with(
        MALFORMED, varint_field(_num(report_pb2.Report, "classification"), (1 << 64) - 1)
    ),
    "victim-age-group-max-int32": _report_with(
        MALFORMED, varint_field(_num(report_pb2.Report, "victim_age_group"), (1 << 31) - 1)
    ),
    "hash-algorithm-99": _report_with(
        MALFORMED,
        length_delimited(
            _num(report_pb2.Report, "hashes"), varint_field(1, 99) + length_delimited(2, bytes(32))
        ),
    ),
    "status-99": (_signed(_update_bytes(varint_field(5, 99)), STATUS_UPDATE_TYPE), MALFORMED),
    "created-at-after-year-9999": _report_with(
        MALFORMED,
        length_delimited(_num(report_pb2.Report, "created_at"), varint_field(1, 1 << 40)),
    ),
    # huge repeated fields
    "16000-hashes-under-the-payload-limit": _report_with(LIMIT, _hashes(16_000)),
    "100000-hashes": _report_with(LIMIT, _hashes(100_000)),
    "1001-report-ids": (_signed(_update_bytes(_report_ids(1001)), STATUS_UPDATE_TYPE), LIMIT),
    "100000-report-ids": (_signed(_update_bytes(_report_ids(100_000)), STATUS_UPDATE_TYPE), LIMIT),
    "100000-via-member-ids": (_via(100_000), "REJECT_REASON_LOOP_DETECTED"),
    # blobs (media) hidden in unknown fields below the top level
    "blob-in-unknown-group": _report_with(MEDIA, _blob_in_group()),
    "blob-in-hash-entry-unknown-field": _report_with(MEDIA, _blob_in_hash_entry()),
    "blob-in-timestamp-unknown-field": _report_with(MEDIA, _blob_in_timestamp()),
    # blobs in a known field sent twice: only the last value is kept and checked
    "blob-in-a-url-sent-twice": (
        _signed(length_delimited(URL, b"https://a.test/" + b"A" * 4096) + _report_bytes()),
        MEDIA,
    ),
    "blob-in-a-hash-value-sent-twice": _report_with(MEDIA, _blob_in_hash_value_sent_twice()),
    # oversized envelope fields (valid UTF-8)
    "payload-type-100000-chars": (_envelope_field(payload_type="hfp.v1." + "R" * 100_000), LIMIT),
    "signer-member-id-100000-chars": (_envelope_field(signer_member_id="a" * 100_000), MALFORMED),
    "key-id-100000-chars": (_envelope_field(key_id="0" * 100_000), MALFORMED),
    "signature-100000-bytes": (
        _envelope_field(signature=bytes(100_000)),
        "REJECT_REASON_BAD_SIGNATURE",
    ),
}


@pytest.mark.parametrize(("build", "reason"), ITEM_CASES.values(), ids=ITEM_CASES.keys())
def test_hostile_item_is_rejected_and_its_batch_accepted(
    net: Network, build: Builder, reason: str
) -> None:
    """Deliver a hostile item between two valid ones, expect a REJECTED receipt
    with the prescribed reason, both valid items ACCEPTED, only those two
    stored, node memory bounded, and the node still serving."""
    good = [make_report(SENDER, "NL") for _ in range(2)]
    key = net.signing_key(SENDER)
    hostile = build(net)
    before = watch(net, RECEIVER)

    receipts = deliver_many(
        net,
        SENDER,
        RECEIVER,
        [item(sign_report(good[0], key)), hostile, item(sign_report(good[1], key))],
    )

    assert (outcome_name(receipts[1]), reason_name(receipts[1])) == ("OUTCOME_REJECTED", reason), (
        receipts[1].detail
    )
    assert receipts[1].detail
    for receipt, report in zip((receipts[0], receipts[2]), good, strict=True):
        assert outcome_name(receipt) == "OUTCOME_ACCEPTED", receipt.detail
        assert count_inbound(net, RECEIVER, report.report_id) == 1
    _after(net, before, let_in=2)


# --- call level: limits ---------------------------------------------------------


def _valid_item(net: Network) -> tuple[bytes, str]:
    """One valid item's wire bytes (as field 1 of a DeliverRequest), and its id."""
    report = make_report(SENDER, "NL")
    forwarded = item(sign_report(report, net.signing_key(SENDER)))
    return length_delimited(1, forwarded.SerializeToString()), report.report_id


def _filler(size: int) -> bytes:
    """An unknown field of ``size`` bytes in the DeliverRequest itself."""
    return length_delimited(99, os.urandom(size))


def _full_items(net: Network, total: int) -> bytes:
    """Valid items with 64 KiB payloads (the per-item maximum) up to ``total`` bytes."""
    key = net.signing_key(SENDER)
    out = b""
    while len(out) < total:
        signed = item(sign(os.urandom(64 * 1024), key, SENDER))
        out += length_delimited(1, signed.SerializeToString())
    return out


MIB = 1024 * 1024
OVERSIZE: dict[str, Callable[[Network], bytes]] = {
    "8-MiB-plus-1-KiB": lambda net: _filler(8 * MIB + 1024),
    "130-items-of-64-KiB": lambda net: _full_items(net, 8 * MIB + 1),
    "9-MiB": lambda net: _filler(9 * MIB),
    "30-MiB": lambda net: _filler(30 * MIB),
}


@pytest.mark.parametrize("extra", OVERSIZE.values(), ids=OVERSIZE.keys())
def test_oversized_request_is_resource_exhausted(
    net: Network, extra: Callable[[Network], bytes]
) -> None:
    """Send a request over 8 MiB that carries one valid item, expect
    RESOURCE_EXHAUSTED, not even the valid item stored, memory bounded, the
    node serving."""
    valid, report_id = _valid_item(net)
    request = valid + extra(net)
    before = watch(net, RECEIVER)

    result = raw_deliver(net, SENDER, RECEIVER, request, timeout=BULK_DEADLINE)

    assert result.code == grpc.StatusCode.RESOURCE_EXHAUSTED, result.details
    assert count_inbound(net, RECEIVER, report_id) == 0
    _after(net, before)


@pytest.mark.parametrize("count", [1001, 100_000])
def test_batch_over_1000_items_is_resource_exhausted(net: Network, count: int) -> None:
    """Send a batch of more than 1000 items (valid ones, or 100,000 empty ones),
    expect RESOURCE_EXHAUSTED and not one item stored, the node serving."""
    key = net.signing_key(SENDER)
    reports = [make_report(SENDER, "NL") for _ in range(min(count, 1001))]
    items = [item(sign_report(r, key)).SerializeToString() for r in reports]
    request = b"".join(length_delimited(1, i) for i in items)
    request += length_delimited(1, b"") * (count - len(items))
    before = watch(net, RECEIVER)

    result = raw_deliver(net, SENDER, RECEIVER, request, timeout=BULK_DEADLINE)

    assert result.code == grpc.StatusCode.RESOURCE_EXHAUSTED, result.details
    assert all(
        count_inbound(net, RECEIVER, r.report_id) == 0 for r in reports[:: len(reports) // 10]
    )
    _after(net, before)


def test_empty_batch_gets_no_receipts(net: Network) -> None:
    """Send a DeliverRequest without items, expect OK with no receipts, nothing stored."""
    before = watch(net, RECEIVER)
    result = raw_deliver(net, SENDER, RECEIVER, b"")
    assert result.code == grpc.StatusCode.OK
    assert result.response is not None and len(result.response.receipts) == 0
    _after(net, before)


# --- call level: requests that are not a DeliverRequest at all --------------------


def _envelope_raw(net: Network, **raw: bytes) -> bytes:
    """A signed envelope's wire bytes with some string fields replaced by raw bytes."""
    envelope = sign_report(make_report(SENDER, "NL"), net.signing_key(SENDER))
    fields = {
        "payload": envelope.payload,
        "payload_type": envelope.payload_type.encode(),
        "signer_member_id": envelope.signer_member_id.encode(),
        "key_id": envelope.key_id.encode(),
        "signature": envelope.signature,
        **raw,
    }
    return b"".join(
        length_delimited(_num(envelope_pb2.SignedEnvelope, name), value)
        for name, value in fields.items()
    )


def _item_raw(envelope: bytes, *via: bytes) -> bytes:
    body = length_delimited(1, envelope) + b"".join(length_delimited(2, v) for v in via)
    return length_delimited(1, body)


UNDECODABLE: dict[str, Callable[[Network], bytes]] = {
    "truncated-inside-an-item": lambda net: _valid_item(net)[0][:-10],
    "length-beyond-the-end": lambda net: tag(1, 2) + varint(1000) + b"abc",
    "signer-member-id-invalid-utf8": lambda net: _item_raw(
        _envelope_raw(net, signer_member_id=b"hotline-d\xff")
    ),
    "payload-type-invalid-utf8": lambda net: _item_raw(
        _envelope_raw(net, payload_type=b"hfp.v1.Rep\xc3\x28rt")
    ),
    "key-id-invalid-utf8": lambda net: _item_raw(_envelope_raw(net, key_id=b"\xed\xa0\x80" * 21)),
    "via-member-id-invalid-utf8": lambda net: _item_raw(_envelope_raw(net), b"hotline-dk\x80"),
    "groups-nested-101-deep-in-the-request": lambda net: nested_groups(99, 101),
    "groups-nested-100000-deep-in-an-envelope": lambda net: _item_raw(
        _envelope_raw(net) + nested_groups(99, 100_000)
    ),
}


@pytest.mark.parametrize("build", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_undecodable_request_fails_alone(net: Network, build: Callable[[Network], bytes]) -> None:
    """Send a request that does not decode as a DeliverRequest next to a valid
    item, expect the call to fail (nothing in it is processed, so the valid
    item is not stored either), memory bounded, and the node still serving."""
    valid, report_id = _valid_item(net)
    before = watch(net, RECEIVER)

    result = raw_deliver(net, SENDER, RECEIVER, valid + build(net))

    assert result.code != grpc.StatusCode.OK
    assert count_inbound(net, RECEIVER, report_id) == 0
    _after(net, before)


def test_undecodable_request_is_invalid_argument(net: Network) -> None:
    """Send each request that does not decode as a DeliverRequest, expect
    INVALID_ARGUMENT (a defined error) rather than INTERNAL for every one."""
    codes = {
        name: raw_deliver(net, SENDER, RECEIVER, build(net)).code
        for name, build in UNDECODABLE.items()
    }
    assert codes == dict.fromkeys(UNDECODABLE, grpc.StatusCode.INVALID_ARGUMENT)


def test_1000_unknown_key_ids_in_one_batch_are_all_refused(net: Network) -> None:
    """Deliver 1000 items, each naming a different random key id of hotline-dk,
    expect 1000 KEY_NOT_VALID receipts, nothing stored, the node serving."""
    report = make_report(SENDER, "NL")
    items = [item(sign_report(report, SigningKey.generate())) for _ in range(1000)]
    before = watch(net, RECEIVER)

    receipts = deliver_many(net, SENDER, RECEIVER, items)

    assert {reason_name(r) for r in receipts} == {"REJECT_REASON_KEY_NOT_VALID"}
    _after(net, before)
