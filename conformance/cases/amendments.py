"""Section 10 (second-edition amendments) as cases: the harness as a peer and a client.

To get a report that the node under test *authored* and that routes to the
harness, the harness submits it through the node's operator API
(HotlineService.SubmitReport, with the target file's operator credentials)
with hosting country ``XA``: the node signs it, routes it to the member
responsible for ``XA`` -- the harness -- and the harness's peer server
answers with a receipt carrying a case id of its choosing. From then on the
harness is the report's *expected owner* (§10.1) and a third party (another
hotline whose key the target file gives) is not; third-party items are
relayed by the harness (``via = [conformance]``), so that the sender checks
pass and the node's answer is about ownership alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conformance.cases.peer_side import FORWARD_WAIT, plain_forward
from conformance.context import Context, describe_receipt
from conformance.items import ACCEPTED, DUPLICATE, REJECTED, Expect, Party, rejected
from conformance.registry import case, fail
from hfp.v1 import envelope_pb2, federation_service_pb2, receipt_pb2, report_pb2, status_pb2

R = receipt_pb2
S = status_pb2
NOT_RESPONSIBLE = rejected(R.REJECT_REASON_NOT_RESPONSIBLE)
ILLEGAL = rejected(R.REJECT_REASON_ILLEGAL_TRANSITION)
LIMIT = rejected(R.REJECT_REASON_LIMIT_EXCEEDED)
MALFORMED = rejected(R.REJECT_REASON_MALFORMED_PAYLOAD)
#: How long the node may take to apply an update the harness delivered (s).
APPLY_WAIT = 5.0


@dataclass(frozen=True)
class Authored:
    """A report the node under test authored, delivered to the harness as owner."""

    report_id: str
    case_id: str
    envelope: envelope_pb2.SignedEnvelope


def authored(ctx: Context, tag: str) -> Authored:
    """Make the node author a report for XA; wait until it reaches the harness."""
    f = ctx.factory
    report = report_pb2.Report(
        url=f.url(tag),
        media_type=report_pb2.MEDIA_TYPE_IMAGE,
        classification=report_pb2.CLASSIFICATION_BASELINE,
        hosting_country=f.own_country,
    )
    receipt = ctx.operator().submit(report)
    if receipt.outcome != R.OUTCOME_FORWARDED or receipt.forwarded_to != f.me.member_id:
        fail(
            f"SubmitReport for {f.own_country}: expected FORWARDED to {f.me.member_id}, "
            f"got {describe_receipt(receipt)}"
        )
    report_id = receipt.item_id
    peer = ctx.peer_server
    # The case id exists once the peer server answered (just after it recorded the call).
    found = peer.wait_for(
        lambda _: peer.items(report_id) if peer.case_id_of(report_id) else None, FORWARD_WAIT
    )
    if not found:
        fail(f"the node's report {report_id} did not reach the harness in {FORWARD_WAIT:.0f} s")
    _, arrived = found[0]
    return Authored(report_id, peer.case_id_of(report_id), arrived.envelope)


def update(
    ctx: Context,
    case_id: str,
    report_ids: Sequence[str],
    status: int,
    sequence: int,
    *,
    by: Party | None = None,
    new_country: str = "",
) -> status_pb2.StatusUpdate:
    """A status update (by default by the harness member)."""
    f = ctx.factory
    made = S.StatusUpdate(
        update_id=f.new_id(),
        case_id=case_id,
        report_ids=list(report_ids),
        member_id=(by or f.me).member_id,
        status=status,  # type: ignore[arg-type]
        sequence=sequence,
        new_hosting_country=new_country,
    )
    made.observed_at.FromDatetime(f.clock())
    return made


def signed(ctx: Context, made: status_pb2.StatusUpdate) -> envelope_pb2.SignedEnvelope:
    """``made`` signed by its own member (the harness or the third party)."""
    f = ctx.factory
    party = f.other if made.member_id == f.other.member_id else f.me
    return f.sign(made, party=party)


def item(
    ctx: Context,
    envelope: envelope_pb2.SignedEnvelope,
    *,
    chain: Sequence[envelope_pb2.SignedEnvelope] = (),
) -> federation_service_pb2.ForwardedItem:
    """An item as the harness sends it: relayed (via the harness) when a third party signed."""
    me = ctx.factory.me.member_id
    via = [me] if envelope.signer_member_id != me else []
    return federation_service_pb2.ForwardedItem(
        envelope=envelope, via_member_ids=via, moved_by=list(chain)
    )


def send(
    ctx: Context, made: status_pb2.StatusUpdate, expect: Expect, **options: object
) -> receipt_pb2.Receipt:
    """Deliver one update and check the receipt."""
    envelope = signed(ctx, made)
    return send_item(ctx, item(ctx, envelope, **options), expect, made.update_id)  # type: ignore[arg-type]


def send_item(
    ctx: Context, forwarded: federation_service_pb2.ForwardedItem, expect: Expect, item_id: str
) -> receipt_pb2.Receipt:
    """Deliver one item, verify the receipt and compare it with ``expect``."""
    (envelope,) = ctx.deliver_ok([forwarded])
    receipt = ctx.check_receipt(envelope, forwarded.envelope)
    if expect.outcome in (ACCEPTED, DUPLICATE) and not receipt.case_id:
        # A status update's receipt carries no case id: check the outcome only.
        if receipt.outcome not in (ACCEPTED, DUPLICATE):
            fail(f"expected {expect.describe()}, got {describe_receipt(receipt)}")
        return receipt
    ctx.expect(receipt, expect, item_id)
    return receipt


def owned(ctx: Context, tag: str) -> Authored:
    """A node-authored report whose owner (the harness) already sent RECEIVED."""
    a = authored(ctx, tag)
    send(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_RECEIVED, 1), Expect(ACCEPTED))
    return a


def shared_owned(ctx: Context) -> Authored:
    """One owned report for the cases that only read (made once per run)."""
    return ctx.once("own-owned", lambda: owned(ctx, "own-shared"))


def shared_fresh(ctx: Context) -> Authored:
    """One authored report the owner has not written about yet (once per run)."""
    return ctx.once("own-fresh", lambda: authored(ctx, "own-fresh"))


def third(ctx: Context) -> Party:
    """The third party: another hotline that owns none of the node's reports."""
    return ctx.factory.other


