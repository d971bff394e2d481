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
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from crypto.dsse import Envelope
from federation.core.case import CaseEventKind
from federation.core.case_status import CaseStatus, is_open
from federation.core.ids import CaseId, MemberId, ReportId, UpdateId, new_uuid7
from federation.core.limits import DEFAULT_LIMITS
from federation.core.reasons import STATUS_UPDATE_TYPE, Rejection
from federation.core.roster import Roster
from federation.core.status_update import MAX_REPORT_IDS, StatusUpdate
from federation.status.receiving import (
    NO_FAULTS,
    ReceivedUpdate,
    ReceivingFaults,
    receive_updates,
)
from federation.store import cases as case_store
from federation.store import outbox
from federation.store import status as store
from federation.store.cases import CaseRecord, ReportRecord
from federation.wire.convert import encode_envelope, encode_proofs, encode_status_update

Signer = Callable[[str, bytes], Envelope]
#: Signs many payloads of one type (in parallel where it can), in order.
BulkSigner = Callable[[str, Sequence[bytes]], list[Envelope]]


@dataclass(slots=True)
class Fanout:
    """Peers that got new outbox items in this transaction (to wake after commit)."""

    destinations: set[MemberId] = field(default_factory=set)


#: Report ids named by the update an owner records and shows (its case's
#: first reports). A reporter with reports beyond these is sent copies of
#: the update naming its own reports instead, at most MAX_REPORT_IDS each, so
#: that no signed update grows with the size of its case (spec section 10.4).
NAMED_REPORTS = 100
#: Receipts one catch-up item carries (ForwardedItem.joined_receipts).
MAX_JOINED_RECEIPTS = DEFAULT_LIMITS.max_joined_receipts


@dataclass(frozen=True, slots=True)
class Issued:
    """An update we authored, with its signed envelope bytes, and the copies
    for reporters whose reports it does not name (see NAMED_REPORTS)."""

    update: StatusUpdate
    envelope: bytes
    #: (origin member, copy, its signed envelope).
    copies: tuple[tuple[MemberId, StatusUpdate, bytes], ...] = ()

    def sent_to(self, origin: MemberId) -> list[tuple[StatusUpdate, bytes]]:
        """Each update (with its envelope) the author of reports ``origin`` is
        sent: its copies, else the recorded update."""
        own = [(u, e) for o, u, e in self.copies if o == origin]
        return own or [(self.update, self.envelope)]

    def naming(self, report_id: ReportId, origin: MemberId) -> bytes:
        """The signed update (recorded or copy) that names ``report_id``."""
        for o, copy, envelope in self.copies:
            if o == origin and report_id in copy.report_ids:
                return envelope
        return self.envelope


Chains = Mapping[MemberId, Mapping[ReportId, bytes | None]]
"""Origin member -> report id -> its MOVED chain (None: it came directly)."""


@dataclass(frozen=True, slots=True)
class OpenedCase:
    """A case opened in the current transaction, for its first update."""

    case_id: CaseId
    #: (report_id, origin) of its reports, in the order they were filed.
    reports: tuple[tuple[ReportId, MemberId], ...]
    reporters: frozenset[MemberId]
    #: Origin -> report id -> the MOVED chain it came with (None: not moved).
    chains: Chains = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Join:
    """A report that joined an existing case of ours and that its author
    must be told of: the author's first in the case, or one moved here."""

    case_id: CaseId
    reporter: MemberId
    report_id: ReportId
    #: The report's MOVED chain, when it was moved here.
    chain: bytes | None = None
    #: False for a moved report whose author already had reports in the case.
    new: bool = True


def moved_chains(reports: Iterable[ReportRecord]) -> dict[MemberId, dict[ReportId, bytes | None]]:
    """Origin -> report id -> the MOVED chain of each report of a case (None
    for a report that came here directly)."""
    chains: dict[MemberId, dict[ReportId, bytes | None]] = {}
    for r in reports:
        chains.setdefault(r.origin_member_id, {})[r.report_id] = r.moved_chain
    return chains


def _proofs_for(update: StatusUpdate, own: Mapping[ReportId, bytes | None]) -> list[bytes | None]:
    """The proofs of each copy of an update sent to a reporter (spec section
    10.1), given its reports in the case and their MOVED chains (``own``):
    one copy per distinct chain among the reports the update names (None
    for those that came here directly). The reporter links, per copy, the
    reports that copy proves."""
    return list(dict.fromkeys(own[r] for r in update.report_ids if r in own)) or [None]


