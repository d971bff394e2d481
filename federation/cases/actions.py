"""What an analyst does to a case this node is responsible for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from federation.cases.changes import CaseChanges
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
from federation.core.ids import CaseId, is_country
from federation.core.limits import Limits
from federation.core.reasons import REPORT_TYPE
from federation.core.roster import Roster
from federation.core.status_update import StatusUpdate
from federation.status import Fanout, Issued
from federation.store import cases as case_store
from federation.store import outbox
from federation.store.cases import CaseRecord
from federation.wire.convert import encode_proofs


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An analyst's request to move one of our cases to a new status."""

    case_id: CaseId
    status: CaseStatus
    note: str = ""
    #: For MOVED only: the country now hosting the content.
    new_hosting_country: str = ""


class CaseActions:
    """What an analyst does to a case this node is responsible for."""

    def __init__(self, changes: CaseChanges, limits: Limits) -> None:
        self._db = changes.db
        self._statuses = changes.statuses
        self._roster = changes.roster
        self._notify = changes.notify_outbox
        self._clock = changes.clock
        self._limits = limits

    def record_status(self, change: StatusChange) -> StatusUpdate:
        """Record a status of one of our cases, sign it and fan it out."""
        now, roster, fanout = self._clock(), self._roster(), Fanout()
        with self._db.write() as session:
            case = case_store.get_case(session, change.case_id, lock=True)
            if case is None:
                raise NotFoundError(UNKNOWN_CASE, "no such case at this node")
            self._validate(case, change, roster, now)
            issued, _ = self._statuses.issue(
                session,
                case,
                change.status,
                now,
                fanout,
                note=change.note,
                new_hosting_country=change.new_hosting_country,
            )
            if change.status is CaseStatus.MOVED:
                _reroute(session, case, issued, roster, now, fanout)
        for destination in fanout.destinations:
            self._notify(destination)
        return issued.update

    def _validate(
        self, case: CaseRecord, change: StatusChange, roster: Roster, now: datetime
    ) -> None:
        status, current = change.status, CaseStatus(case.status)
        if not may_follow(current, status):
            raise FailedPreconditionError(
                ILLEGAL_TRANSITION,
                f"illegal transition: {status.name} may not follow {current.name}",
            )
        if status is CaseStatus.NOTICE_SENT and case.hold_until and case.hold_until > now:
            raise FailedPreconditionError(
                HOLD_ACTIVE,
                f"a police hold is active until {case.hold_until.isoformat(timespec='minutes')}: "
                "no takedown notice may be sent",
            )
        if len(change.note) > self._limits.max_note_chars:
            raise InvalidArgumentError(
                TEXT_LENGTH,
                f"note is longer than {self._limits.max_note_chars} characters",
                field="note",
            )
        if (status is CaseStatus.MOVED) != bool(change.new_hosting_country):
            raise InvalidArgumentError(
                MOVED_NEEDS_COUNTRY,
                "new_hosting_country is required for MOVED and only then",
                field="new_hosting_country",
            )
        if status is CaseStatus.MOVED:
            self._check_destination(change.new_hosting_country, roster)

    def _check_destination(self, country: str, roster: Roster) -> None:
        if not is_country(country):
            raise InvalidArgumentError(
                INVALID_COUNTRY,
                "new_hosting_country must be ISO 3166 alpha-2 or ZZ",
                field="new_hosting_country",
            )
        if roster.responsible_for(country).member_id == self._statuses.member_id:
            raise FailedPreconditionError(
                NOTHING_TO_MOVE, f"{country} is also this hotline's responsibility: nothing to move"
            )


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