def case_status(ctx: Context, report_id: str, want: int) -> status_pb2.CaseStatus.ValueType:
    """The node's view of the case of its report, once it reaches ``want`` (or as it is)."""
    seen = ctx.operator().wait_case(lambda c: c.status == want, report_id, APPLY_WAIT)
    if seen is None:
        fail(f"GetCase(report_id={report_id}) found no case at the node")
    return seen.status


def status_name(value: int) -> str:
    """CASE_STATUS_X -> X."""
    return S.CaseStatus.Name(value).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]


# --- 10.1 who may speak for a report ------------------------------------------------------


@case("OWN-001", "10.1", "the expected owner's RECEIVED about the node's own report is accepted")
def owner_received(ctx: Context) -> None:
    a = shared_owned(ctx)
    got = case_status(ctx, a.report_id, S.CASE_STATUS_RECEIVED)
    if got != S.CASE_STATUS_RECEIVED:
        fail(f"expected the node's view of the case to be RECEIVED, got {status_name(got)}")


@case(
    "OWN-002",
    "10.1",
    "a non-owner's update on the node's report, before the owner's first, gets NOT_RESPONSIBLE",
    reject=True,
)
def non_owner_first(ctx: Context) -> None:
    a = shared_fresh(ctx)
    made = update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_RECEIVED, 1, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)


@case(
    "OWN-003",
    "10.1",
    "a non-owner's update with the real case id, after the owner's first, gets NOT_RESPONSIBLE",
    reject=True,
)
def non_owner_after(ctx: Context) -> None:
    a = shared_owned(ctx)
    made = update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 2, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)


