"""Repository of the transactional outbox and each peer's persisted backoff.

Several node processes may share one PostgreSQL database and so one outbox.
A sender first *claims* a batch in a short write transaction: it picks the
oldest pending items of a peer that nobody holds (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so concurrent claimers never wait for or take each other's
rows) and stamps them with its name and a lease. It then sends without any
transaction open, and retires the items with the peer's receipts (or
releases them after a failure). A lease that runs out (its process crashed)
makes the items claimable again; the receiver's idempotency by item id makes
such a rare resend harmless. On SQLite (one process per file) writes are
serialised by BEGIN IMMEDIATE and the same code applies.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from federation.core.ids import ItemId, MemberId
from federation.store._driver import (
    bind_value,
    execute_many,
    fetch,
    fetch_in,
    insert_many,
    select_in,
)
from federation.store.models import OutboxRow, PeerBackoffRow, table_of


class OutboxState(enum.IntEnum):
    """Where an outbox item stands."""

    PENDING = 0
    DELIVERED = 1
    REJECTED = 2


_PENDING = int(OutboxState.PENDING)


@dataclass(frozen=True, slots=True)
class OutgoingItem:
    """An item to send, as the sender's worker sees it."""

    id: int
    item_id: ItemId
    payload_type: str
    envelope: bytes
    via_member_ids: tuple[MemberId, ...]
    #: Hand-over proofs sent beside the envelope (see OutboxRow.proofs).
    proofs: bytes | None = None
    created_at: datetime | None = None
    #: The W3C traceparent of the call that queued the item (tracing on).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class NewOutboxItem:
    """An item to queue for a peer."""

    destination: MemberId
    item_id: ItemId
    payload_type: str
    envelope: bytes
    via_member_ids: tuple[MemberId, ...] = ()
    #: Hand-over proofs sent beside the envelope (see OutboxRow.proofs).
    proofs: bytes | None = None
    #: The W3C traceparent of the call that queues the item (tracing on).
    traceparent: str | None = None


def enqueue(
    session: Session,
    destination: MemberId,
    item_id: ItemId,
    payload_type: str,
    envelope: bytes,
    via: Sequence[MemberId],
    now: datetime,
    proofs: bytes | None = None,
) -> None:
    """Queue one item for a peer, in the caller's transaction."""
    enqueue_many(
        session,
        [NewOutboxItem(destination, item_id, payload_type, envelope, tuple(via), proofs)],
        now,
    )


def enqueue_many(session: Session, items: Sequence[NewOutboxItem], now: datetime) -> None:
    """Queue items for peers in one insert, in the caller's transaction, in order."""
    if not items:
        return
    rows = [
        {
            "destination": i.destination,
            "item_id": i.item_id,
            "payload_type": i.payload_type,
            "envelope": i.envelope,
            "via_member_ids": list(i.via_member_ids),
            "proofs": i.proofs,
            "traceparent": i.traceparent,
            "state": int(OutboxState.PENDING),
            "attempts": 0,
            "created_at": now,
        }
        for i in items
    ]
    insert_many(session, table_of(OutboxRow), rows)


#: The columns an OutgoingItem is made of, in its field order.
_OUTGOING_COLUMNS = (
    "id",
    "item_id",
    "payload_type",
    "envelope",
    "via_member_ids",
    "proofs",
    "created_at",
    "traceparent",
)


def _item(row: tuple[Any, ...]) -> OutgoingItem:
    """An OutgoingItem from a row of _OUTGOING_COLUMNS."""
    return OutgoingItem(row[0], row[1], row[2], row[3], tuple(row[4]), row[5], row[6], row[7])


def _claimable(destination: str, now: datetime) -> Any:
    return and_(
        OutboxRow.destination == destination,
        OutboxRow.state == OutboxState.PENDING,
        or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until <= now),
    )


def peek_batch(
    session: Session, destination: str, limit: int, now: datetime, exclude: Collection[int]
) -> list[OutgoingItem]:
    """The oldest claimable pending items of a peer, leaving out ``exclude``,
    without claiming them in the database.

    For SQLite, where one process owns the file: its senders hold their
    claims in memory (and pass them as ``exclude``), which spares a write
    transaction, with its fsync, per batch. A crash loses nothing: at the
    next start every pending item is claimable again.
    """
    table = table_of(OutboxRow)
    skip = sorted(exclude)
    rows = fetch(
        session,
        table,
        _OUTGOING_COLUMNS,
        "destination = ? AND state = ? AND (lease_until IS NULL OR lease_until <= ?)"
        + (f" AND id NOT IN ({', '.join('?' * len(skip))})" if skip else "")
        + " ORDER BY id LIMIT ?",
        (
            destination,
            _PENDING,
            bind_value(session, table, "lease_until", now),
            *skip,
            limit,
        ),
    )
    return [_item(row) for row in rows]


