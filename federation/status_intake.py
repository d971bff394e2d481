"""Reporter side of case status: applying other members' updates, a batch at a time.

Updates for cases of other members that hold our reports are applied
strictly in sequence order; an older or repeated one is acknowledged and
ignored, one past a gap is kept (unapplied) until the gap is filled.

A batch from a peer (its outbox drains hundreds at once after an outage) is
decided against state read up front in a few indexed queries and written in
one statement per table, exactly as if its updates had arrived one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from federation.core.case_status import CaseStatus
from federation.core.reasons import Rejection, RejectReason
from federation.core.roster import Roster
from federation.core.status_update import Placement, StatusUpdate, check_transition, place
from federation.store import cases as case_store
from federation.store import status as store
from federation.store.bulk import insert_many
from federation.store.models import StatusUpdateRow, TrackedCaseRow, table_of


@dataclass(slots=True)
class _Tracked:
    """A remote case as this batch sees it (stored, or first seen now)."""

    case_id: str
    responsible: str
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
    update_id: str = ""


@dataclass(slots=True)
class _Batch:
    ours_responsible: set[str]
    tracked: dict[str, _Tracked]
    held: dict[str, dict[int, _Held]]
    own_reports: set[str]
    links: list[tuple[str, str]] = field(default_factory=list)
    newly_applied: list[str] = field(default_factory=list)


def receive_updates(
    session: Session,
    me: str,
    roster: Roster,
    updates: Sequence[tuple[StatusUpdate, bytes]],
    now: datetime,
) -> list[Rejection | None]:
    """Check, store and apply (in order) updates from other members, with their
    signed envelopes; per update, the reason it is refused or None."""
    if not updates:
        return []
    batch = _read(session, me, [u for u, _ in updates])
    results = [_receive(batch, roster, u, envelope, now) for u, envelope in updates]
    _write(session, batch, now)
    return results


def _read(session: Session, me: str, updates: Sequence[StatusUpdate]) -> _Batch:
    case_ids = {u.case_id for u in updates}
    held: dict[str, dict[int, _Held]] = {c: {} for c in case_ids}
    for row in store.held_updates(session, case_ids):
        held[row.case_id][row.sequence] = _Held(row.status, row.applied, update_id=row.update_id)
    return _Batch(
        ours_responsible=case_store.existing_case_ids(session, case_ids),
        tracked={
            row.case_id: _Tracked(
                row.case_id,
                row.responsible_member_id,
                row.status,
                row.last_applied_sequence,
                row.first_seen_at,
            )
            for row in store.tracked_records(session, case_ids)
        },
        held=held,
        own_reports=set(store.own_reports(session, me, {r for u in updates for r in u.report_ids})),
    )


def _receive(
    batch: _Batch, roster: Roster, update: StatusUpdate, envelope: bytes, now: datetime
) -> Rejection | None:
    if update.case_id in batch.ours_responsible:
        return Rejection(RejectReason.NOT_RESPONSIBLE, "this node is responsible for the case")
    ours = [r for r in update.report_ids if r in batch.own_reports]
    tracked = batch.tracked.get(update.case_id)
    refusal = _check_author(roster, update, tracked)
    if refusal is not None:
        return refusal
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
    row = store.update_row(update, envelope, applied=False, now=now)
    held[update.sequence] = _Held(int(update.status), False, row=row)
    _apply_in_order(batch, tracked, held)
    return None


def _check_author(
    roster: Roster, update: StatusUpdate, tracked: _Tracked | None
) -> Rejection | None:
    """Only the member responsible for a case may write about it.

    A case we track belongs to the member that opened it (its first update's
    signer). A case we do not know yet is accepted from any hotline or
    secretariat: after a move, the new owner's first update can reach us
    before the old owner's MOVED does, and refusing it would be final. Every
    update stays attributable through its signature.
    """
    if tracked is not None and tracked.responsible != update.member_id:
        return Rejection(
            RejectReason.NOT_RESPONSIBLE, "another member is responsible for this case"
        )
    member = roster.member(update.member_id)
    if member is None or not member.role.runs_node:
        return Rejection(RejectReason.NOT_RESPONSIBLE, "only hotlines own cases")
    return None


def _previous(
    tracked: _Tracked | None, held: dict[int, _Held], update: StatusUpdate
) -> CaseStatus | None:
    last = tracked.last_applied if tracked else 0
    if update.sequence == last + 1:
        return CaseStatus(tracked.status) if tracked and tracked.status else None
    before = held.get(update.sequence - 1)
    return CaseStatus(before.status) if before else None


def _apply_in_order(batch: _Batch, tracked: _Tracked, held: dict[int, _Held]) -> None:
    while (following := held.get(tracked.last_applied + 1)) is not None:
        following.applied = True
        if following.row is not None:
            following.row["applied"] = True
        else:
            batch.newly_applied.append(following.update_id)
        tracked.status = following.status
        tracked.last_applied += 1
        tracked.changed = True


def _write(session: Session, batch: _Batch, now: datetime) -> None:
    """One statement per table for everything the batch decided."""
    insert_many(
        session,
        table_of(TrackedCaseRow),
        [
            {
                "case_id": t.case_id,
                "responsible_member_id": t.responsible,
                "status": t.status,
                "last_applied_sequence": t.last_applied,
                "first_seen_at": t.first_seen_at,
                "updated_at": now,
            }
            for t in batch.tracked.values()
            if t.new
        ],
    )
    store.save_progress(
        session,
        [
            (t.case_id, t.status, t.last_applied)
            for t in batch.tracked.values()
            if t.changed and not t.new
        ],
        now,
    )
    insert_many(
        session,
        table_of(StatusUpdateRow),
        [h.row for updates in batch.held.values() for h in updates.values() if h.row is not None],
    )
    store.mark_applied(session, batch.newly_applied)
    store.link_reports(session, batch.links, now)
