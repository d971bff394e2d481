"""Reporter side of case status: applying other members' updates, a batch at a time.

Updates for cases of other members that hold our reports are applied
strictly in sequence order; an older or repeated one is acknowledged and
ignored, one past a gap is kept (unapplied) until the gap is filled.

Only the member that owns one of our reports may write about it (spec
section 10.1): the report's expected owner (recorded when we sent it), or a
member the owner handed it to by a chain of signed MOVED updates carried with
the update. An update that names none of our reports must carry the signed
receipt by which its signer filed one of them into the case. Anything else
is refused and leaves nothing behind. A held update is checked against the
transition table again when its turn comes (section 10.3).

A batch from a peer (its outbox drains hundreds at once after an outage) is
decided against state read up front in a few indexed queries and written in
one statement per table, exactly as if its updates had arrived one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy.orm import Session

from federation.core import handover
from federation.core.case_status import CaseStatus, may_follow
from federation.core.ids import CaseId, MemberId, ReportId, UpdateId
from federation.core.reasons import Rejection, RejectReason
from federation.core.roster import Roster
from federation.core.status_update import Placement, StatusUpdate, check_transition, place
from federation.store import cases as case_store
from federation.store import status as store

log = structlog.get_logger(__name__)

#: The one answer to an update from a member that may not write about the
#: case here: the same text whether the case is ours, tracked or unknown, so
#: that a probe learns nothing about which case ids exist (section 10.7).
NOT_YOURS = Rejection(
    RejectReason.NOT_RESPONSIBLE, "the signer is not responsible for a report of ours in this case"
)


@dataclass(frozen=True, slots=True)
class ReceivingFaults:
    """Deliberate faults (tests only, [testing] faults): each switches off one
    section 10 check so that the conformance harness can be shown to catch it."""

    #: "accept-non-owner-update": any member may write about our reports.
    accept_non_owner: bool = False
    #: "apply-held-unchecked": held updates are applied without the table.
    apply_held_unchecked: bool = False


NO_FAULTS = ReceivingFaults()


@dataclass(frozen=True, slots=True)
class ReceivedUpdate:
    """An authenticated update from another member, with what came with it."""

    update: StatusUpdate
    #: The signed envelope, stored as received.
    envelope: bytes
    #: Verified MOVED updates handing one of our reports to the signer.
    chain: tuple[StatusUpdate, ...] = ()
    #: Our reports verified receipts of the signer put in this case.
    joined_reports: tuple[ReportId, ...] = ()


@dataclass(slots=True)
class _Tracked:
    """A remote case as this batch sees it (stored, or first seen now)."""

    case_id: CaseId
    responsible: MemberId
    status: int | None
    last_applied: int
    first_seen_at: datetime
    new: bool = False
    changed: bool = False


@dataclass(slots=True)
class _Held:
    """One stored or newly received update of a case: enough to apply it."""

    status: int
    applied: bool
    #: The row to insert for an update received in this batch (None: stored).
    row: dict[str, Any] | None = None
    update_id: UpdateId | Literal[""] = ""


@dataclass(slots=True)
class _Batch:
    ours_responsible: set[CaseId]
    tracked: dict[CaseId, _Tracked]
    held: dict[CaseId, dict[int, _Held]]
    #: Our reports among those the batch names -> their expected owners.
    owners: dict[ReportId, MemberId]
    links: list[tuple[ReportId, CaseId]] = field(default_factory=list)
    #: Stored updates (each with its id) applied or refused by this batch.
    newly_applied: list[UpdateId | Literal[""]] = field(default_factory=list)
    newly_refused: list[UpdateId | Literal[""]] = field(default_factory=list)
    faults: ReceivingFaults = NO_FAULTS


def receive_updates(
    session: Session,
    me: MemberId,
    roster: Roster,
    updates: Sequence[ReceivedUpdate],
    now: datetime,
    faults: ReceivingFaults = NO_FAULTS,
) -> list[Rejection | None]:
    """Check, store and apply (in order) updates from other members; per
    update, the reason it is refused or None."""
    if not updates:
        return []
    batch = _read(session, me, updates)
    batch.faults = faults
    results = [_receive(batch, roster, u, now) for u in updates]
    _write(session, batch, now)
    return results


def _read(session: Session, me: MemberId, updates: Sequence[ReceivedUpdate]) -> _Batch:
    case_ids = {u.update.case_id for u in updates}
    # The tracked rows are locked first and the held updates read after:
    # another node process on the same database may be storing an update of
    # one of these cases right now. Without the lock, one transaction could
    # hold sequence n + 1 while the other applies n, each blind to the
    # other's row, and n + 1 would wait for ever for a gap already filled.
    # A case not tracked yet has no row to lock: two first updates then
    # both insert its tracked row, and the loser runs again (a lost race).
    tracked = {
        row.case_id: _Tracked(
            row.case_id,
            row.responsible_member_id,
            row.status,
            row.last_applied_sequence,
            row.first_seen_at,
        )
        for row in store.tracked_records(session, case_ids, lock=True)
    }
    held: dict[CaseId, dict[int, _Held]] = {c: {} for c in case_ids}
    for row in store.held_updates(session, case_ids):
        held[row.case_id][row.sequence] = _Held(row.status, row.applied, update_id=row.update_id)
    named = {r for u in updates for r in u.update.report_ids} | {
        r for u in updates for r in u.joined_reports
    }
    return _Batch(
        ours_responsible=case_store.existing_case_ids(session, case_ids),
        tracked=tracked,
        held=held,
        owners=store.own_reports(session, me, named),
    )


def _receive(
    batch: _Batch, roster: Roster, received: ReceivedUpdate, now: datetime
) -> Rejection | None:
    update = received.update
    if update.case_id in batch.ours_responsible:
        return NOT_YOURS
    ours = _proven_reports(batch.owners, received, roster, batch.faults.accept_non_owner)
    if not ours:
        return NOT_YOURS
    tracked = batch.tracked.get(update.case_id)
    if (
        tracked is not None
        and tracked.responsible != update.member_id
        and not batch.faults.accept_non_owner
    ):
        # Two members that each own one of our reports claim one case id:
        # the first stays; the operator learns of the clash here.
        log.warning(
            "case id claimed by a second member",
            case_id=update.case_id,
            holder=tracked.responsible,
            claimant=update.member_id,
        )
        return NOT_YOURS
    held = batch.held[update.case_id]
    last = tracked.last_applied if tracked else 0
    if place(update.sequence, last) is Placement.STALE or update.sequence in held:
        if tracked is not None:
            batch.links.extend((r, update.case_id) for r in ours)
        return None  # acknowledged and ignored
    refusal = check_transition(_previous(tracked, held, update), update)
    if refusal is not None:
        return refusal
    if tracked is None:
        tracked = batch.tracked[update.case_id] = _Tracked(
            update.case_id, update.member_id, None, 0, now, new=True
        )
    batch.links.extend((r, update.case_id) for r in ours)
    row = store.update_row(update, received.envelope, applied=False, now=now)
    held[update.sequence] = _Held(int(update.status), False, row=row)
    _apply_in_order(batch, tracked, held)
    return None


def _proven_reports(
    owners: dict[ReportId, MemberId],
    received: ReceivedUpdate,
    roster: Roster,
    any_signer: bool = False,
) -> list[ReportId]:
    """Our reports the update is about and its signer has shown it owns:
    named in it (or by its joined receipts), and the signer is their
    expected owner or was handed them by the update's MOVED chain."""
    update, chain = received.update, received.chain
    named = (*update.report_ids, *received.joined_reports)
    if any_signer:
        return [r for r in dict.fromkeys(named) if r in owners]
    return [
        report_id
        for report_id in dict.fromkeys(named)
        if report_id in owners
        and (not chain or handover.check_links(chain, report_id, roster) is None)
        and handover.proves_owner(owners[report_id], chain, update.member_id, roster)
    ]