@case(
    "OWN-004",
    "10.1",
    "a non-owner's update with an invented case id naming the node's report gets NOT_RESPONSIBLE",
    reject=True,
)
def non_owner_invented(ctx: Context) -> None:
    a = shared_owned(ctx)
    invented = ctx.factory.new_id()
    made = update(ctx, invented, [a.report_id], S.CASE_STATUS_RECEIVED, 1, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)
    ctx.once("own-invented", lambda: invented)


@case(
    "OWN-005",
    "10.1",
    "a refused non-owner update with an invented case id leaves no case behind (GetCase NOT_FOUND)",
    reject=True,
)
def non_owner_leaves_nothing(ctx: Context) -> None:
    a = shared_owned(ctx)
    invented = ctx.factory.new_id()
    made = update(ctx, invented, [a.report_id], S.CASE_STATUS_RECEIVED, 1, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)
    if ctx.operator().case(case_id=invented) is not None:
        fail(f"expected GetCase({invented}) NOT_FOUND after the refusal, the node holds a case")


@case(
    "OWN-006",
    "10.1",
    "after a refused non-owner RECEIVED, the owner's own RECEIVED (same sequence) still applies",
)
def owner_after_refusal(ctx: Context) -> None:
    a = authored(ctx, "own-after-refusal")
    made = update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_RECEIVED, 1, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)
    send(ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_RECEIVED, 1), Expect(ACCEPTED))
    seen = ctx.operator().wait_case(lambda c: c.status == S.CASE_STATUS_RECEIVED, a.report_id)
    if seen is None or seen.responsible_member_id != ctx.factory.me.member_id:
        holder = seen.responsible_member_id if seen else "no case"
        fail(f"expected the case owned by {ctx.factory.me.member_id}, got {holder}")


@case(
    "OWN-007",
    "10.1",
    "an update naming only reports the node never authored gets NOT_RESPONSIBLE",
    reject=True,
)
def unknown_reports(ctx: Context) -> None:
    f = ctx.factory
    send(ctx, update(ctx, f.new_id(), [f.new_id()], S.CASE_STATUS_RECEIVED, 1), NOT_RESPONSIBLE)


@case(
    "OWN-008",
    "10.1",
    "the harness as non-owner of a report the node sent to another hotline gets NOT_RESPONSIBLE",
    reject=True,
)
def harness_not_owner(ctx: Context) -> None:
    f = ctx.factory
    report = report_pb2.Report(
        url=f.url("own-elsewhere"),
        media_type=report_pb2.MEDIA_TYPE_IMAGE,
        classification=report_pb2.CLASSIFICATION_BASELINE,
        hosting_country=f.other_country,
    )
    receipt = ctx.operator().submit(report)
    if receipt.outcome != R.OUTCOME_FORWARDED:
        fail(
            f"SubmitReport for {f.other_country}: expected FORWARDED, got "
            f"{describe_receipt(receipt)}"
        )
    made = update(ctx, f.new_id(), [receipt.item_id], S.CASE_STATUS_RECEIVED, 1)
    send(ctx, made, NOT_RESPONSIBLE)


@case(
    "OWN-009",
    "10.1",
    "a status update about the node's own case (case id from its receipt) gets NOT_RESPONSIBLE",
    reject=True,
)
def about_nodes_own_case(ctx: Context) -> None:
    f = ctx.factory
    receipt = ctx.run_item(f.report_spec(f.report("own-target-case"), f.accepted_here()))
    made = update(ctx, receipt.case_id, [f.new_id()], S.CASE_STATUS_CONTENT_REMOVED, 2)
    send(ctx, made, NOT_RESPONSIBLE)


def _non_owner_status(status: int, number: int) -> None:
    name = status_name(status)

    @case(
        f"OWN-{number:03d}",
        "10.1",
        f"a non-owner's {name} on the node's report (owner active) gets NOT_RESPONSIBLE",
        reject=True,
    )
    def run(ctx: Context) -> None:
        a = shared_owned(ctx)
        made = update(ctx, a.case_id, [a.report_id], status, 2, by=third(ctx))
        if status == S.CASE_STATUS_MOVED:
            made.new_hosting_country = ctx.factory.other_country
        send(ctx, made, NOT_RESPONSIBLE)


