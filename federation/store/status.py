"""Repository of status updates, tracked remote cases and report-to-case links."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.core.ids import CaseId, MemberId, ReportId, UpdateId
from federation.core.status_update import StatusUpdate
from federation.store._driver import (
    bind_value,
    execute_many,
    fetch_in,
    insert_many,
    insert_records,
    lock_clause,
    select_in,
)
from federation.store.models import (
    ReportCaseLinkRow,
    StatusUpdateRow,
    TrackedCaseRow,
    table_of,
)


class UpdateRecord(NamedTuple):
    """An applied status update of a case, as stored (see updates_of)."""

    update_id: UpdateId
    case_id: CaseId
    sequence: int
    status: int
    #: The serialized signed envelope (see StatusUpdateRow.envelope).
    envelope: bytes


def updates_of(session: Session, case_ids: Iterable[str]) -> list[UpdateRecord]:
    """The applied updates of the given cases, by case then sequence, in one query."""
    table, where = table_of(StatusUpdateRow), "applied = ? AND case_id IN ({in})"
    ids = sorted(set(case_ids))
    rows = fetch_in(session, table, UpdateRecord._fields, where, ids, before=(True,))
    return [UpdateRecord(*row) for row in sorted(rows, key=lambda r: (r[1], r[2]))]


def insert_updates(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store status updates (rows made by update_row), in one statement."""
    insert_many(session, table_of(StatusUpdateRow), rows)


def applied_envelopes(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, list[bytes]]:
    """The signed envelopes of each case's applied updates, in sequence order,
    in one query (a case's history as its views show it)."""
    ids = sorted(set(case_ids))
    found: dict[CaseId, list[bytes]] = {case_id: [] for case_id in ids}
    rows = select_in(
        session,
        "SELECT case_id, sequence, envelope FROM status_updates"
        " WHERE applied = ? AND case_id IN ({in})",
        ids,
        before=(True,),
    )
    for case_id, _, envelope in sorted(rows, key=lambda r: (r[0], r[1])):
        found[case_id].append(envelope)
    return found


def applied_counts(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, int]:
    """How many applied updates each case's history holds, in one query."""
    ids = sorted(set(case_ids))
    found = dict.fromkeys(ids, 0)
    rows = select_in(
        session,
        "SELECT case_id, COUNT(*) FROM status_updates WHERE applied = ? AND case_id IN ({in})"
        " GROUP BY case_id",
        ids,
        before=(True,),
    )
    found.update((case_id, int(n)) for case_id, n in rows)
    return found


def applied_page(
    session: Session, case_id: str, after: int, limit: int, *, newest_first: bool = False
) -> list[tuple[int, bytes]]:
    """(sequence, envelope) of up to ``limit`` applied updates of a case, in
    sequence order after ``after`` (or the newest ``limit``, newest first);
    the (case_id, sequence) index stops the read after one page."""
    order = "DESC" if newest_first else "ASC"
    rows = select_in(
        session,
        "SELECT sequence, envelope FROM status_updates"  # noqa: S608 - constants
        f" WHERE applied = ? AND sequence > ? AND case_id IN ({{in}}) ORDER BY sequence {order}"
        " LIMIT ?",
        [case_id],
        before=(True, after),
        after=(limit,),
    )
    return [(int(seq), bytes(envelope)) for seq, envelope in rows]


def bounded_history(
    session: Session, counts: dict[CaseId, int], head: int, tail: int
) -> dict[CaseId, list[bytes]]:
    """Each case's applied updates in sequence order (counts from
    applied_counts): all of a history of at most head + tail, else its first
    ``head`` and latest ``tail``. Short histories are read in one query."""
    small = [case_id for case_id, n in counts.items() if n <= head + tail]
    found = applied_envelopes(session, small)
    for case_id, n in counts.items():
        if n > head + tail:
            first = applied_page(session, case_id, 0, head)
            latest = applied_page(session, case_id, 0, tail, newest_first=True)
            found[case_id] = [e for _, e in first] + [e for _, e in reversed(latest)]
    return found


def own_reports(
    session: Session, member_id: str, report_ids: Iterable[str]
) -> dict[ReportId, MemberId]:
    """Which of ``report_ids`` this node authored, each with its expected
    owner (see InboundItemRow.expected_owner_member_id)."""
    rows = select_in(
        session,
        "SELECT item_id, expected_owner_member_id FROM inbound_items"
        " WHERE signer_member_id = ? AND item_id IN ({in})",
        sorted(set(report_ids)),
        before=(member_id,),
    )
    return {item_id: owner for item_id, owner in rows if owner}


