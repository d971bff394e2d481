"""Sections 7, 10.3 and 10.5 as cases: held updates are checked against the
transition table when their turn comes; sequence numbers out of range are refused."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.cases.authored import (
    ILLEGAL,
    LIMIT,
    Authored,
    R,
    S,
    authored,
    expect_applied,
    item,
    owned,
    send,
    send_item,
    send_refused,
    shared_owned,
    signed,
    update,
)
from conformance.context import Context, describe_receipt
from conformance.items import ACCEPTED, Expect
from conformance.registry import case, fail

# --- 10.3 held updates are checked when applied ------------------------------------------


def _held(ctx: Context, tag: str, steps: Sequence[tuple[int, int]]) -> Authored:
    """An owned report whose owner then sends ``(sequence, status)`` steps in this order."""
    a = owned(ctx, tag)
    for sequence, status in steps:
        send(ctx, update(ctx, a.case_id, [a.report_id], status, sequence), Expect(ACCEPTED))
    return a


@case(
    "HLD-001",
    "10.3",
    "a held NOTICE_SENT that is illegal after its predecessor (NOT_ILLEGAL) is not applied",
    reject=True,
)
def held_illegal(ctx: Context) -> None:
    a = _held(
        ctx,
        "hld-illegal",
        [(3, S.CASE_STATUS_NOTICE_SENT), (2, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL)],
    )
    expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2)


@case("HLD-002", "10.3", "a held update that is legal when its turn comes is applied")
def held_legal(ctx: Context) -> None:
    a = _held(
        ctx, "hld-legal", [(3, S.CASE_STATUS_NOTICE_SENT), (2, S.CASE_STATUS_ASSESSED_ILLEGAL)]
    )
    expect_applied(ctx, a, S.CASE_STATUS_NOTICE_SENT, 3)


@case(
    "HLD-003",
    "10.3",
    "a held RECEIVED (never legal after RECEIVED) is not applied when the gap fills",
    reject=True,
)
def held_repeat_received(ctx: Context) -> None:
    a = _held(
        ctx, "hld-received", [(3, S.CASE_STATUS_RECEIVED), (2, S.CASE_STATUS_ASSESSED_ILLEGAL)]
    )
    expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2)


@case(
    "HLD-004", "10.3", "after a refused held update, the next legal one still applies in its turn"
)
def held_after_refused(ctx: Context) -> None:
    a = _held(
        ctx,
        "hld-next",
        [
            (3, S.CASE_STATUS_RECEIVED),
            (4, S.CASE_STATUS_CONTENT_GONE),
            (2, S.CASE_STATUS_ASSESSED_ILLEGAL),
        ],
    )
    expect_applied(ctx, a, S.CASE_STATUS_CONTENT_GONE, 3)


@case(
    "HLD-005", "7", "an update in turn that the table forbids gets ILLEGAL_TRANSITION", reject=True
)
def in_turn_illegal(ctx: Context) -> None:
    a = shared_owned(ctx)
    send(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_NOTICE_SENT, 2), ILLEGAL)


@case("HLD-006", "7", "a first update that is not RECEIVED gets ILLEGAL_TRANSITION", reject=True)
def first_not_received(ctx: Context) -> None:
    a = authored(ctx, "hld-first")
    send(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_NOTICE_SENT, 1), ILLEGAL)


@case(
    "HLD-007",
    "7",
    "after a terminal status any further update gets ILLEGAL_TRANSITION",
    reject=True,
)
def after_terminal(ctx: Context) -> None:
    a = _held(ctx, "hld-terminal", [(2, S.CASE_STATUS_CONTENT_GONE)])
    send(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 3), ILLEGAL)


@case("HLD-008", "7", "an older or repeated sequence is acknowledged and ignored")
def stale_sequence(ctx: Context) -> None:
    a = _held(ctx, "hld-stale", [(2, S.CASE_STATUS_ASSESSED_ILLEGAL)])
    send(
        ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_CONTENT_GONE, 2), Expect(ACCEPTED)
    )
    expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2)


@case(
    "HLD-009",
    "10.3",
    "a held update refused in its turn, delivered again, is still not applied",
    reject=True,
)
def held_refused_again(ctx: Context) -> None:
    a = owned(ctx, "hld-again")
    late = update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_NOTICE_SENT, 3)
    send(ctx, late, Expect(ACCEPTED))
    send(
        ctx,
        update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2),
        Expect(ACCEPTED),
    )
    send_item(ctx, item(ctx, signed(ctx, late)), Expect(ACCEPTED), late.update_id)
    expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2)


# --- 10.5 numbers in range -------------------------------------------------------------------


def _sequence_case(number: int, sequence: int) -> None:
    @case(
        f"NUM-{number:03d}",
        "10.5",
        f"a status update with sequence {sequence} (above 2^63-1) gets LIMIT_EXCEEDED",
        reject=True,
    )
    def run(ctx: Context) -> None:
        a = shared_owned(ctx)
        send(
            ctx,
            update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, sequence),
            LIMIT,
        )


for _number, _sequence in enumerate((2**63, 2**63 + 1, 2**64 - 1), start=1):
    _sequence_case(_number, _sequence)


@case("NUM-004", "10.5", "sequence 2^63-1 is in range: held, acknowledged")
def sequence_max(ctx: Context) -> None:
    a = shared_owned(ctx)
    send(
        ctx,
        update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 2**63 - 1),
        Expect(ACCEPTED),
    )


@case("NUM-010", "10.5", "a status update with sequence 0 is refused", reject=True)
def sequence_zero(ctx: Context) -> None:
    a = shared_owned(ctx)
    receipt = send_refused(
        ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 0), []
    )
    if receipt.reject_reason not in (
        R.REJECT_REASON_MALFORMED_PAYLOAD,
        R.REJECT_REASON_LIMIT_EXCEEDED,
    ):
        fail(f"expected MALFORMED_PAYLOAD or LIMIT_EXCEEDED, got {describe_receipt(receipt)}")