def claim_batch(
    session: Session,
    destination: str,
    limit: int,
    claimant: str,
    now: datetime,
    lease: timedelta,
) -> list[OutgoingItem]:
    """Claim the oldest unclaimed pending items for a peer, in queue order.

    Call in a (short) write transaction; the claim holds until ``now + lease``
    or until the items are finished or released. Rows another transaction is
    claiming right now are skipped, not waited for (SKIP LOCKED; SQLite has no
    row locks and needs none, its writers being serialised).
    """
    ids = list(
        session.scalars(
            select(OutboxRow.id)
            .where(_claimable(destination, now))
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(ids))
        .values(claimed_by=claimant[:128], lease_until=now + lease)
    )
    rows = fetch_in(session, table_of(OutboxRow), _OUTGOING_COLUMNS, "id IN ({in})", ids)
    return [_item(row) for row in sorted(rows, key=lambda row: row[0])]


@dataclass(frozen=True, slots=True)
class Finished:
    """An item to retire, with the peer's receipt (serialized) as proof."""

    id: int
    state: OutboxState
    receipt: bytes


def finish(session: Session, items: Sequence[Finished], now: datetime, claimant: str = "") -> None:
    """Retire items with their receipts, in one executemany; an item no longer
    pending (another process retired it) is left as it is. The claimant's
    name stays on each row as the record of which process delivered it (set
    here when the claim was held in memory: see peek_batch)."""
    if not items:
        return
    # On the driver cursor: through SQLAlchemy, building and caching this
    # statement cost more than running it, once per delivered batch.
    finished_at = bind_value(session, table_of(OutboxRow), "finished_at", now)
    execute_many(
        session,
        "UPDATE outbox SET state = ?, receipt = ?, finished_at = ?, lease_until = NULL,"
        " attempts = attempts + 1, claimed_by = COALESCE(claimed_by, ?)"
        " WHERE id = ? AND state = ?",
        [
            (int(i.state), i.receipt, finished_at, claimant[:128] or None, i.id, _PENDING)
            for i in items
        ],
    )


def note_attempt(session: Session, ids: Sequence[int], error: str) -> None:
    """Count a failed attempt on items and release their claim (backoff is per peer)."""
    if ids:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), OutboxRow.state == OutboxState.PENDING)
            .values(attempts=OutboxRow.attempts + 1, last_error=error[:500], lease_until=None)
        )


def release(session: Session, ids: Sequence[int]) -> None:
    """Give up the claim on items without counting an attempt (e.g. on shutdown)."""
    if ids:
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), OutboxRow.state == OutboxState.PENDING)
            .values(lease_until=None)
        )


