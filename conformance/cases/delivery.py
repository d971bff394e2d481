"""Receipts (section 3), batches (section 4), idempotency and deduplication (section 5)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import grpc

from conformance.context import (
    BULK_DEADLINE,
    Context,
    describe_receipt,
    live_clock,
    rpc_code,
    rpc_text,
)
from conformance.dsse import REPORT_TYPE
from conformance.items import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    Expect,
    rejected,
)
from conformance.registry import CaseFailedError, case, fail
from conformance.rosters import timestamp_datetime
from hfp.v1 import envelope_pb2, federation_service_pb2, receipt_pb2, report_pb2

R = receipt_pb2
MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024


def _item(envelope: envelope_pb2.SignedEnvelope) -> federation_service_pb2.ForwardedItem:
    return federation_service_pb2.ForwardedItem(envelope=envelope)


def bad_signature_items(
    ctx: Context, count: int, size: int = 8
) -> list[federation_service_pb2.ForwardedItem]:
    """``count`` distinct items with a zero signature (cheap to refuse)."""
    items = []
    for index in range(count):
        payload = f"{ctx.run_id}-{index:06d}".encode().ljust(size, b".")
        envelope = envelope_pb2.SignedEnvelope(
            payload=payload,
            payload_type=REPORT_TYPE,
            signer_member_id=ctx.me.member_id,
            key_id=ctx.me.key.key_id,
            signature=bytes(64),
        )
        items.append(_item(envelope))
    return items


# --- receipts ------------------------------------------------------------------------------


@case(
    "RCP-001",
    "3",
    "an accepted report's receipt is signed by the receiver and names item, bytes, time and case",
)
def receipt_of_accepted(ctx: Context) -> None:
    f = ctx.factory
    report = f.report("rcp-accepted")
    receipt = ctx.run_item(f.report_spec(report, f.accepted_here()))
    if receipt.payload_type != REPORT_TYPE:
        fail(f"receipt payload_type is {receipt.payload_type!r}")
    at = timestamp_datetime(receipt.received_at.seconds, receipt.received_at.nanos)
    if abs(at - live_clock()) > timedelta(minutes=5):
        fail(f"receipt received_at {at.isoformat()} is not the time of delivery")


@case(
    "RCP-002",
    "3",
    "a receipt for an item refused before parsing has an empty item_id and the payload digest",
    reject=True,
)
def receipt_before_parse(ctx: Context) -> None:
    f = ctx.factory
    envelope = f.sign(f.report("rcp-before-parse"))
    envelope.signature = bytes(64)
    receipt = ctx.run_item(f.spec(envelope, rejected(R.REJECT_REASON_BAD_SIGNATURE)))
    if receipt.item_id:
        fail(f"expected an empty item_id (payload never authenticated), got {receipt.item_id!r}")


@case(
    "RCP-003",
    "3",
    "a receipt for an item refused after parsing names its report_id",
    reject=True,
)
def receipt_after_parse(ctx: Context) -> None:
    f = ctx.factory
    report = f.report("rcp-after-parse", created_at=f.future(timedelta(days=1)))
    receipt = ctx.run_item(f.report_spec(report, rejected(R.REJECT_REASON_CLOCK_SKEW)))
    if receipt.item_id != report.report_id:
        fail(f"expected item_id {report.report_id}, got {receipt.item_id!r}")


@case(
    "RCP-004",
    "3",
    "a receipt echoes an over-long payload_type cut to at most 64 bytes",
    reject=True,
)
def receipt_echo_cut(ctx: Context) -> None:
    f = ctx.factory
    long_type = "hfp.v1." + "X" * 100
    envelope = f.sign(f.report("rcp-echo"), payload_type=long_type)
    receipt = ctx.run_item(f.spec(envelope, rejected(R.REJECT_REASON_LIMIT_EXCEEDED)))
    if len(receipt.payload_type.encode()) > 64 or not long_type.startswith(receipt.payload_type):
        fail(f"expected a prefix of at most 64 bytes, got {receipt.payload_type!r}")


# --- batches -------------------------------------------------------------------------------


@case("BAT-001", "4", "an empty batch succeeds with no receipts")
def empty_batch(ctx: Context) -> None:
    receipts = ctx.deliver_ok([])
    if receipts:
        fail(f"expected no receipts, got {len(receipts)}")


@case(
    "BAT-002",
    "4",
    "a mixed batch gets one receipt per item, in order; bad items do not spoil it",
    reject=True,
)
def mixed_batch(ctx: Context) -> None:
    f = ctx.factory
    bad_signature = f.sign(f.report("bat-bad"))
    bad_signature.signature = bytes(64)
    specs = [
        f.report_spec(f.report("bat-good-1"), Expect(ACCEPTED)),
        f.spec(bad_signature, rejected(R.REJECT_REASON_BAD_SIGNATURE)),
        f.report_spec(
            f.report("bat-forward", country=f.other_country), f.routed(f.other.member_id)
        ),
        f.spec(
            f.sign(f.report("bat-type"), payload_type="hfp.v1.Picture"),
            rejected(R.REJECT_REASON_UNSUPPORTED_PAYLOAD_TYPE),
        ),
        f.report_spec(f.report("bat-good-2"), Expect(ACCEPTED)),
    ]
    receipts = ctx.deliver_ok([s.item for s in specs])
    for index, (spec, envelope) in enumerate(zip(specs, receipts, strict=True)):
        receipt = ctx.check_receipt(envelope, spec.item.envelope)
        try:
            ctx.expect(receipt, spec.expect, spec.item_id)
        except CaseFailedError as exc:
            fail(f"item {index}: {exc}")


@case(
    "BAT-003",
    "4",
    "a batch of exactly 1000 items is processed: 1000 receipts, in order",
    reject=True,
)
def full_batch(ctx: Context) -> None:
    items = bad_signature_items(ctx, MAX_BATCH_ITEMS)
    receipts = ctx.deliver_ok(items, BULK_DEADLINE)
    for index, (item, envelope) in enumerate(zip(items, receipts, strict=True)):
        receipt = ctx.check_receipt(envelope, item.envelope)
        if receipt.outcome != REJECTED or receipt.reject_reason != R.REJECT_REASON_BAD_SIGNATURE:
            fail(f"item {index}: expected REJECTED/BAD_SIGNATURE, got {describe_receipt(receipt)}")


def _expect_exhausted(ctx: Context, items: list[federation_service_pb2.ForwardedItem]) -> None:
    try:
        ctx.deliver(items, BULK_DEADLINE)
    except grpc.RpcError as exc:
        if rpc_code(exc) != grpc.StatusCode.RESOURCE_EXHAUSTED:
            fail(f"expected RESOURCE_EXHAUSTED, got {rpc_text(exc)}")
        return
    fail("expected RESOURCE_EXHAUSTED, got receipts")


@case("BAT-004", "4", "a batch of 1001 items fails with RESOURCE_EXHAUSTED", reject=True)
def too_many_items(ctx: Context) -> None:
    _expect_exhausted(ctx, bad_signature_items(ctx, MAX_BATCH_ITEMS + 1))


@case("BAT-005", "4", "a batch over 8 MiB fails with RESOURCE_EXHAUSTED", reject=True)
def too_many_bytes(ctx: Context) -> None:
    size = MAX_BATCH_BYTES // 3 + 1024
    _expect_exhausted(ctx, bad_signature_items(ctx, 3, size))


# --- idempotency ---------------------------------------------------------------------------


@case("IDM-001", "5", "redelivering an accepted report later returns the byte-identical receipt")
def redelivery_later(ctx: Context) -> None:
    f = ctx.factory
    spec = f.report_spec(f.report("idm-later"), f.accepted_here())
    (first,) = ctx.deliver_ok([spec.item])
    ctx.expect(ctx.check_receipt(first, spec.item.envelope), spec.expect, spec.item_id)
    (second,) = ctx.deliver_ok([spec.item])
    if second.SerializeToString() != first.SerializeToString():
        got = describe_receipt(ctx.check_receipt(second, spec.item.envelope))
        fail(f"expected the stored receipt byte for byte, got a different one ({got})")


@case("IDM-002", "5", "the same report twice in one batch gets two identical receipts, one record")
def redelivery_same_batch(ctx: Context) -> None:
    f = ctx.factory
    spec = f.report_spec(f.report("idm-same-batch"), f.accepted_here())
    first, second = ctx.deliver_ok([spec.item, spec.item])
    ctx.expect(ctx.check_receipt(first, spec.item.envelope), spec.expect, spec.item_id)
    if second.SerializeToString() != first.SerializeToString():
        got = describe_receipt(ctx.check_receipt(second, spec.item.envelope))
        fail(f"expected two identical receipts, the second says {got}")


@case(
    "IDM-003",
    "5",
    "a different payload under an already stored report_id gets MALFORMED_PAYLOAD",
    reject=True,
)
def same_id_other_payload(ctx: Context) -> None:
    f = ctx.factory
    report = f.report("idm-conflict")
    ctx.run_item(f.report_spec(report, f.accepted_here()))
    changed = report_pb2.Report()
    changed.CopyFrom(report)
    changed.url = f.url("idm-conflict-other")
    ctx.run_item(f.report_spec(changed, rejected(R.REJECT_REASON_MALFORMED_PAYLOAD)))


@case(
    "IDM-004",
    "0",
    "a refused item is not stored: its report_id is still free for a valid report",
)
def refused_not_stored(ctx: Context) -> None:
    f = ctx.factory
    report = f.report("idm-squat", created_at=f.future(timedelta(days=1)))
    ctx.run_item(f.report_spec(report, rejected(R.REJECT_REASON_CLOCK_SKEW)))
    valid = f.report("idm-squat-valid", report_id=report.report_id)
    ctx.run_item(f.report_spec(valid, f.accepted_here()))


@case(
    "IDM-005",
    "5",
    "a refused item delivered again is refused again for the same reason",
    reject=True,
)
def refused_again(ctx: Context) -> None:
    f = ctx.factory
    report = f.report("idm-refused-twice", author=f.other.member_id)
    spec = f.report_spec(report, rejected(R.REJECT_REASON_AUTHOR_MISMATCH))
    ctx.run_item(spec)
    ctx.run_item(spec)


# --- deduplication -------------------------------------------------------------------------

BASE_PATH = "/dup/a/b/img%3A1.jpg?x=1&y=2"


def host_of(ctx: Context) -> str:
    """The run's host name (``cf-<run>.conformance.example``)."""
    return ctx.factory.url_prefix.removeprefix("https://")


