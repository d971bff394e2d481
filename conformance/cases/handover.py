"""Sections 10.1-10.2 as cases: the MOVED chain as proof (valid, broken, forged, out
of order, too long) and a moved report returning to a node that once held it."""

from __future__ import annotations

from conformance.cases.authored import (
    LIMIT,
    NOT_RESPONSIBLE,
    Authored,
    R,
    S,
    item,
    moved,
    owned,
    send,
    send_item,
    send_refused,
    signed,
    third,
    update,
)
from conformance.cases.peer_side import plain_forward
from conformance.context import Context, describe_receipt
from conformance.items import ACCEPTED, REJECTED, Expect
from conformance.registry import case, fail
from hfp.v1 import envelope_pb2, federation_service_pb2, report_pb2, status_pb2

# --- 10.2 the MOVED chain as proof, and re-routing ---------------------------------------


def moved_to_third(ctx: Context) -> tuple[Authored, envelope_pb2.SignedEnvelope]:
    """A node report the owner (the harness) moved to the third party's country (once)."""

    def make() -> tuple[Authored, envelope_pb2.SignedEnvelope]:
        a = owned(ctx, "mov-shared")
        envelope = moved(ctx, a, ctx.factory.other_country)
        send_item(ctx, item(ctx, envelope), Expect(ACCEPTED), "")
        return a, envelope

    return ctx.once("mov-third", make)


def heir_update(
    ctx: Context, a: Authored, status: int = S.CASE_STATUS_RECEIVED, seq: int = 1
) -> status_pb2.StatusUpdate:
    """The third party's update about the moved report, in its own (new) case."""
    return update(
        ctx,
        ctx.once(f"mov-case-{a.report_id}", ctx.factory.new_id),
        [a.report_id],
        status,
        seq,
        by=third(ctx),
    )


@case("MOV-001", "10.2", "a valid MOVED chain from the expected owner lets the new owner speak")
def chain_valid(ctx: Context) -> None:
    a, move = moved_to_third(ctx)
    send(ctx, heir_update(ctx, a), Expect(ACCEPTED), chain=[move])


@case(
    "MOV-002", "10.1", "without the chain, the new owner's update gets NOT_RESPONSIBLE", reject=True
)
def chain_missing(ctx: Context) -> None:
    a, _ = moved_to_third(ctx)
    send(ctx, heir_update(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2), NOT_RESPONSIBLE)


@case(
    "MOV-003",
    "10.1",
    "a broken chain (MOVED to a country the signer is not responsible for) gets NOT_RESPONSIBLE",
    reject=True,
)
def chain_broken(ctx: Context) -> None:
    a = owned(ctx, "mov-broken")
    wrong = moved(ctx, a, ctx.factory.target_country)
    send(ctx, heir_update(ctx, a), NOT_RESPONSIBLE, chain=[wrong])


@case(
    "MOV-004",
    "10.1",
    "a forged chain (MOVED signature broken) is refused, never applied",
    reject=True,
)
def chain_forged_signature(ctx: Context) -> None:
    a = owned(ctx, "mov-forged")
    move = moved(ctx, a, ctx.factory.other_country)
    move.signature = bytes([move.signature[0] ^ 1]) + move.signature[1:]
    receipt = send_refused(ctx, heir_update(ctx, a), [move])
    if receipt.reject_reason not in (
        R.REJECT_REASON_BAD_SIGNATURE,
        R.REJECT_REASON_NOT_RESPONSIBLE,
    ):
        fail(f"expected REJECTED/BAD_SIGNATURE or NOT_RESPONSIBLE, got {describe_receipt(receipt)}")


@case(
    "MOV-005",
    "10.1",
    "a forged chain (MOVED signed by the new owner itself, not the owner) gets NOT_RESPONSIBLE",
    reject=True,
)
def chain_self_signed(ctx: Context) -> None:
    a = owned(ctx, "mov-self")
    move = moved(ctx, a, ctx.factory.other_country, by=third(ctx))
    send(ctx, heir_update(ctx, a), NOT_RESPONSIBLE, chain=[move])


def _round_trip(ctx: Context, tag: str) -> tuple[Authored, list[envelope_pb2.SignedEnvelope]]:
    """Owner -> third party -> back to the owner: two MOVEDs, oldest first."""
    a = owned(ctx, tag)
    first = moved(ctx, a, ctx.factory.other_country)
    back = moved(
        ctx, a, ctx.factory.own_country, by=third(ctx), seq=1, case_id=ctx.factory.new_id()
    )
    return a, [first, back]


@case("MOV-006", "10.1", "a two-link chain in order (owner -> third -> owner) is accepted")
def chain_two_links(ctx: Context) -> None:
    a, chain = _round_trip(ctx, "mov-two")
    made = update(ctx, ctx.factory.new_id(), [a.report_id], S.CASE_STATUS_RECEIVED, 1)
    send(ctx, made, Expect(ACCEPTED), chain=chain)


