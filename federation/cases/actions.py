"""What an analyst does to a case this node is responsible for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from federation.cases.filing import CaseBook
from federation.core.case_status import CaseStatus, may_follow
from federation.core.errors import (
    HOLD_ACTIVE,
    ILLEGAL_TRANSITION,
    INVALID_COUNTRY,
    MOVED_NEEDS_COUNTRY,
    NOTHING_TO_MOVE,
    TEXT_LENGTH,
    UNKNOWN_CASE,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from federation.core.handover import heir_of
from federation.core.ids import is_country
from federation.core.limits import Limits
from federation.core.reasons import REPORT_TYPE
from federation.core.roster import Roster
from federation.core.status_update import StatusUpdate
from federation.status.issuing import Fanout, Issued
from federation.store import cases as case_store
from federation.store import outbox
from federation.store.cases import CaseRecord
from federation.store.database import Database
from federation.wire.convert import encode_proofs


def _validate(
    case: CaseRecord,
    status: CaseStatus,
    note: str,
    new_country: str,
    roster: Roster,
    me: str,
    now: datetime,
    limits: Limits,
) -> None:
    current = CaseStatus(case.status)
    if not may_follow(current, status):
        raise FailedPreconditionError(
            ILLEGAL_TRANSITION, f"illegal transition: {status.name} may not follow {current.name}"
        )
    if status is CaseStatus.NOTICE_SENT and case.hold_until and case.hold_until > now:
        raise FailedPreconditionError(
            HOLD_ACTIVE,
            f"a police hold is active until {case.hold_until.isoformat(timespec='minutes')}: "
            "no takedown notice may be sent",
        )
    if len(note) > limits.max_note_chars:
        raise InvalidArgumentError(
            TEXT_LENGTH, f"note is longer than {limits.max_note_chars} characters", field="note"
        )
    if (status is CaseStatus.MOVED) != bool(new_country):
        raise InvalidArgumentError(
            MOVED_NEEDS_COUNTRY,
            "new_hosting_country is required for MOVED and only then",
            field="new_hosting_country",
        )
    if status is CaseStatus.MOVED:
        if not is_country(new_country):
            raise InvalidArgumentError(
                INVALID_COUNTRY,
                "new_hosting_country must be ISO 3166 alpha-2 or ZZ",
                field="new_hosting_country",
            )
        if roster.responsible_for(new_country).member_id == me:
            raise FailedPreconditionError(
                NOTHING_TO_MOVE,
                f"{new_country} is also this hotline's responsibility: nothing to move",
            )


def record_status(
    db: Database,
    casebook: CaseBook,
    roster: Roster,
    limits: Limits,
    case_id: str,
    status: CaseStatus,
    now: datetime,
    notify: Callable[[str], None],
    *,
    note: str = "",
    new_hosting_country: str = "",
) -> StatusUpdate:
    """Record a status of one of our cases, sign it and fan it out."""
    me = casebook.member_id
    fanout = Fanout()
    with db.write() as session:
        case = case_store.get_case(session, case_id, lock=True)
        if case is None:
            raise NotFoundError(UNKNOWN_CASE, "no such case at this node")
        _validate(case, status, note, new_hosting_country, roster, me, now, limits)
        issued, _ = casebook.statuses.issue(
            session, case, status, now, fanout, note=note, new_hosting_country=new_hosting_country
        )
        if status is CaseStatus.MOVED:
            _reroute(session, case, issued, roster, now, fanout)
    for destination in fanout.destinations:
        notify(destination)
    return issued.update


def _reroute(
    session: Session, case: CaseRecord, moved: Issued, roster: Roster, now: datetime, fanout: Fanout
) -> None:
    """Send the reports of a moved case, unchanged, to the member now responsible,
    with the chain of signed MOVED updates that entitles it to act on them."""
    me = moved.update.member_id
    target = heir_of(moved.update, roster)
    for report in case_store.case_reports(session, case.case_id):
        # The chain's new link must name this report: the recorded MOVED, or
        # the copy made for the report's author (see federation.status.issuing.Issued).
        named = report.report_id, report.origin_member_id
        step = encode_proofs([moved.naming(*named)])
        outbox.enqueue(
            session,
            target,
            report.report_id,
            REPORT_TYPE,
            report.envelope,
            (me,),
            now,
            # A report moved here before goes on with its whole chain.
            proofs=(report.moved_chain or b"") + step,
        )
        fanout.destinations.add(target)
