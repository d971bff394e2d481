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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from crypto.dsse import Envelope
from federation.core.case import CaseEventKind
from federation.core.case_status import CaseStatus, is_open
from federation.core.ids import new_uuid7
from federation.core.reasons import STATUS_UPDATE_TYPE, Rejection
from federation.core.roster import Roster
from federation.core.status_update import StatusUpdate
from federation.status_intake import ReceivedUpdate, receive_updates
from federation.store import cases as case_store
from federation.store import outbox
from federation.store import status as store
from federation.store.cases import ReportRecord
from federation.store.models import CaseRow, StatusUpdateRow
from federation.wire.convert import encode_envelope, encode_proofs, encode_status_update

Signer = Callable[[str, bytes], Envelope]
#: Signs many payloads of one type (in parallel where it can), in order.
BulkSigner = Callable[[str, Sequence[bytes]], list[Envelope]]


@dataclass(slots=True)
class Fanout:
    """Peers that got new outbox items in this transaction (to wake after commit)."""

    destinations: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Issued:
    """An update we authored, with its signed envelope bytes."""

    update: StatusUpdate
    envelope: bytes


@dataclass(frozen=True, slots=True)
class OpenedCase:
    """A case opened in the current transaction, for its first update."""

    case_id: str
    report_ids: tuple[str, ...]
    reporters: frozenset[str]
    #: Reporter -> the MOVED chain of its report, for reports moved here.
    chains: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Join:
    """A member's first report in an existing case of ours."""

    case_id: str
    reporter: str
    report_id: str
    #: The report's MOVED chain, when it was moved here.
    chain: bytes | None = None


def reporter_chains(reports: Iterable[ReportRecord]) -> dict[str, bytes]:
    """Per reporter, the MOVED chain of its first report in the case that was
    moved here: the proof its status updates must carry (spec section 10.1)."""
    chains: dict[str, bytes] = {}
    for report in reports:
        if report.moved_chain is not None:
            chains.setdefault(report.origin_member_id, report.moved_chain)
    return chains


class StatusBook:
    """Issues and applies status updates."""

    def __init__(
        self,
        member_id: str,
        sign: Signer,
        new_id: Callable[[], str] = new_uuid7,
        sign_many: BulkSigner | None = None,
    ) -> None:
        self.member_id = member_id
        self._sign = sign
        self._sign_many: BulkSigner = sign_many or (
            lambda payload_type, payloads: [sign(payload_type, p) for p in payloads]
        )
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
        session.add(StatusUpdateRow(**store.update_row(update, envelope, applied=True, now=now)))
        _apply_to_case(case, update)
        if status is not CaseStatus.RECEIVED:  # opening is logged as CASE_OPENED
            case_store.append_event(session, case, CaseEventKind.STATUS_CHANGED, now)
        chains = reporter_chains(reports)
        for reporter in sorted({r.origin_member_id for r in reports} - {self.member_id}):
            outbox.enqueue(
                session,
                reporter,
                update.update_id,
                STATUS_UPDATE_TYPE,
                envelope,
                (),
                now,
                proofs=chains.get(reporter),
            )
            fanout.destinations.add(reporter)
        return Issued(update, envelope)

    def open_cases(
        self, session: Session, opened: Sequence[OpenedCase], now: datetime, fanout: Fanout
    ) -> None:
        """Issue the first update (RECEIVED, sequence 1) of cases opened in this
        transaction, signed in bulk, and queue it for their reporters.

        The caller inserts the case rows already RECEIVED at sequence 1 (see
        CaseBook.file_many); opening is logged as CASE_OPENED, not here.
        """
        updates = [
            StatusUpdate(
                update_id=self._new_id(),
                case_id=case.case_id,
                report_ids=case.report_ids,
                member_id=self.member_id,
                status=CaseStatus.RECEIVED,
                sequence=1,
                observed_at=now,
            )
            for case in opened
        ]
        envelopes = [
            encode_envelope(e)
            for e in self._sign_many(STATUS_UPDATE_TYPE, [encode_status_update(u) for u in updates])
        ]
        case_store.insert_rows(
            session,
            StatusUpdateRow,
            [
                store.update_row(u, e, applied=True, now=now)
                for u, e in zip(updates, envelopes, strict=True)
            ],
        )
        queued = [
            outbox.NewOutboxItem(
                reporter,
                update.update_id,
                STATUS_UPDATE_TYPE,
                envelope,
                proofs=case.chains.get(reporter),
            )
            for case, update, envelope in zip(opened, updates, envelopes, strict=True)
            for reporter in sorted(case.reporters - {self.member_id})
        ]
        outbox.enqueue_many(session, queued, now)
        fanout.destinations.update(item.destination for item in queued)

    def catch_up(
        self,
        session: Session,
        joins: Iterable[Join],
        receipts: Mapping[str, bytes],
        now: datetime,
        fanout: Fanout,
    ) -> None:
        """Send each newly joined reporter the whole history of its case, in order.

        Those updates name only the reports the case had when each was
        signed, so each carries the signed receipt (``receipts``: report id
        -> serialized receipt) by which the reporter's report joined: the
        reporter's proof that the update concerns its report.
        """
        wanted = [j for j in joins if j.reporter != self.member_id]
        if not wanted:
            return
        history: dict[str, list[StatusUpdateRow]] = {}
        for row in store.updates_of(session, {j.case_id for j in wanted}):
            history.setdefault(row.case_id, []).append(row)
        queued: list[outbox.NewOutboxItem] = []
        for join in wanted:
            proofs = encode_proofs(joined_receipt=receipts[join.report_id]) + (join.chain or b"")
            queued.extend(
                outbox.NewOutboxItem(
                    join.reporter, row.update_id, STATUS_UPDATE_TYPE, row.envelope, proofs=proofs
                )
                for row in history.get(join.case_id, ())
            )
        outbox.enqueue_many(session, queued, now)
        fanout.destinations.update(item.destination for item in queued)

    # --- reporter side --------------------------------------------------------------

    def receive(
        self,
        session: Session,
        roster: Roster,
        update: StatusUpdate,
        envelope: bytes,
        now: datetime,
        *,
        chain: tuple[StatusUpdate, ...] = (),
        joined_report: str = "",
    ) -> Rejection | None:
        """Check and store one update from another member (see receive_many)."""
        received = ReceivedUpdate(update, envelope, chain, joined_report)
        [result] = self.receive_many(session, roster, [received], now)
        return result

    def receive_many(
        self,
        session: Session,
        roster: Roster,
        updates: Sequence[ReceivedUpdate],
        now: datetime,
    ) -> list[Rejection | None]:
        """Check and store updates from other members, applying what is in order;
        per update, why it is refused or None (see federation.status_intake)."""
        return receive_updates(session, self.member_id, roster, updates, now)


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