class HeldUpdate(NamedTuple):
    """A stored update of a remote case, as the reporter side applies it."""

    case_id: CaseId
    sequence: int
    status: int
    applied: bool
    update_id: UpdateId
    refused: bool


def held_updates(session: Session, case_ids: Iterable[str]) -> list[HeldUpdate]:
    """Every stored update (applied or waiting for a gap) of the given cases."""
    rows = select_in(
        session,
        "SELECT case_id, sequence, status, applied, update_id, refused_reason"
        " FROM status_updates WHERE case_id IN ({in})",
        sorted(set(case_ids)),
    )
    return [HeldUpdate(c, q, s, bool(a), u, r is not None) for c, q, s, a, u, r in rows]


class TrackedRecord(NamedTuple):
    """A remote case we track (see tracked_records)."""

    case_id: CaseId
    responsible_member_id: MemberId
    status: int | None
    last_applied_sequence: int
    first_seen_at: datetime
    updated_at: datetime


def tracked_records(
    session: Session, case_ids: Iterable[str], *, lock: bool = False
) -> list[TrackedRecord]:
    """The remote cases we track among ``case_ids``, in one query, without the ORM.

    ``lock``: hold their rows until the transaction ends (see lock_clause),
    so that what the caller reads next about these cases is not changed
    under it by another node process.
    """
    where = "case_id IN ({in}) ORDER BY case_id" + (lock_clause(session) if lock else "")
    rows = fetch_in(
        session, table_of(TrackedCaseRow), TrackedRecord._fields, where, sorted(set(case_ids))
    )
    return [TrackedRecord(*row) for row in rows]


def track_cases(session: Session, records: Sequence[TrackedRecord]) -> None:
    """Start tracking remote cases (first seen now), in one statement."""
    insert_records(session, table_of(TrackedCaseRow), records)


def save_progress(
    session: Session, tracked: Iterable[tuple[str, int | None, int]], now: datetime
) -> None:
    """Record the status and last applied sequence of tracked cases
    ((case_id, status, last_applied_sequence) triples)."""
    updated_at = bind_value(session, table_of(TrackedCaseRow), "updated_at", now)
    execute_many(
        session,
        "UPDATE tracked_cases SET status = ?, last_applied_sequence = ?, updated_at = ?"
        " WHERE case_id = ?",
        [(status, last, updated_at, case_id) for case_id, status, last in tracked],
    )


def mark_applied(session: Session, update_ids: Iterable[str]) -> None:
    """Mark stored updates as applied (their gap was filled)."""
    execute_many(
        session,
        "UPDATE status_updates SET applied = ? WHERE update_id = ?",
        [(True, update_id) for update_id in update_ids],
    )


def mark_refused(session: Session, update_ids: Iterable[str], reason: int) -> None:
    """Record held updates as refused when their turn came (never applied)."""
    execute_many(
        session,
        "UPDATE status_updates SET refused_reason = ? WHERE update_id = ?",
        [(int(reason), update_id) for update_id in update_ids],
    )


def link_reports(session: Session, links: Iterable[tuple[str, str]], now: datetime) -> None:
    """Link our reports to remote cases ((report_id, case_id) pairs); existing links stay."""
    # In key order, as the other writes of a batch (see status_intake._write).
    rows = [{"report_id": r, "case_id": c, "linked_at": now} for r, c in sorted(set(links))]
    insert_many(session, table_of(ReportCaseLinkRow), rows, ignore_duplicates=True)


def linked_cases_of_report(session: Session, report_id: str) -> list[CaseId]:
    """Remote cases one of our reports belongs to, oldest link first."""
    # The column holds case ids as the responsible member named them.
    return cast(
        list[CaseId],
        list(
            session.scalars(
                select(ReportCaseLinkRow.case_id)
                .where(ReportCaseLinkRow.report_id == report_id)
                .order_by(ReportCaseLinkRow.linked_at, ReportCaseLinkRow.case_id)
            )
        ),
    )


