"""Police liaisons' view of this node: referrals, acknowledgements and holds.

A liaison sees only cases hosted in its roster jurisdictions, and only on a
node responsible for at least one of them; every other case is NOT_FOUND to
it, exactly like a case that does not exist.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from federation.cases import CaseChanges
from federation.cases.queries import (
    CasePage,
    HistoryPage,
    OverduePolicy,
    ReportPage,
    history_page,
    item_page_size,
    list_cases,
    local_report_page,
    local_view,
    local_views,
    report_view,
)
from federation.core.case import CaseEventKind, CaseFilter, CaseReportView, CaseView
from federation.core.case_status import CaseStatus
from federation.core.errors import (
    BAD_CURSOR,
    BAD_HOLD_UNTIL,
    CURSOR_AHEAD,
    NO_ACTIVE_HOLD,
    OUTSIDE_JURISDICTION,
    TEXT_LENGTH,
    TOO_LATE_FOR_HOLD,
    UNKNOWN_CASE,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from federation.core.ids import CaseId, MemberId
from federation.core.limits import MAX_STORED_INT
from federation.core.roster import Member
from federation.status import Fanout
from federation.store import cases as store
from federation.store.cases import CaseRecord

MAX_HOLD = timedelta(days=90)
MAX_REFERENCE_CHARS = 128
MAX_REASON_CHARS = 500
_CURSOR_PREFIX = "v1:"
#: Status a hold request moves the case through, from where it stands.
_HOLD_PATH: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.RECEIVED: (),
    CaseStatus.ASSESSED_ILLEGAL: (CaseStatus.LEA_NOTIFIED, CaseStatus.LEA_HOLD),
    CaseStatus.LEA_NOTIFIED: (CaseStatus.LEA_HOLD,),
    CaseStatus.LEA_HOLD: (),
}


@dataclass(frozen=True, slots=True)
class ReferralEvent:
    """One entry of the case event log, as a liaison receives it."""

    sequence: int
    kind: CaseEventKind
    case_id: CaseId
    status: CaseStatus
    occurred_at: datetime
    #: The case as it stands, without its reports (see ``report``).
    case: CaseView
    #: The report that opened or joined the case, for those kinds of event.
    report: CaseReportView | None = None
    #: The trace of the call that logged the event (tracing on).
    traceparent: str | None = None

    @property
    def cursor(self) -> str:
        """Resume point right after this event."""
        return encode_cursor(self.sequence)


def encode_cursor(sequence: int) -> str:
    """Opaque cursor for a position in the event log."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{sequence}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """Position of a cursor (0 for the beginning); INVALID_ARGUMENT if not ours."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        digits = text.removeprefix(_CURSOR_PREFIX)
        # ASCII digits only (str.isdigit also takes other scripts' digits),
        # and no more than an event sequence can be.
        if text.startswith(_CURSOR_PREFIX) and digits.isascii() and digits.isdigit():
            position = int(digits)
            if position <= MAX_STORED_INT:
                return position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidArgumentError(
        BAD_CURSOR, "cursor is not valid: use one from a WatchReferrals response", field="cursor"
    )