@case("MOV-007", "10.1", "the same two links out of order get NOT_RESPONSIBLE", reject=True)
def chain_out_of_order(ctx: Context) -> None:
    a, chain = _round_trip(ctx, "mov-order")
    made = update(ctx, ctx.factory.new_id(), [a.report_id], S.CASE_STATUS_RECEIVED, 1)
    send(ctx, made, NOT_RESPONSIBLE, chain=list(reversed(chain)))


@case("MOV-008", "10.1", "a chain link that is not a MOVED update is refused", reject=True)
def chain_not_moved(ctx: Context) -> None:
    a = owned(ctx, "mov-notmoved")
    link = signed(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 2))
    send_refused(ctx, heir_update(ctx, a), [link])


@case("MOV-009", "10.1", "a MOVED link that does not name the report is refused", reject=True)
def chain_other_report(ctx: Context) -> None:
    a = owned(ctx, "mov-otherreport")
    made = update(
        ctx,
        a.case_id,
        [ctx.factory.new_id()],
        S.CASE_STATUS_MOVED,
        2,
        new_country=ctx.factory.other_country,
    )
    send_refused(ctx, heir_update(ctx, a), [signed(ctx, made)])


@case("MOV-010", "10.1", "a chain of more than 8 MOVED updates gets LIMIT_EXCEEDED", reject=True)
def chain_too_long(ctx: Context) -> None:
    a, move = moved_to_third(ctx)
    send(ctx, heir_update(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2), LIMIT, chain=[move] * 9)


def _moved_back(
    ctx: Context, report_envelope: envelope_pb2.SignedEnvelope, move: envelope_pb2.SignedEnvelope
) -> federation_service_pb2.ForwardedItem:
    return federation_service_pb2.ForwardedItem(
        envelope=report_envelope, via_member_ids=[ctx.factory.me.member_id], moved_by=[move]
    )


@case(
    "MOV-011",
    "10.2",
    "a report moved back to the node that forwarded it is filed there (ACCEPTED, a case id)",
)
def back_to_forwarder(ctx: Context) -> None:
    fw = plain_forward(ctx)
    f = ctx.factory
    report = report_pb2.Report.FromString(fw.spec.item.envelope.payload)
    a = Authored(
        report.report_id, ctx.peer_server.case_id_of(report.report_id), fw.spec.item.envelope
    )
    move = moved(ctx, a, f.target_country, seq=1)
    send_item(ctx, _moved_back(ctx, a.envelope, move), Expect(ACCEPTED), a.report_id)


@case(
    "MOV-012",
    "10.2",
    "the node's own report moved back to it is filed there, not answered with its old receipt",
)
def back_to_author(ctx: Context) -> None:
    a = owned(ctx, "mov-back-author")
    move = moved(ctx, a, ctx.factory.target_country)
    receipt = send_item(ctx, _moved_back(ctx, a.envelope, move), Expect(ACCEPTED), a.report_id)
    ctx.once("mov-back", lambda: (a, move, receipt))


@case("MOV-013", "10.2", "the same moved delivery again gets the same outcome and case id")
def moved_again(ctx: Context) -> None:
    a, move, first = ctx.once("mov-back", lambda: (back_to_author(ctx), ctx.peek("mov-back"))[1])
    again = send_item(ctx, _moved_back(ctx, a.envelope, move), Expect(ACCEPTED), a.report_id)
    if again.case_id != first.case_id or again.outcome != first.outcome:
        fail(f"expected the stored answer {describe_receipt(first)}, got {describe_receipt(again)}")


@case(
    "MOV-014",
    "10.2",
    "a moved report whose MOVED no forwarder signed is refused, not answered with an old receipt",
    reject=True,
)
def moved_by_non_owner(ctx: Context) -> None:
    a = owned(ctx, "mov-back-forged")
    move = moved(ctx, a, ctx.factory.target_country, by=third(ctx))
    forwarded = federation_service_pb2.ForwardedItem(
        envelope=a.envelope, via_member_ids=[ctx.factory.me.member_id], moved_by=[move]
    )
    (envelope,) = ctx.deliver_ok([forwarded])
    receipt = ctx.check_receipt(envelope, forwarded.envelope)
    if receipt.outcome != REJECTED:
        fail(f"expected REJECTED, got {describe_receipt(receipt)}")


@case(
    "MOV-015",
    "10.1",
    "a chain handing the report to the third party does not let the old owner speak",
    reject=True,
)
def chain_old_owner(ctx: Context) -> None:
    a, move = moved_to_third(ctx)
    made = update(ctx, ctx.factory.new_id(), [a.report_id], S.CASE_STATUS_RECEIVED, 1)
    send(ctx, made, NOT_RESPONSIBLE, chain=[move])