def latest_link(session: Session, report_id: str) -> tuple[CaseId, datetime] | None:
    """The remote case one of our reports was linked to last, and when."""
    row = session.execute(
        select(ReportCaseLinkRow.case_id, ReportCaseLinkRow.linked_at)
        .where(ReportCaseLinkRow.report_id == report_id)
        .order_by(ReportCaseLinkRow.linked_at.desc(), ReportCaseLinkRow.case_id.desc())
        .limit(1)
    ).first()
    return (CaseId(row.case_id), row.linked_at) if row else None


def reports_linked_to(session: Session, case_ids: Iterable[str]) -> list[ReportId]:
    """Our reports linked to any of the given remote cases."""
    # The ORM maps the column as str; it holds the ids of our own reports.
    return cast(
        list[ReportId],
        sorted(
            set(
                session.scalars(
                    select(ReportCaseLinkRow.report_id).where(
                        ReportCaseLinkRow.case_id.in_(list(case_ids))
                    )
                )
            )
        ),
    )


def linked_report_count(session: Session, case_id: str) -> int:
    """How many of our reports are linked to a remote case."""
    rows = select_in(
        session, "SELECT COUNT(*) FROM report_case_links WHERE case_id IN ({in})", [case_id]
    )
    return int(rows[0][0]) if rows else 0


def linked_report_page(session: Session, case_id: str, after: str, limit: int) -> list[ReportId]:
    """Up to ``limit`` of our reports linked to a remote case, in id order after ``after``."""
    rows = select_in(
        session,
        "SELECT report_id FROM report_case_links WHERE report_id > ? AND case_id IN ({in})"
        " ORDER BY report_id LIMIT ?",
        [case_id],
        before=(after,),
        after=(limit,),
    )
    return [row[0] for row in rows]


def update_row(
    update: StatusUpdate, envelope: bytes, *, applied: bool, now: datetime
) -> dict[str, Any]:
    """The status_updates row of an update and its signed envelope."""
    return {
        "update_id": update.update_id,
        "case_id": update.case_id,
        "author_member_id": update.member_id,
        "sequence": update.sequence,
        "status": int(update.status),
        "observed_at": update.observed_at,
        "envelope": envelope,
        "applied": applied,
        "recorded_at": now,
        "refused_reason": None,
    }


def tracked(session: Session, case_id: str) -> TrackedRecord | None:
    """A remote case we track, if any."""
    found = tracked_records(session, [case_id])
    return found[0] if found else None


def links_of_reports(
    session: Session, report_ids: Iterable[str]
) -> list[tuple[ReportId, CaseId, datetime]]:
    """(report_id, case_id, linked_at) of every remote case our ``report_ids``
    were named in, in one query per chunk of ids."""
    table = table_of(ReportCaseLinkRow)
    ids = sorted(set(report_ids))
    columns = ("report_id", "case_id", "linked_at")
    rows = fetch_in(session, table, columns, "report_id IN ({in})", ids)
    return [(ReportId(r), CaseId(c), at) for r, c, at in rows]


def applied_steps(
    session: Session, case_ids: Iterable[str]
) -> dict[CaseId, list[tuple[int, int, datetime]]]:
    """(sequence, status, observed_at) of each case's applied updates (ours or
    received), without their envelopes."""
    table = table_of(StatusUpdateRow)
    ids = sorted(set(case_ids))
    found: dict[CaseId, list[tuple[int, int, datetime]]] = {CaseId(c): [] for c in ids}
    rows = fetch_in(
        session,
        table,
        ("case_id", "sequence", "status", "observed_at"),
        "applied = ? AND case_id IN ({in})",
        ids,
        before=(True,),
    )
    for case_id, sequence, status, observed_at in rows:
        found[case_id].append((int(sequence), int(status), observed_at))
    return found


def applied_envelopes_of_status(
    session: Session, case_ids: Iterable[str], status: int
) -> dict[CaseId, bytes]:
    """The signed envelope of each case's (latest) applied update of ``status``
    (e.g. the MOVED that names where a case went)."""
    rows = select_in(
        session,
        "SELECT case_id, sequence, envelope FROM status_updates"
        " WHERE applied = ? AND status = ? AND case_id IN ({in})",
        sorted(set(case_ids)),
        before=(True, int(status)),
    )
    return {case_id: bytes(envelope) for case_id, _, envelope in sorted(rows, key=lambda r: r[1])}
