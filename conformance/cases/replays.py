"""Sections 10.6-10.7 as cases: a stored receipt answers only the right sender,
refusal details reveal no case, and one refused item never fails another."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.cases.authored import (
    NOT_RESPONSIBLE,
    R,
    S,
    expect_applied,
    item,
    moved,
    owned,
    send,
    send_item,
    shared_owned,
    signed,
    third,
    update,
)
from conformance.context import Context, describe_receipt
from conformance.items import ACCEPTED, REJECTED, Expect, rejected
from conformance.registry import case, fail
from hfp.v1 import federation_service_pb2

# --- 10.7 replays answer only the right sender ------------------------------------------------


def _accepted_report(ctx: Context) -> tuple[federation_service_pb2.ForwardedItem, str]:
    """A report by the harness accepted by the node (once)."""

    def make() -> tuple[federation_service_pb2.ForwardedItem, str]:
        f = ctx.factory
        spec = f.report_spec(f.report("rpl-stored"), f.accepted_here())
        return spec.item, ctx.run_item(spec).case_id

    return ctx.once("rpl-report", make)


def _replay(ctx: Context, via: Sequence[str], reason: int) -> None:
    sent, case_id = _accepted_report(ctx)
    again = federation_service_pb2.ForwardedItem(envelope=sent.envelope, via_member_ids=list(via))
    (envelope,) = ctx.deliver_ok([again])
    receipt = ctx.check_receipt(envelope, again.envelope)
    if receipt.outcome != REJECTED or receipt.reject_reason != reason:
        fail(
            f"expected REJECTED/{R.RejectReason.Name(reason).removeprefix('REJECT_REASON_')}, "  # type: ignore[arg-type]
            f"got {describe_receipt(receipt)}"
        )
    if case_id in receipt.detail or receipt.case_id:
        fail("the refusal names the case the stored report joined")


@case(
    "RPL-001",
    "10.7",
    "a stored report replayed with a path the sender is not last on gets SENDER_MISMATCH",
    reject=True,
)
def replay_wrong_path(ctx: Context) -> None:
    _replay(ctx, [ctx.factory.other.member_id], R.REJECT_REASON_SENDER_MISMATCH)


@case(
    "RPL-002",
    "10.7",
    "a stored report replayed through a path naming the node gets LOOP_DETECTED",
    reject=True,
)
def replay_loop(ctx: Context) -> None:
    _replay(ctx, [ctx.target_id, ctx.factory.me.member_id], R.REJECT_REASON_LOOP_DETECTED)


@case(
    "RPL-003",
    "10.7",
    "a third party's stored report replayed by a non-forwarder gets SENDER_MISMATCH",
    reject=True,
)
def replay_third_party(ctx: Context) -> None:
    f = ctx.factory
    report = f.report("rpl-third", author=f.other.member_id)
    envelope = f.sign(report, party=f.other)
    first = federation_service_pb2.ForwardedItem(envelope=envelope, via_member_ids=[f.me.member_id])
    send_item(ctx, first, Expect(ACCEPTED), report.report_id)
    replay = federation_service_pb2.ForwardedItem(envelope=envelope)
    (signed_receipt,) = ctx.deliver_ok([replay])
    receipt = ctx.check_receipt(signed_receipt, envelope)
    if receipt.reject_reason != R.REJECT_REASON_SENDER_MISMATCH or receipt.case_id:
        fail(f"expected REJECTED/SENDER_MISMATCH, got {describe_receipt(receipt)}")


@case("RPL-004", "10.7", "the right sender's replay gets the stored receipt byte for byte")
def replay_right_sender(ctx: Context) -> None:
    sent, _ = _accepted_report(ctx)
    first = ctx.deliver_ok([sent])
    second = ctx.deliver_ok([sent])
    if first[0].SerializeToString() != second[0].SerializeToString():
        fail("the replay's receipt differs from the stored one")


def _refusal_texts(ctx: Context) -> list[tuple[int, str]]:
    f = ctx.factory
    own = ctx.run_item(f.report_spec(f.report("rpl-detail"), f.accepted_here())).case_id
    a = shared_owned(ctx)
    answers: list[tuple[int, str]] = []
    for case_id in (f.new_id(), own, a.case_id):
        made = update(ctx, case_id, [f.new_id()], S.CASE_STATUS_ASSESSED_ILLEGAL, 2)
        forwarded = item(ctx, signed(ctx, made))
        (envelope,) = ctx.deliver_ok([forwarded])
        receipt = ctx.check_receipt(envelope, forwarded.envelope)
        answers.append((int(receipt.reject_reason), receipt.detail.replace(case_id, "<case>")))
    return answers


@case(
    "RPL-005",
    "10.7",
    "NOT_RESPONSIBLE detail is the same for an unknown, the node's own and a tracked case id",
    reject=True,
)
def detail_reveals_nothing(ctx: Context) -> None:
    answers = _refusal_texts(ctx)
    if len(set(answers)) != 1:
        fail(f"expected one answer for all three case ids, got {answers}")
    if answers[0][0] != R.REJECT_REASON_NOT_RESPONSIBLE:
        fail(f"expected NOT_RESPONSIBLE, got {answers[0]}")


@case(
    "RPL-006",
    "10.7",
    "a NOT_RESPONSIBLE detail never echoes the case id it was asked about",
    reject=True,
)
def detail_no_case_id(ctx: Context) -> None:
    f = ctx.factory
    own = ctx.run_item(f.report_spec(f.report("rpl-echo"), f.accepted_here())).case_id
    made = update(ctx, own, [f.new_id()], S.CASE_STATUS_ASSESSED_ILLEGAL, 2)
    receipt = send(ctx, made, NOT_RESPONSIBLE)
    if own in receipt.detail:
        fail(f"the detail names the case: {receipt.detail!r}")


@case(
    "RPL-007",
    "10.7",
    "a stored status update replayed with a path the sender is not last on gets SENDER_MISMATCH",
    reject=True,
)
def replay_update(ctx: Context) -> None:
    a = owned(ctx, "rpl-update")
    made = update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 2)
    envelope = signed(ctx, made)
    send_item(ctx, item(ctx, envelope), Expect(ACCEPTED), made.update_id)
    replay = federation_service_pb2.ForwardedItem(
        envelope=envelope, via_member_ids=[ctx.factory.other.member_id]
    )
    send_item(ctx, replay, rejected(R.REJECT_REASON_SENDER_MISMATCH), made.update_id)


# --- 10.6 isolation ------------------------------------------------------------------------


def _bad_beside_good(
    ctx: Context,
    bad: federation_service_pb2.ForwardedItem,
    good: federation_service_pb2.ForwardedItem,
    reason: int | None,
) -> None:
    """Deliver ``bad`` and ``good`` in one batch: ``bad`` is refused (for
    ``reason``, when given) and ``good`` accepted all the same."""
    receipts = ctx.deliver_ok([bad, good])
    first = ctx.check_receipt(receipts[0], bad.envelope)
    second = ctx.check_receipt(receipts[1], good.envelope)
    refused = first.outcome == REJECTED and reason in (None, first.reject_reason)
    if not refused or second.outcome != ACCEPTED:
        want = "REJECTED" if reason is None else R.RejectReason.Name(reason)  # type: ignore[arg-type]
        fail(
            f"expected {want} then ACCEPTED, got {describe_receipt(first)} then "
            f"{describe_receipt(second)}"
        )


@case(
    "ISO-001",
    "10.6",
    "in one batch, a non-owner's update is refused and a good report beside it accepted",
    reject=True,
)
def batch_isolation(ctx: Context) -> None:
    f = ctx.factory
    a = shared_owned(ctx)
    bad = item(
        ctx,
        signed(
            ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_CONTENT_GONE, 2, by=third(ctx))
        ),
    )
    good = f.report_spec(f.report("iso-good"), f.accepted_here())
    _bad_beside_good(ctx, bad, good.item, R.REJECT_REASON_NOT_RESPONSIBLE)


@case(
    "ISO-002",
    "10.6",
    "in one batch, an out-of-range sequence is refused and the owner's good update applied",
    reject=True,
)
def batch_numbers(ctx: Context) -> None:
    a = owned(ctx, "iso-numbers")
    bad = item(
        ctx,
        signed(
            ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 2**64 - 1)
        ),
    )
    good = item(
        ctx, signed(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 2))
    )
    _bad_beside_good(ctx, bad, good, R.REJECT_REASON_LIMIT_EXCEEDED)
    expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2)


@case(
    "ISO-003",
    "10.6",
    "in one batch, a refused moved report does not fail a good report beside it",
    reject=True,
)
def batch_moved(ctx: Context) -> None:
    f = ctx.factory
    a = owned(ctx, "iso-moved")
    bad = federation_service_pb2.ForwardedItem(
        envelope=a.envelope,
        via_member_ids=[f.me.member_id],
        moved_by=[moved(ctx, a, f.target_country, by=third(ctx))],
    )
    good = f.report_spec(f.report("iso-moved-good"), f.accepted_here())
    _bad_beside_good(ctx, bad, good.item, None)
