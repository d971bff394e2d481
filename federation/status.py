"""Case status: issuing signed updates for our cases, applying others' updates.

Responsible side: every change of one of our cases becomes a StatusUpdate
with the case's next sequence number, signed, stored and queued in the same
transaction for every member that authored a report in the case. A member
whose report joins later is sent the whole history, so it can apply it in
order.

Reporter side: updates for cases of other members are applied strictly in
sequence order; an older or repeated one is acknowledged and ignored, one
past a gap is kept until the gap is filled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from crypto.dsse import Envelope
from federation.core.case import CaseEventKind
from federation.core.case_status import CaseStatus, is_open
from federation.core.ids import new_uuid7
from federation.core.reasons import STATUS_UPDATE_TYPE, Rejection, RejectReason
from federation.core.roster import Roster
from federation.core.status_update import Placement, StatusUpdate, check_transition, place
from federation.store import cases as case_store
from federation.store import outbox
from federation.store import status as store
from federation.store.models import CaseRow, StatusUpdateRow, TrackedCaseRow
from federation.wire.convert import encode_envelope, encode_status_update

Signer = Callable[[str, bytes], Envelope]


@dataclass(slots=True)
class Fanout:
    """Peers that got new outbox items in this transaction (to wake after commit)."""

    destinations: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Issued:
    """An update we authored, with its signed envelope bytes."""

    update: StatusUpdate
    envelope: bytes


class StatusBook:
    """Issues and applies status updates."""

    def __init__(self, member_id: str, sign: Signer, new_id: Callable[[], str] = new_uuid7) -> None:
        self.member_id = member_id
        self._sign = sign
        self._new_id = new_id

    # --- responsible side ---------------------------------------------------------

    def issue(
        self,
        session: Session,
        case: CaseRow,
        status: CaseStatus,
        now: datetime,
        fanout: Fanout,
        *,
        note: str = "",
        new_hosting_country: str = "",
    ) -> Issued:
        """Record a status of one of our cases and queue it for every reporter."""
        reports = case_store.case_reports(session, case.case_id)
        update = StatusUpdate(
            update_id=self._new_id(),
            case_id=case.case_id,
            report_ids=tuple(r.report_id for r in reports),
            member_id=self.member_id,
            status=status,
            sequence=case.last_sequence + 1,
            observed_at=now,
            note=note,
            new_hosting_country=new_hosting_country,
        )
        envelope = encode_envelope(self._sign(STATUS_UPDATE_TYPE, encode_status_update(update)))
        session.add(_row(update, envelope, applied=True, now=now))
        _apply_to_case(case, update)
        if status is not CaseStatus.RECEIVED:  # opening is logged as CASE_OPENED
            case_store.append_event(session, case, CaseEventKind.STATUS_CHANGED, now)
        for reporter in sorted({r.origin_member_id for r in reports} - {self.member_id}):
            outbox.enqueue(
                session, reporter, update.update_id, STATUS_UPDATE_TYPE, envelope, (), now
            )
            fanout.destinations.add(reporter)
        return Issued(update, envelope)

    def catch_up(
        self, session: Session, case_id: str, reporter: str, now: datetime, fanout: Fanout
    ) -> None:
        """Send a newly joined reporter the whole history of a case, in order."""
        if reporter == self.member_id:
            return
        for row in store.updates_of(session, [case_id]):
            outbox.enqueue(
                session, reporter, row.update_id, STATUS_UPDATE_TYPE, row.envelope, (), now
            )
            fanout.destinations.add(reporter)

    # --- reporter side --------------------------------------------------------------

    def receive(
        self, session: Session, roster: Roster, update: StatusUpdate, envelope: bytes, now: datetime
    ) -> Rejection | None:
        """Check and store an update from another member; apply what is in order."""
        if case_store.get_case(session, update.case_id) is not None:
            return Rejection(RejectReason.NOT_RESPONSIBLE, "this node is responsible for the case")
        ours = store.own_reports(session, self.member_id, update.report_ids)
        tracked = store.tracked(session, update.case_id)
        refusal = self._check_author(roster, update, tracked)
        if refusal is not None:
            return refusal
        last = tracked.last_applied_sequence if tracked else 0
        stale = place(update.sequence, last) is Placement.STALE
        if stale or store.update_at(session, update.case_id, update.sequence) is not None:
            if tracked is not None:
                for report_id in ours:
                    store.link_report(session, report_id, update.case_id, now)
            return None  # acknowledged and ignored
        refusal = check_transition(self._previous(session, tracked, update), update)
        if refusal is not None:
            return refusal
        if tracked is None:
            tracked = TrackedCaseRow(
                case_id=update.case_id,
                responsible_member_id=update.member_id,
                status=None,
                last_applied_sequence=0,
                first_seen_at=now,
                updated_at=now,
            )
            session.add(tracked)
        for report_id in ours:
            store.link_report(session, report_id, update.case_id, now)
        session.add(_row(update, envelope, applied=False, now=now))
        session.flush()
        self._apply_in_order(session, tracked, now)
        return None

    @staticmethod
    def _check_author(
        roster: Roster, update: StatusUpdate, tracked: TrackedCaseRow | None
    ) -> Rejection | None:
        """Only the member responsible for a case may write about it.

        A case we track belongs to the member that opened it (its first
        update's signer). A case we do not know yet is accepted from any
        hotline or secretariat: after a move, the new owner's first update can
        reach us before the old owner's MOVED does, and refusing it would be
        final. Every update stays attributable through its signature.
        """
        if tracked is not None and tracked.responsible_member_id != update.member_id:
            return Rejection(
                RejectReason.NOT_RESPONSIBLE, "another member is responsible for this case"
            )
        member = roster.member(update.member_id)
        if member is None or not member.role.runs_node:
            return Rejection(RejectReason.NOT_RESPONSIBLE, "only hotlines own cases")
        return None

    @staticmethod
    def _previous(
        session: Session, tracked: TrackedCaseRow | None, update: StatusUpdate
    ) -> CaseStatus | None:
        last = tracked.last_applied_sequence if tracked else 0
        if update.sequence == last + 1:
            return CaseStatus(tracked.status) if tracked and tracked.status else None
        before = store.update_at(session, update.case_id, update.sequence - 1)
        return CaseStatus(before.status) if before else None

    @staticmethod
    def _apply_in_order(session: Session, tracked: TrackedCaseRow, now: datetime) -> None:
        while (
            row := store.update_at(session, tracked.case_id, tracked.last_applied_sequence + 1)
        ) is not None:
            row.applied = True
            tracked.status = row.status
            tracked.last_applied_sequence = row.sequence
            tracked.updated_at = now


def _row(update: StatusUpdate, envelope: bytes, *, applied: bool, now: datetime) -> StatusUpdateRow:
    return StatusUpdateRow(
        update_id=update.update_id,
        case_id=update.case_id,
        author_member_id=update.member_id,
        sequence=update.sequence,
        status=int(update.status),
        observed_at=update.observed_at,
        envelope=envelope,
        applied=applied,
        recorded_at=now,
    )


def _apply_to_case(case: CaseRow, update: StatusUpdate) -> None:
    """Reflect one of our own updates on the case row."""
    case.status = int(update.status)
    case.last_sequence = update.sequence
    case.is_open = is_open(update.status)
    case.updated_at = update.observed_at
    if update.status is CaseStatus.NOTICE_SENT:
        case.notice_sent_at = update.observed_at
    if update.status is CaseStatus.CONTENT_REMOVED:
        case.removed_at = update.observed_at