for _number, _status in enumerate(
    (
        S.CASE_STATUS_ASSESSED_NOT_ILLEGAL,
        S.CASE_STATUS_CONTENT_GONE,
        S.CASE_STATUS_CONTENT_REMOVED,
        S.CASE_STATUS_MOVED,
        S.CASE_STATUS_NOTICE_SENT,
        S.CASE_STATUS_LEA_NOTIFIED,
    ),
    start=10,
):
    _non_owner_status(_status, _number)


@case(
    "OWN-016",
    "10.1",
    "the state stays the owner's: after refused non-owner updates the case is still RECEIVED",
    reject=True,
)
def state_unchanged(ctx: Context) -> None:
    a = shared_owned(ctx)
    made = update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_CONTENT_GONE, 2, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)
    got = case_status(ctx, a.report_id, S.CASE_STATUS_RECEIVED)
    if got != S.CASE_STATUS_RECEIVED:
        fail(f"expected the case still RECEIVED, got {status_name(got)}")


@case(
    "OWN-017",
    "10.1",
    "a non-owner's update on a case it never held, naming no report, gets NOT_RESPONSIBLE",
    reject=True,
)
def non_owner_no_reports(ctx: Context) -> None:
    a = shared_owned(ctx)
    made = update(ctx, a.case_id, [], S.CASE_STATUS_NOTICE_SENT, 3, by=third(ctx))
    send(ctx, made, NOT_RESPONSIBLE)


# --- 10.2 the MOVED chain as proof, and re-routing ---------------------------------------


def moved(
    ctx: Context,
    a: Authored,
    country: str,
    *,
    by: Party | None = None,
    seq: int = 2,
    case_id: str = "",
) -> envelope_pb2.SignedEnvelope:
    """A signed MOVED of the report's case to ``country`` (by the harness by default)."""
    made = update(
        ctx,
        case_id or a.case_id,
        [a.report_id],
        S.CASE_STATUS_MOVED,
        seq,
        by=by,
        new_country=country,
    )
    return signed(ctx, made)


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
    receipt = _send_refused(ctx, heir_update(ctx, a), [move])
    if receipt.reject_reason not in (
        R.REJECT_REASON_BAD_SIGNATURE,
        R.REJECT_REASON_NOT_RESPONSIBLE,
    ):
        fail(f"expected REJECTED/BAD_SIGNATURE or NOT_RESPONSIBLE, got {describe_receipt(receipt)}")


def _send_refused(
    ctx: Context, made: status_pb2.StatusUpdate, chain: Sequence[envelope_pb2.SignedEnvelope]
) -> receipt_pb2.Receipt:
    forwarded = item(ctx, signed(ctx, made), chain=chain)
    (envelope,) = ctx.deliver_ok([forwarded])
    receipt = ctx.check_receipt(envelope, forwarded.envelope)
    if receipt.outcome != REJECTED:
        fail(f"expected REJECTED, got {describe_receipt(receipt)}")
    return receipt


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
    _send_refused(ctx, heir_update(ctx, a), [link])


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
    _send_refused(ctx, heir_update(ctx, a), [signed(ctx, made)])


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


# --- 10.3 held updates are checked when applied ------------------------------------------


def _held(ctx: Context, tag: str, steps: Sequence[tuple[int, int]]) -> Authored:
    """An owned report whose owner then sends ``(sequence, status)`` steps in this order."""
    a = owned(ctx, tag)
    for sequence, status in steps:
        send(ctx, update(ctx, a.case_id, [a.report_id], status, sequence), Expect(ACCEPTED))
    return a


def _expect_applied(ctx: Context, a: Authored, want: int, history: int) -> None:
    seen = ctx.operator().wait_case(
        lambda c: c.status == want and len(c.history) >= history, a.report_id
    )
    if seen is None or seen.status != want or len(seen.history) != history:
        got = f"{status_name(seen.status)} with {len(seen.history)} applied" if seen else "none"
        fail(f"expected {status_name(want)} with {history} applied updates, got {got}")


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
    _expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2)