def file_report(
    ctx: Context, url: str, expect: Expect, *, hashes: list[bytes] | None = None
) -> receipt_pb2.Receipt:
    """Deliver a report for the target's country with this URL."""
    f = ctx.factory
    report = f.report(
        "dup", url=url, hashes=[(report_pb2.HASH_ALGORITHM_SHA256, h) for h in hashes or []]
    )
    return ctx.run_item(f.report_spec(report, expect))


def dup_base(ctx: Context) -> str:
    """The case id of the run's base URL (filed once)."""

    def make() -> str:
        receipt = file_report(ctx, f"https://{host_of(ctx)}{BASE_PATH}", Expect(ACCEPTED))
        return receipt.case_id

    return ctx.once("dup-base", make)


def expect_joins(ctx: Context, url: str) -> None:
    """A report for ``url`` must be a DUPLICATE of the base case."""
    case_id = dup_base(ctx)
    receipt = file_report(ctx, url, Expect(DUPLICATE))
    if receipt.case_id != case_id:
        fail(f"expected DUPLICATE of case {case_id}, got DUPLICATE of {receipt.case_id}")


def expect_new_case(ctx: Context, url: str) -> None:
    """A report for ``url`` must open a case of its own."""
    case_id = dup_base(ctx)
    receipt = file_report(ctx, url, Expect(ACCEPTED))
    if receipt.case_id == case_id:
        fail(f"expected a new case, got case {case_id} of a different URL")


