"""Section 10.1 as cases: only a report's expected owner (or a member a MOVED chain
handed it to) may write about it at the node that authored it; anything else is
NOT_RESPONSIBLE and leaves no state behind."""

from __future__ import annotations

from conformance.cases.authored import (
    NOT_RESPONSIBLE,
    R,
    S,
    authored,
    case_status,
    operator_report,
    send,
    shared_fresh,
    shared_owned,
    status_name,
    third,
    update,
)
from conformance.context import Context, describe_receipt
from conformance.items import ACCEPTED, Expect
from conformance.registry import case, fail

# --- 10.1 who may speak for a report ------------------------------------------------------


@case("OWN-001", "10.1", "the expected owner's RECEIVED about the node's own report is accepted")
def owner_received(ctx: Context) -> None:
    a = shared_owned(ctx)
    got = case_status(ctx, a.report_id, S.CASE_STATUS_RECEIVED)
    if got != S.CASE_STATUS_RECEIVED:
        fail(f"expected the node's view of the case to be RECEIVED, got {status_name(got)}")


def _non_owner_case(
    case_id: str,
    statement: str,
    status: int,
    sequence: int,
    *,
    fresh: bool = False,
    invented: bool = False,
    named: bool = True,
) -> None:
    """A third party's update about the node's report (relayed by the harness):
    refused with NOT_RESPONSIBLE whatever it says and whichever case id it uses."""

    @case(case_id, "10.1", statement, reject=True)
    def run(ctx: Context) -> None:
        a = shared_fresh(ctx) if fresh else shared_owned(ctx)
        target_case = ctx.factory.new_id() if invented else a.case_id
        reports = [a.report_id] if named else []
        made = update(ctx, target_case, reports, status, sequence, by=third(ctx))
        if status == S.CASE_STATUS_MOVED:
            made.new_hosting_country = ctx.factory.other_country
        send(ctx, made, NOT_RESPONSIBLE)


_NON_OWNER = "a non-owner's"
_non_owner_case(
    "OWN-002",
    f"{_NON_OWNER} update on the node's report, before the owner's first, gets NOT_RESPONSIBLE",
    S.CASE_STATUS_RECEIVED,
    1,
    fresh=True,
)
_non_owner_case(
    "OWN-003",
    f"{_NON_OWNER} update with the real case id, after the owner's first, gets NOT_RESPONSIBLE",
    S.CASE_STATUS_ASSESSED_ILLEGAL,
    2,
)
_non_owner_case(
    "OWN-004",
    f"{_NON_OWNER} update with an invented case id naming the node's report gets NOT_RESPONSIBLE",
    S.CASE_STATUS_RECEIVED,
    1,
    invented=True,
)
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
    _non_owner_case(
        f"OWN-{_number:03d}",
        f"{_NON_OWNER} {status_name(_status)} on the node's report (owner active) gets "
        "NOT_RESPONSIBLE",
        _status,
        2,
    )
_non_owner_case(
    "OWN-017",
    f"{_NON_OWNER} update on a case it never held, naming no report, gets NOT_RESPONSIBLE",
    S.CASE_STATUS_NOTICE_SENT,
    3,
    named=False,
)


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
    report_id = _submit_elsewhere(ctx, "own-elsewhere")
    made = update(ctx, f.new_id(), [report_id], S.CASE_STATUS_RECEIVED, 1)
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
    "OWN-018",
    "10.1",
    "a non-owner's update with the real case id of the node's report at another hotline: refused",
    reject=True,
)
def non_owner_real_elsewhere(ctx: Context) -> None:
    f = ctx.factory
    report_id = _submit_elsewhere(ctx, "own-real-elsewhere")
    # The other hotline files it and sends RECEIVED back: the node then knows its case id.
    seen = ctx.operator().wait_case(lambda c: bool(c.case_id), report_id, 10.0)
    case_id = seen.case_id if seen is not None else f.new_id()
    made = update(ctx, case_id, [report_id], S.CASE_STATUS_CONTENT_GONE, 2)
    send(ctx, made, NOT_RESPONSIBLE)


def _submit_elsewhere(ctx: Context, tag: str) -> str:
    """The id of a report the node authored for the third party's country."""
    f = ctx.factory
    receipt = ctx.operator().submit(operator_report(f, tag, f.other_country))
    if receipt.outcome != R.OUTCOME_FORWARDED:
        fail(
            f"SubmitReport for {f.other_country}: expected FORWARDED, got "
            f"{describe_receipt(receipt)}"
        )
    return receipt.item_id