@case("HLD-002", "10.3", "a held update that is legal when its turn comes is applied")
def held_legal(ctx: Context) -> None:
    a = _held(
        ctx, "hld-legal", [(3, S.CASE_STATUS_NOTICE_SENT), (2, S.CASE_STATUS_ASSESSED_ILLEGAL)]
    )
    _expect_applied(ctx, a, S.CASE_STATUS_NOTICE_SENT, 3)


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
    _expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2)


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
    _expect_applied(ctx, a, S.CASE_STATUS_CONTENT_GONE, 3)


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
    _expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2)


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


# --- 10.6 isolation ------------------------------------------------------------------------


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
    receipts = ctx.deliver_ok([bad, good.item])
    first = ctx.check_receipt(receipts[0], bad.envelope)
    second = ctx.check_receipt(receipts[1], good.item.envelope)
    if first.reject_reason != R.REJECT_REASON_NOT_RESPONSIBLE or second.outcome != ACCEPTED:
        fail(
            f"expected NOT_RESPONSIBLE then ACCEPTED, got {describe_receipt(first)} then "
            f"{describe_receipt(second)}"
        )


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
    receipts = ctx.deliver_ok([bad, good])
    first = ctx.check_receipt(receipts[0], bad.envelope)
    second = ctx.check_receipt(receipts[1], good.envelope)
    if first.reject_reason != R.REJECT_REASON_LIMIT_EXCEEDED or second.outcome != ACCEPTED:
        fail(
            f"expected LIMIT_EXCEEDED then ACCEPTED, got {describe_receipt(first)} then "
            f"{describe_receipt(second)}"
        )
    _expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_ILLEGAL, 2)


# --- more of the same rules -------------------------------------------------------------------


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
    _expect_applied(ctx, a, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2)


@case("NUM-010", "10.5", "a status update with sequence 0 is refused", reject=True)
def sequence_zero(ctx: Context) -> None:
    a = shared_owned(ctx)
    receipt = _send_refused(
        ctx, update(ctx, a.case_id, [a.report_id], S.CASE_STATUS_ASSESSED_ILLEGAL, 0), []
    )
    if receipt.reject_reason not in (
        R.REJECT_REASON_MALFORMED_PAYLOAD,
        R.REJECT_REASON_LIMIT_EXCEEDED,
    ):
        fail(f"expected MALFORMED_PAYLOAD or LIMIT_EXCEEDED, got {describe_receipt(receipt)}")


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
    receipts = ctx.deliver_ok([bad, good.item])
    first = ctx.check_receipt(receipts[0], bad.envelope)
    second = ctx.check_receipt(receipts[1], good.item.envelope)
    if first.outcome != REJECTED or second.outcome != ACCEPTED:
        fail(
            f"expected REJECTED then ACCEPTED, got {describe_receipt(first)} then "
            f"{describe_receipt(second)}"
        )


@case(
    "OWN-018",
    "10.1",
    "a non-owner's update with the real case id of the node's report at another hotline: refused",
    reject=True,
)
def non_owner_real_elsewhere(ctx: Context) -> None:
    f = ctx.factory
    report = report_pb2.Report(
        url=f.url("own-real-elsewhere"),
        media_type=report_pb2.MEDIA_TYPE_IMAGE,
        classification=report_pb2.CLASSIFICATION_BASELINE,
        hosting_country=f.other_country,
    )
    receipt = ctx.operator().submit(report)
    # The other hotline files it and sends RECEIVED back: the node then knows its case id.
    seen = ctx.operator().wait_case(lambda c: bool(c.case_id), receipt.item_id, 10.0)
    case_id = seen.case_id if seen is not None else f.new_id()
    made = update(ctx, case_id, [receipt.item_id], S.CASE_STATUS_CONTENT_GONE, 2)
    send(ctx, made, NOT_RESPONSIBLE)