def _previous(
    tracked: _Tracked | None, held: dict[int, _Held], update: StatusUpdate
) -> CaseStatus | None:
    last = tracked.last_applied if tracked else 0
    if update.sequence == last + 1:
        return CaseStatus(tracked.status) if tracked and tracked.status else None
    before = held.get(update.sequence - 1)
    return CaseStatus(before.status) if before else None


def _apply_in_order(batch: _Batch, tracked: _Tracked, held: dict[int, _Held]) -> None:
    """Apply held updates that are next in sequence; one that the transition
    table does not allow after the current status uses up its sequence
    number but is refused, never applied."""
    while (following := held.get(tracked.last_applied + 1)) is not None:
        tracked.last_applied += 1
        tracked.changed = True
        current = CaseStatus(tracked.status) if tracked.status else None
        # (An update refused earlier lies at or below last_applied: never here.)
        legal = may_follow(current, CaseStatus(following.status))
        if not legal and not batch.faults.apply_held_unchecked:
            _refuse_held(batch, tracked, following)
            continue
        following.applied = True
        if following.row is not None:
            following.row["applied"] = True
        else:
            batch.newly_applied.append(following.update_id)
        tracked.status = following.status


def _refuse_held(batch: _Batch, tracked: _Tracked, held: _Held) -> None:
    log.warning(
        "held status update refused: illegal when its turn came",
        case_id=tracked.case_id,
        sequence=tracked.last_applied,
        responsible=tracked.responsible,
    )
    if held.row is not None:
        held.row["refused_reason"] = int(RejectReason.ILLEGAL_TRANSITION)
    else:
        batch.newly_refused.append(held.update_id)


def _write(session: Session, batch: _Batch, now: datetime) -> None:
    """One statement per table for everything the batch decided.

    Rows go out in key order: two node processes storing updates of the
    same new cases then wait on each other's keys in one order, not in
    opposite orders (a deadlock, which PostgreSQL takes a second to detect).
    """
    tracked = sorted(batch.tracked.values(), key=lambda t: t.case_id)
    store.track_cases(
        session,
        [
            store.TrackedRecord(
                t.case_id, t.responsible, t.status, t.last_applied, t.first_seen_at, now
            )
            for t in tracked
            if t.new
        ],
    )
    store.save_progress(
        session,
        [(t.case_id, t.status, t.last_applied) for t in tracked if t.changed and not t.new],
        now,
    )
    store.insert_updates(
        session,
        [
            held.row
            for case_id in sorted(batch.held)
            for _, held in sorted(batch.held[case_id].items())
            if held.row is not None
        ],
    )
    store.mark_applied(session, batch.newly_applied)
    store.mark_refused(session, batch.newly_refused, RejectReason.ILLEGAL_TRANSITION)
    store.link_reports(session, batch.links, now)