@case("DUP-001", "5", "the same URL with a new report_id is a DUPLICATE of the same case")
def same_url(ctx: Context) -> None:
    expect_joins(ctx, f"https://{host_of(ctx)}{BASE_PATH}")


@case("DUP-002", "5", "an upper-case scheme and host is the same URL (DUPLICATE)")
def upper_host(ctx: Context) -> None:
    expect_joins(ctx, f"HTTPS://{host_of(ctx).upper()}{BASE_PATH}")


@case("DUP-003", "5", "an explicit default port (:443) is the same URL (DUPLICATE)")
def default_port(ctx: Context) -> None:
    expect_joins(ctx, f"https://{host_of(ctx)}:443{BASE_PATH}")


@case("DUP-004", "5", "a fragment does not make another URL (DUPLICATE)")
def fragment(ctx: Context) -> None:
    expect_joins(ctx, f"https://{host_of(ctx)}{BASE_PATH}#top")


@case("DUP-005", "5", "dot segments are resolved (DUPLICATE)")
def dot_segments(ctx: Context) -> None:
    expect_joins(ctx, f"https://{host_of(ctx)}/dup/a/./c/../b/img%3A1.jpg?x=1&y=2")


@case("DUP-006", "5", "percent-encoded unreserved characters are decoded (DUPLICATE)")
def unreserved_encoded(ctx: Context) -> None:
    expect_joins(ctx, f"https://{host_of(ctx)}/%64up/%61/b/img%3A1%2Ejpg?x=1&y=2")