class ReferralDesk:
    """What police liaisons can see and do at this node."""

    def __init__(self, changes: CaseChanges, overdue: OverduePolicy) -> None:
        self._db = changes.db
        self._statuses = changes.statuses
        self._roster = changes.roster
        self._notify = changes.notify_outbox
        self._clock = changes.clock
        self._overdue = overdue

    @property
    def member_id(self) -> MemberId:
        """This node's member id."""
        return self._statuses.member_id

    def admit(self, liaison: Member) -> frozenset[str]:
        """The liaison's countries this node is responsible for (never empty)."""
        roster = self._roster()
        served = frozenset(
            c
            for c in liaison.jurisdictions
            if roster.responsible_for(c).member_id == self.member_id
        )
        if not served:
            wanted = ", ".join(sorted(liaison.jurisdictions)) or "none"
            owners = sorted({roster.responsible_for(c).member_id for c in liaison.jurisdictions})
            hint = f"; use the node of {', '.join(owners)}" if owners else ""
            raise PermissionDeniedError(
                OUTSIDE_JURISDICTION,
                f"this node ({self.member_id}) is not responsible for your jurisdictions "
                f"({wanted}){hint}",
            )
        return served

    def referrals(
        self, countries: frozenset[str], where: CaseFilter, page_size: int, token: str
    ) -> CasePage:
        """A page of referrals in the liaison's countries."""
        wanted = where.hosting_countries & countries if where.hosting_countries else countries
        if not wanted:
            return CasePage([], "")
        return list_cases(
            self._db,
            replace(where, hosting_countries=frozenset(wanted)),
            page_size,
            token,
            self._clock(),
            self._overdue,
        )

    def acknowledge(self, countries: frozenset[str], case_id: CaseId, reference: str) -> CaseView:
        """Police confirm receipt, with their own reference number."""
        reference = reference.strip()
        if not 0 < len(reference) <= MAX_REFERENCE_CHARS:
            raise InvalidArgumentError(
                TEXT_LENGTH,
                f"reference must be 1 to {MAX_REFERENCE_CHARS} characters",
                field="reference",
            )
        now = self._clock()
        with self._db.write() as session:
            case = self._case(session, countries, case_id, lock=True)
            case = store.update_case(
                session,
                case,
                police_acknowledged_at=case.police_acknowledged_at or now,
                police_reference=reference,
                updated_at=now,
            )
            store.append_event(session, case, CaseEventKind.ACKNOWLEDGED, now)
        return self.view(countries, case_id)

    def request_hold(
        self, countries: frozenset[str], case_id: CaseId, reason: str, until: datetime | None
    ) -> CaseView:
        """Delay the takedown notice until ``until`` (or release)."""
        now = self._clock()
        reason = reason.strip()
        if not 0 < len(reason) <= MAX_REASON_CHARS:
            raise InvalidArgumentError(
                TEXT_LENGTH, f"reason must be 1 to {MAX_REASON_CHARS} characters", field="reason"
            )
        if until is None or until <= now or until - now > MAX_HOLD:
            raise InvalidArgumentError(
                BAD_HOLD_UNTIL, "until must be in the future, at most 90 days ahead", field="until"
            )
        fanout = Fanout()
        with self._db.write() as session:
            case = self._case(session, countries, case_id, lock=True)
            path = _HOLD_PATH.get(CaseStatus(case.status))
            if path is None:
                raise FailedPreconditionError(
                    TOO_LATE_FOR_HOLD,
                    f"too late for a hold: the case is {CaseStatus(case.status).name}",
                )
            for status in path:
                _, case = self._statuses.issue(
                    session, case, status, now, fanout, note="hold requested by police"
                )
            case = store.update_case(
                session, case, hold_until=until, hold_reason=reason, updated_at=now
            )
            store.append_event(session, case, CaseEventKind.HOLD_REQUESTED, now)
        for destination in fanout.destinations:
            self._notify(destination)
        return self.view(countries, case_id)

    def release_hold(self, countries: frozenset[str], case_id: CaseId) -> CaseView:
        """Lift an active hold before it expires."""
        now = self._clock()
        with self._db.write() as session:
            case = self._case(session, countries, case_id, lock=True)
            if case.hold_until is None or case.hold_until <= now:
                raise FailedPreconditionError(
                    NO_ACTIVE_HOLD, "there is no active hold on this case"
                )
            _lift(session, case, CaseEventKind.HOLD_RELEASED, now)
        return self.view(countries, case_id)

    def expire_holds(self) -> list[CaseId]:
        """Lift every hold whose time is up; returns the case ids."""
        now = self._clock()
        with self._db.write() as session:
            expired = store.expired_holds(session, now)
            for case in expired:
                _lift(session, case, CaseEventKind.HOLD_EXPIRED, now)
        return [c.case_id for c in expired]

    def view(self, countries: frozenset[str], case_id: CaseId) -> CaseView:
        """One referral."""
        with self._db.read() as session:
            case = self._case(session, countries, case_id)
            return local_view(session, case, self._clock(), self._overdue)

    def reports(
        self, countries: frozenset[str], case_id: CaseId, page_size: int, token: str
    ) -> ReportPage:
        """A page of a referral's reports, in the order they joined."""
        item_page_size(page_size)  # a bad size is refused before any read
        with self._db.read() as session:
            self._case(session, countries, case_id)
            return local_report_page(session, case_id, page_size, token)

    def history(
        self, countries: frozenset[str], case_id: CaseId, page_size: int, token: str
    ) -> HistoryPage:
        """A page of a referral's applied status updates, in sequence order."""
        item_page_size(page_size)
        with self._db.read() as session:
            self._case(session, countries, case_id)
            return history_page(session, case_id, page_size, token)

    def check_cursor(self, after: int) -> None:
        """Refuse a cursor beyond the newest event: it cannot come from this node's
        log (another node, or this node's data was reset), and accepting it
        would silently skip every event up to that position."""
        with self._db.read() as session:
            newest = store.last_event_sequence(session)
        if after > newest:
            raise FailedPreconditionError(
                CURSOR_AHEAD,
                "cursor is ahead of this node's event log (another node's cursor, or the "
                "node's data was reset): watch again from the start with an empty cursor",
            )

    def events(self, countries: frozenset[str], after: int, limit: int) -> list[ReferralEvent]:
        """Events after a log position, in commit order, with the cases as they
        stand (without their report lists) and the report each opening or
        joining event is about, so that no event grows with a case's size."""
        now = self._clock()
        with self._db.read() as session:
            rows = store.events_after(session, after, countries, limit)
            cases = store.case_records(session, (row.case_id for row in rows))
            views = {
                view.case_id: view
                for view in local_views(
                    session, list(cases.values()), now, self._overdue, report_limit=0
                )
            }
            reports = store.reports_by_id(session, (r.report_id for r in rows if r.report_id))
        return [
            ReferralEvent(
                r.sequence,
                CaseEventKind(r.kind),
                r.case_id,
                CaseStatus(r.status),
                r.occurred_at,
                views[r.case_id],
                report_view(reports[r.report_id]) if r.report_id in reports else None,
                r.traceparent,
            )
            for r in rows
        ]

    @staticmethod
    def _case(
        session: Session, countries: frozenset[str], case_id: CaseId, *, lock: bool = False
    ) -> CaseRecord:
        """A case of the liaison's countries (``lock``: for a write, see store.get_case)."""
        case = store.get_case(session, case_id, lock=lock) if case_id else None
        if case is None or case.hosting_country not in countries:
            raise NotFoundError(UNKNOWN_CASE, "no such referral in your jurisdiction")
        return case


def _lift(session: Session, case: CaseRecord, kind: CaseEventKind, now: datetime) -> None:
    case = store.update_case(session, case, hold_until=None, hold_reason=None, updated_at=now)
    store.append_event(session, case, kind, now)