class StatusBook:
    """Issues and applies status updates."""

    def __init__(
        self,
        member_id: MemberId,
        sign: Signer,
        new_id: Callable[[], str] = new_uuid7,
        sign_many: BulkSigner | None = None,
        faults: ReceivingFaults = NO_FAULTS,
        traceparent: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.member_id = member_id
        #: The current call's trace context, stored with the updates an
        #: analyst's RecordStatus queues so that their delivery to every
        #: reporter continues that call's trace (tracing off: None).
        self._traceparent = traceparent
        self._faults = faults
        self._sign = sign
        self._sign_many: BulkSigner = sign_many or (
            lambda payload_type, payloads: [sign(payload_type, p) for p in payloads]
        )
        self._new_id = new_id

    # --- responsible side ---------------------------------------------------------

    def issue(
        self,
        session: Session,
        case: CaseRecord,
        status: CaseStatus,
        now: datetime,
        fanout: Fanout,
        *,
        note: str = "",
        new_hosting_country: str = "",
    ) -> tuple[Issued, CaseRecord]:
        """Record a status of one of our cases and queue it for every reporter;
        the update, and the case as it now stands."""
        reports = case_store.case_reports(session, case.case_id)
        base = StatusUpdate(
            update_id=UpdateId(self._new_id()),
            case_id=case.case_id,
            report_ids=(),
            member_id=self.member_id,
            status=status,
            sequence=case.last_sequence + 1,
            observed_at=now,
            note=note,
            new_hosting_country=new_hosting_country,
        )
        named = [(r.report_id, r.origin_member_id) for r in reports]
        [issued] = self._sign_issued([(base, named)])
        store.insert_updates(
            session, [store.update_row(issued.update, issued.envelope, applied=True, now=now)]
        )
        case = case_store.update_case(session, case, **_case_changes(issued.update))
        if status is not CaseStatus.RECEIVED:  # opening is logged as CASE_OPENED
            case_store.append_event(session, case, CaseEventKind.STATUS_CHANGED, now)
        reporters = {o for _, o in named} - {self.member_id}
        queued = self._queued(issued, reporters, moved_chains(reports), self._traceparent())
        outbox.enqueue_many(session, queued, now)
        fanout.destinations.update(reporters)
        return issued, case

    def _sign_issued(
        self, planned: Sequence[tuple[StatusUpdate, Sequence[tuple[ReportId, MemberId]]]]
    ) -> list[Issued]:
        """Sign, in one pass, each update (naming its case's first reports)
        with the copies its reporters need; ``planned``: an update without
        report ids and its case's (report_id, origin) pairs in join order."""
        plans = [self._plan(base, reports) for base, reports in planned]
        flat = [u for recorded, copies in plans for u in (recorded, *(c for _, c in copies))]
        envelopes = iter(
            encode_envelope(e)
            for e in self._sign_many(STATUS_UPDATE_TYPE, [encode_status_update(u) for u in flat])
        )
        issued = []
        for recorded, copies in plans:
            envelope = next(envelopes)
            signed = tuple((origin, copy, next(envelopes)) for origin, copy in copies)
            issued.append(Issued(recorded, envelope, signed))
        return issued

    def _plan(
        self, base: StatusUpdate, reports: Sequence[tuple[ReportId, MemberId]]
    ) -> tuple[StatusUpdate, list[tuple[MemberId, StatusUpdate]]]:
        """The recorded update (first NAMED_REPORTS reports) and, for each
        origin with a report beyond those, copies naming all of its reports."""
        recorded = replace(base, report_ids=tuple(r for r, _ in reports[:NAMED_REPORTS]))
        named = set(recorded.report_ids)
        by_origin: dict[MemberId, list[ReportId]] = {}
        for report_id, origin in reports:
            by_origin.setdefault(origin, []).append(report_id)
        copies = [
            (
                origin,
                replace(
                    base,
                    update_id=UpdateId(self._new_id()),
                    report_ids=tuple(ids[i : i + MAX_REPORT_IDS]),
                ),
            )
            for origin, ids in by_origin.items()
            if not named.issuperset(ids)
            for i in range(0, len(ids), MAX_REPORT_IDS)
        ]
        return recorded, copies

    @staticmethod
    def _queued(
        issued: Issued,
        reporters: Iterable[MemberId],
        chains: Chains,
        traceparent: str | None = None,
    ) -> list[outbox.NewOutboxItem]:
        """Outbox items taking an update to each reporter, with its proofs."""
        return [
            outbox.NewOutboxItem(
                reporter,
                update.update_id,
                STATUS_UPDATE_TYPE,
                envelope,
                proofs=proofs,
                traceparent=traceparent,
            )
            for reporter in sorted(reporters)
            for update, envelope in issued.sent_to(reporter)
            for proofs in _proofs_for(update, chains.get(reporter, {}))
        ]

    def open_cases(
        self, session: Session, opened: Sequence[OpenedCase], now: datetime, fanout: Fanout
    ) -> None:
        """Issue the first update (RECEIVED, sequence 1) of cases opened in this
        transaction, signed in bulk, and queue it for their reporters.

        The caller inserts the case rows already RECEIVED at sequence 1 (see
        CaseBook.file_many); opening is logged as CASE_OPENED, not here.
        """
        planned = [
            (
                StatusUpdate(
                    update_id=UpdateId(self._new_id()),
                    case_id=case.case_id,
                    report_ids=(),
                    member_id=self.member_id,
                    status=CaseStatus.RECEIVED,
                    sequence=1,
                    observed_at=now,
                ),
                case.reports,
            )
            for case in opened
        ]
        issued = self._sign_issued(planned)
        store.insert_updates(
            session, [store.update_row(i.update, i.envelope, applied=True, now=now) for i in issued]
        )
        queued = [
            item
            for case, first in zip(opened, issued, strict=True)
            for item in self._queued(first, case.reporters - {self.member_id}, case.chains)
        ]
        outbox.enqueue_many(session, queued, now)
        fanout.destinations.update(item.destination for item in queued)

    def catch_up(
        self,
        session: Session,
        joins: Iterable[Join],
        receipts: Mapping[ReportId, bytes],
        now: datetime,
        fanout: Fanout,
    ) -> None:
        """Tell reporters about their reports that joined one of our cases:
        a reporter new to the case gets its whole history, in order; one
        whose moved report joined a case it was already in gets the latest
        update (it has the rest).

        Those updates name only the reports the case had when each was
        signed, so each carries the signed receipts (``receipts``: report id
        -> serialized receipt) by which the reporter's reports joined: the
        reporter's proof that the update concerns them.
        """
        groups: dict[tuple[CaseId, MemberId], list[Join]] = {}
        for join in joins:
            if join.reporter != self.member_id:
                groups.setdefault((join.case_id, join.reporter), []).append(join)
        if not groups:
            return
        history: dict[str, list[store.UpdateRecord]] = {}
        for row in store.updates_of(session, {case_id for case_id, _ in groups}):
            history.setdefault(row.case_id, []).append(row)
        queued: list[outbox.NewOutboxItem] = []
        for (case_id, reporter), group in groups.items():
            rows = history.get(case_id, [])
            if not any(j.new for j in group):
                rows = rows[-1:]
            for start in range(0, len(group), MAX_JOINED_RECEIPTS):
                chunk = group[start : start + MAX_JOINED_RECEIPTS]
                chain = next((j.chain for j in chunk if j.chain is not None), b"")
                proofs = encode_proofs(joined_receipts=[receipts[j.report_id] for j in chunk])
                queued.extend(
                    outbox.NewOutboxItem(
                        reporter,
                        row.update_id,
                        STATUS_UPDATE_TYPE,
                        row.envelope,
                        proofs=proofs + chain,
                    )
                    for row in rows
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
        joined_reports: tuple[ReportId, ...] = (),
    ) -> Rejection | None:
        """Check and store one update from another member (see receive_many)."""
        received = ReceivedUpdate(update, envelope, chain, joined_reports)
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
        per update, why it is refused or None (see federation.status.receiving)."""
        return receive_updates(session, self.member_id, roster, updates, now, self._faults)


def _case_changes(update: StatusUpdate) -> dict[str, object]:
    """What one of our own updates changes on its case (CaseRecord fields)."""
    changes: dict[str, object] = {
        "status": int(update.status),
        "last_sequence": update.sequence,
        "is_open": is_open(update.status),
        "updated_at": update.observed_at,
    }
    if update.status is CaseStatus.NOTICE_SENT:
        changes["notice_sent_at"] = update.observed_at
    if update.status is CaseStatus.CONTENT_REMOVED:
        changes["removed_at"] = update.observed_at
    return changes