@case("DUP-007", "5", "lower-case percent-encoding hex digits are normalised (DUPLICATE)")
def lower_hex(ctx: Context) -> None:
    expect_joins(ctx, f"https://{host_of(ctx)}/dup/a/b/img%3a1.jpg?x=1&y=2")


@case("DUP-008", "5", "an empty path equals / (DUPLICATE)")
def empty_path(ctx: Context) -> None:
    host = "root-" + host_of(ctx)
    first = file_report(ctx, f"https://{host}", Expect(ACCEPTED))
    second = file_report(ctx, f"https://{host}/", Expect(DUPLICATE))
    if second.case_id != first.case_id:
        fail(f"expected DUPLICATE of case {first.case_id}, got {second.case_id}")


@case("DUP-009", "5", "an IDN host equals its punycode form (DUPLICATE)")
def idn_host(ctx: Context) -> None:
    label = "bücher"
    puny = label.encode("idna").decode()
    first = file_report(ctx, f"https://{puny}.{host_of(ctx)}/idn", Expect(ACCEPTED))
    second = file_report(ctx, f"https://{label}.{host_of(ctx)}/idn", Expect(DUPLICATE))
    if second.case_id != first.case_id:
        fail(f"expected DUPLICATE of case {first.case_id}, got {second.case_id}")


@case("DUP-010", "5", "a path differing only in letter case is another URL (new case)")
def path_case(ctx: Context) -> None:
    expect_new_case(ctx, f"https://{host_of(ctx)}/DUP/A/B/IMG%3A1.JPG?x=1&y=2")


@case("DUP-011", "5", "query parameters in another order are another URL (new case)")
def query_order(ctx: Context) -> None:
    expect_new_case(ctx, f"https://{host_of(ctx)}/dup/a/b/img%3A1.jpg?y=2&x=1")


@case("DUP-012", "5", "the same content hash at two URLs makes two cases (hashes never merge)")
def hashes_do_not_merge(ctx: Context) -> None:
    digest = hashlib.sha256(f"{ctx.run_id}/same-content".encode()).digest()
    first = file_report(ctx, f"https://{host_of(ctx)}/hash/one", Expect(ACCEPTED), hashes=[digest])
    second = file_report(ctx, f"https://{host_of(ctx)}/hash/two", Expect(ACCEPTED), hashes=[digest])
    if first.case_id == second.case_id:
        fail(f"expected two cases, both reports joined case {first.case_id}")
