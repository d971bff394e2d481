"""Reports the node under test authored, with the harness as their owner (section 10).

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

from conformance.cases.peer_side import FORWARD_WAIT
from conformance.context import Context, describe_receipt
from conformance.items import ACCEPTED, DUPLICATE, REJECTED, Expect, ItemFactory, Party, rejected
from conformance.registry import fail
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


def operator_report(f: ItemFactory, tag: str, country: str) -> report_pb2.Report:
    """A report as an operator submits it: the node fills id, origin and time."""
    return report_pb2.Report(
        url=f.url(tag),
        media_type=report_pb2.MEDIA_TYPE_IMAGE,
        classification=report_pb2.CLASSIFICATION_BASELINE,
        hosting_country=country,
    )


def authored(ctx: Context, tag: str) -> Authored:
    """Make the node author a report for XA; wait until it reaches the harness."""
    f = ctx.factory
    receipt = ctx.operator().submit(operator_report(f, tag, f.own_country))
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


def send_refused(
    ctx: Context, made: status_pb2.StatusUpdate, chain: Sequence[envelope_pb2.SignedEnvelope]
) -> receipt_pb2.Receipt:
    forwarded = item(ctx, signed(ctx, made), chain=chain)
    (envelope,) = ctx.deliver_ok([forwarded])
    receipt = ctx.check_receipt(envelope, forwarded.envelope)
    if receipt.outcome != REJECTED:
        fail(f"expected REJECTED, got {describe_receipt(receipt)}")
    return receipt


def expect_applied(ctx: Context, a: Authored, want: int, history: int) -> None:
    seen = ctx.operator().wait_case(
        lambda c: c.status == want and len(c.history) >= history, a.report_id
    )
    if seen is None or seen.status != want or len(seen.history) != history:
        got = f"{status_name(seen.status)} with {len(seen.history)} applied" if seen else "none"
        fail(f"expected {status_name(want)} with {history} applied updates, got {got}")