def release_all(session: Session) -> int:
    """Release every claim on pending items; how many were held.

    Only for a database used by one process (SQLite): when it starts, any
    claim it finds was made by a process that is gone.
    """
    result = session.execute(
        update(table_of(OutboxRow))
        .where(
            table_of(OutboxRow).c.state == int(OutboxState.PENDING),
            table_of(OutboxRow).c.lease_until.is_not(None),
        )
        .values(lease_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def pending_destinations(session: Session) -> list[MemberId]:
    """Peers that have pending items."""
    # The ORM maps the column as str; only member ids are queued for (one
    # cast of the list, no call per row).
    return cast(
        list[MemberId],
        list(
            session.scalars(
                select(OutboxRow.destination)
                .where(OutboxRow.state == OutboxState.PENDING)
                .distinct()
            )
        ),
    )


def pending_count(session: Session, destination: str | None = None) -> int:
    """Pending items, for one peer or all."""
    query = (
        select(func.count()).select_from(OutboxRow).where(OutboxRow.state == OutboxState.PENDING)
    )
    if destination is not None:
        query = query.where(OutboxRow.destination == destination)
    return int(session.scalar(query) or 0)


class Backoff(NamedTuple):
    """A peer's retry schedule, as stored (see PeerBackoffRow)."""

    destination: str
    failures: int
    retry_at: datetime
    last_error: str | None


def get_backoff(session: Session, destination: str) -> Backoff | None:
    """A peer's retry schedule, if it has failed before."""
    table = table_of(PeerBackoffRow)
    rows = fetch(session, table, Backoff._fields, "destination = ?", [destination])
    return Backoff(*rows[0]) if rows else None


def record_failure(
    session: Session,
    destination: str,
    error: str,
    now: datetime,
    delay_after: Callable[[int], timedelta],
) -> datetime:
    """Note a failed delivery to a peer; returns when to try it again.

    ``delay_after(n)`` gives the wait after the n-th consecutive failure.
    Safe when several processes fail on the same peer at once: the row is
    created if missing (ON CONFLICT DO NOTHING) and then locked.
    """
    values = {"destination": destination, "failures": 0, "retry_at": now}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(PeerBackoffRow).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(PeerBackoffRow).values(values).on_conflict_do_nothing())
    row = session.scalar(
        select(PeerBackoffRow)
        .where(PeerBackoffRow.destination == destination)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        row = PeerBackoffRow(destination=destination, failures=0, retry_at=now)
        session.add(row)
    row.failures += 1
    row.retry_at = now + delay_after(row.failures)
    row.last_error = error[:500]
    return row.retry_at


def record_success(session: Session, destination: str) -> None:
    """Clear a peer's backoff after a successful delivery."""
    session.execute(delete(PeerBackoffRow).where(PeerBackoffRow.destination == destination))


@dataclass(frozen=True, slots=True)
class PeerQueueState:
    """Counts and retry state of one destination's queue."""

    destination: str
    pending: int
    delivered: int
    rejected: int
    oldest_pending: datetime | None
    failures: int
    retry_at: datetime | None
    last_error: str | None


def queue_states(session: Session) -> list[PeerQueueState]:
    """Every destination's queue, for operators."""
    counts = session.execute(
        select(
            OutboxRow.destination,
            OutboxRow.state,
            func.count(),
            func.min(OutboxRow.created_at),
        ).group_by(OutboxRow.destination, OutboxRow.state)
    ).all()
    backoffs = {b.destination: b for b in session.scalars(select(PeerBackoffRow))}
    names = sorted({row[0] for row in counts} | set(backoffs))
    states = []
    for name in names:
        by_state = {row[1]: (row[2], row[3]) for row in counts if row[0] == name}
        backoff = backoffs.get(name)
        states.append(
            PeerQueueState(
                destination=name,
                pending=by_state.get(OutboxState.PENDING, (0, None))[0],
                delivered=by_state.get(OutboxState.DELIVERED, (0, None))[0],
                rejected=by_state.get(OutboxState.REJECTED, (0, None))[0],
                oldest_pending=by_state.get(OutboxState.PENDING, (0, None))[1],
                failures=backoff.failures if backoff else 0,
                retry_at=backoff.retry_at if backoff else None,
                last_error=backoff.last_error if backoff else None,
            )
        )
    return states


def rejected_items(
    session: Session, limit: int
) -> list[tuple[MemberId, ItemId, bytes, datetime | None]]:
    """Items peers refused: (destination, item_id, receipt, finished_at), newest first."""
    rows = session.execute(
        select(OutboxRow.destination, OutboxRow.item_id, OutboxRow.receipt, OutboxRow.finished_at)
        .where(OutboxRow.state == OutboxState.REJECTED)
        .order_by(OutboxRow.id.desc())
        .limit(limit)
    )
    # As the ORM maps them, the columns are str: a member id and an item id.
    return cast(
        list[tuple[MemberId, ItemId, bytes, datetime | None]],
        [(r[0], r[1], r[2] or b"", r[3]) for r in rows],
    )


def destinations_of(session: Session, item_id: str) -> set[MemberId]:
    """Every peer an item was queued for (e.g. where we sent a report)."""
    # The ORM maps the column as str; only member ids are queued for.
    return cast(
        set[MemberId],
        set(session.scalars(select(OutboxRow.destination).where(OutboxRow.item_id == item_id))),
    )


def redeliver(session: Session, destination: str, since: datetime) -> int:
    """Queue again every item delivered to ``destination`` at or after ``since``
    (the peer restored an older copy of its database and may have lost them);
    how many. The stored receipt stays until the peer's new one replaces it, and
    the peer's backoff is cleared so that the resend starts at once."""
    result = session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.destination == destination,
            OutboxRow.state == OutboxState.DELIVERED,
            OutboxRow.finished_at >= since,
        )
        .values(state=OutboxState.PENDING, lease_until=None)
    )
    session.execute(delete(PeerBackoffRow).where(PeerBackoffRow.destination == destination))
    return int(result.rowcount)  # type: ignore[attr-defined]


def report_deliveries(
    session: Session, item_ids: Collection[str], payload_type: str
) -> dict[ItemId, tuple[OutboxState, bytes | None]]:
    """Where each item we queued stands (its latest queueing) and the peer's
    receipt once it has one, in one query per chunk of ids."""
    rows = select_in(
        session,
        "SELECT id, item_id, state, receipt FROM outbox"
        " WHERE payload_type = ? AND item_id IN ({in})",
        sorted(set(item_ids)),
        before=(payload_type,),
    )
    return {
        item_id: (OutboxState(state), bytes(receipt) if receipt is not None else None)
        for _, item_id, state, receipt in sorted(rows, key=lambda r: r[0])
    }
