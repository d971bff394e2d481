"""Repository of cases held by this node, their reports, hashes, links and events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from federation.core.case import CaseFilter
from federation.core.case_status import CaseStatus
from federation.store.bulk import bind_value, fetch, fetch_in, insert_many, select_in
from federation.store.models import (
    EXACT_HASHES_ONLY,
    Base,
    CaseEventRow,
    CaseHashRow,
    CaseLinkRow,
    CaseReportRow,
    CaseRow,
    table_of,
)


class CaseRecord(NamedTuple):
    """The columns of a case that its views show, read without the ORM.

    Liaison streams and case pages read cases many times a second; loading
    them as ORM objects cost far more than the queries themselves.
    """

    case_id: str
    canonical_url: str
    hosting_country: str
    responsible_member_id: str
    status: int
    reappearance_of_case_id: str | None
    created_at: datetime
    updated_at: datetime
    notice_sent_at: datetime | None
    police_acknowledged_at: datetime | None
    police_reference: str | None
    hold_until: datetime | None
    hold_reason: str | None


class ReportRecord(NamedTuple):
    """A report of a case (see CaseRecord)."""

    case_id: str
    report_id: str
    origin_member_id: str
    joined_at: datetime
    envelope: bytes
    #: The MOVED chain of a report moved here (see CaseReportRow.moved_chain).
    moved_chain: bytes | None = None


class EventRecord(NamedTuple):
    """An entry of the case event log (see CaseRecord)."""

    sequence: int
    case_id: str
    kind: int
    status: int
    hosting_country: str
    occurred_at: datetime
    report_id: str | None


def case_records(session: Session, case_ids: Iterable[str]) -> dict[str, CaseRecord]:
    """Cases by id, for showing them, in one query."""
    rows = fetch_in(
        session, table_of(CaseRow), CaseRecord._fields, "case_id IN ({in})", sorted(set(case_ids))
    )
    return {row[0]: CaseRecord(*row) for row in rows}


def report_records(session: Session, case_ids: Iterable[str]) -> dict[str, list[ReportRecord]]:
    """Every report of each case, in the order they joined, in one query."""
    ids = sorted(set(case_ids))
    found: dict[str, list[ReportRecord]] = {case_id: [] for case_id in ids}
    rows = fetch_in(
        session, table_of(CaseReportRow), ReportRecord._fields, "case_id IN ({in})", ids
    )
    for row in sorted(rows, key=lambda r: (r[3], r[1])):
        found[row[0]].append(ReportRecord(*row))
    return found


def report_counts(session: Session, case_ids: Iterable[str]) -> dict[str, int]:
    """How many reports each case holds, in one query (an index-only count)."""
    return _counts(session, "case_reports", "", sorted(set(case_ids)))


def earliest_reports(
    session: Session, counts: dict[str, int], limit: int
) -> dict[str, list[ReportRecord]]:
    """The first ``limit`` reports of each case of ``counts`` (from report_counts),
    in the order they joined.

    Cases within the limit are read together in one query; each larger one
    gets a query of its own that the (case_id, joined_at, report_id) index
    stops after ``limit`` rows, so no read grows with a case's size.
    """
    small = [case_id for case_id, n in counts.items() if 0 < n <= limit]
    found = report_records(session, small) if small else {}
    for case_id, n in counts.items():
        if n > limit:
            found[case_id] = report_page(session, case_id, None, limit)
        else:
            found.setdefault(case_id, [])
    return found


ReportKey = tuple[datetime, str]
"""Where a case's report stands in its order: (joined_at, report_id)."""


def report_page(
    session: Session, case_id: str, after: ReportKey | None, limit: int
) -> list[ReportRecord]:
    """Up to ``limit`` reports of a case in the order they joined, after ``after``."""
    table = table_of(CaseReportRow)
    where, params = "case_id = ?", [case_id]
    if after is not None:
        joined = bind_value(session, table, "joined_at", after[0])
        where += " AND (joined_at > ? OR (joined_at = ? AND report_id > ?))"
        params += [joined, joined, after[1]]
    rows = fetch(
        session,
        table,
        ReportRecord._fields,
        f"{where} ORDER BY joined_at, report_id LIMIT ?",
        [*params, limit],
    )
    return [ReportRecord(*row) for row in rows]


def reports_by_id(session: Session, report_ids: Iterable[str]) -> dict[str, ReportRecord]:
    """Reports of cases held here, by report id, in one query."""
    rows = fetch_in(
        session,
        table_of(CaseReportRow),
        ReportRecord._fields,
        "report_id IN ({in})",
        sorted(set(report_ids)),
    )
    return {row[1]: ReportRecord(*row) for row in rows}


def _counts(session: Session, table: str, extra: str, case_ids: list[str]) -> dict[str, int]:
    """Rows per case of ``table`` (whose ``case_id`` is indexed), in one query."""
    found = dict.fromkeys(case_ids, 0)
    rows = select_in(
        session,
        f"SELECT case_id, COUNT(*) FROM {table} WHERE {extra}"  # noqa: S608 - constants
        " case_id IN ({in}) GROUP BY case_id",
        case_ids,
    )
    found.update((case_id, int(n)) for case_id, n in rows)
    return found


@dataclass(frozen=True, slots=True)
class ClosedCase:
    """The latest closed case of a URL: what a reappearance points back at."""

    case_id: str
    status: int


@dataclass(frozen=True, slots=True)
class UrlCases:
    """What is held for one canonical URL: its open case, its latest closed one."""

    open_case_id: str | None = None
    latest_closed: ClosedCase | None = None


def cases_by_url(session: Session, url_keys: Iterable[bytes]) -> dict[bytes, UrlCases]:
    """The open and the latest closed case of each URL key, in one indexed query."""
    keys = list(set(url_keys))
    found: dict[bytes, UrlCases] = {}
    if not keys:
        return found
    rows = select_in(
        session,
        "SELECT url_sha256, case_id, status, is_open FROM cases"
        " WHERE url_sha256 IN ({in}) ORDER BY created_at, case_id",
        keys,
    )
    # Ascending order: the last closed row seen for a key is its latest.
    for url_sha256, case_id, status, is_open in rows:
        key = bytes(url_sha256)
        held = found.get(key, UrlCases())
        if is_open:
            held = UrlCases(case_id, held.latest_closed)
        else:
            held = UrlCases(held.open_case_id, ClosedCase(case_id, status))
        found[key] = held
    return found


def existing_case_ids(session: Session, case_ids: Iterable[str]) -> set[str]:
    """Which of ``case_ids`` are cases held here, in one query."""
    rows = select_in(
        session, "SELECT case_id FROM cases WHERE case_id IN ({in})", sorted(set(case_ids))
    )
    return {row[0] for row in rows}


def cases_by_id(session: Session, case_ids: Iterable[str]) -> dict[str, CaseRow]:
    """Cases by id (for updating), in one query."""
    ids = list(set(case_ids))
    if not ids:
        return {}
    return {
        row.case_id: row for row in session.scalars(select(CaseRow).where(CaseRow.case_id.in_(ids)))
    }


def get_case(session: Session, case_id: str, *, lock: bool = False) -> CaseRow | None:
    """One case by id.

    ``lock``: for a write that decides from the case's state (its status,
    its next sequence, a hold), hold the row until the transaction ends, so
    that another node process on the same PostgreSQL database changing the
    case meanwhile waits, and the write decides on what it then finds
    (SQLite's write transactions already exclude each other).
    """
    return session.get(CaseRow, case_id, with_for_update=lock)


def case_id_of_report(session: Session, report_id: str) -> str | None:
    """The case a report belongs to, if it is held here: the newest, when it
    came back after a MOVED and joined a second one."""
    return session.scalar(
        select(CaseReportRow.case_id)
        .where(CaseReportRow.report_id == report_id)
        .order_by(CaseReportRow.joined_at.desc())
        .limit(1)
    )


def reporters_of(session: Session, case_ids: Iterable[str]) -> dict[str, set[str]]:
    """Members that authored a report in each of the given cases, in one query."""
    ids = list(set(case_ids))
    found: dict[str, set[str]] = {case_id: set() for case_id in ids}
    if ids:
        rows = session.execute(
            select(CaseReportRow.case_id, CaseReportRow.origin_member_id)
            .where(CaseReportRow.case_id.in_(ids))
            .distinct()
        )
        for row in rows:
            found[row.case_id].add(row.origin_member_id)
    return found


def case_reports(session: Session, case_id: str) -> list[ReportRecord]:
    """Every report of a case, in the order they joined."""
    return report_records(session, [case_id])[case_id]


HashPair = tuple[int, bytes]
"""(algorithm, value) of a content hash."""


def hashes_of(session: Session, case_ids: Iterable[str]) -> dict[str, set[HashPair]]:
    """The content hashes already held for each of the given cases, in one query."""
    ids = list(set(case_ids))
    found: dict[str, set[HashPair]] = {case_id: set() for case_id in ids}
    if ids:
        rows = session.execute(
            select(CaseHashRow.case_id, CaseHashRow.algorithm, CaseHashRow.value).where(
                CaseHashRow.case_id.in_(ids)
            )
        )
        for row in rows:
            found[row.case_id].add((row.algorithm, row.value))
    return found


# The partial index's condition, repeated for SQLite to use that index.
_BY_HASH = (
    "SELECT algorithm, value, case_id FROM case_hashes"  # noqa: S608 - constants; values are bound
    f" WHERE algorithm = ? AND {EXACT_HASHES_ONLY} AND value IN ({{in}})"
)


def cases_by_hash(session: Session, hashes: Iterable[HashPair]) -> dict[HashPair, set[str]]:
    """Cases holding each (algorithm, value) pair exactly, in one indexed query
    per algorithm. Not for PDQ hashes: the index leaves them out (they are
    matched by distance, in memory), so none would be found."""
    wanted = set(hashes)
    found: dict[HashPair, set[str]] = {}
    if not wanted:
        return found
    rows = [
        row
        for algorithm in sorted({a for a, _ in wanted})
        for row in select_in(
            session,
            _BY_HASH,
            sorted({v for a, v in wanted if a == algorithm}),
            before=(algorithm,),
        )
    ]
    for algorithm, value, case_id in rows:
        pair = (algorithm, bytes(value))
        if pair in wanted:  # the IN lists also admit cross pairs
            found.setdefault(pair, set()).add(case_id)
    return found


def cases_with_hashes(session: Session, hashes: Sequence[HashPair]) -> set[str]:
    """Cases holding any of the given (algorithm, value) pairs exactly."""
    return set().union(*cases_by_hash(session, hashes).values())


def all_hashes(session: Session, algorithm: int) -> Iterable[tuple[str, bytes]]:
    """Every (case_id, value) of one algorithm, streamed (index loading)."""
    rows = session.execute(
        select(CaseHashRow.case_id, CaseHashRow.value)
        .where(CaseHashRow.algorithm == algorithm)
        .execution_options(yield_per=10_000)
    )
    for row in rows:
        yield row.case_id, row.value


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows of one table in a single executemany (no ORM identity map)."""
    insert_many(session, table_of(model), rows)


def insert_links(session: Session, pairs: Iterable[tuple[str, str]]) -> None:
    """Record known-content links in both directions; existing ones are kept."""
    rows = [
        {"case_id": a, "linked_case_id": b}
        for x, y in set(pairs)
        if x != y
        for a, b in ((x, y), (y, x))
    ]
    insert_many(session, table_of(CaseLinkRow), rows, ignore_duplicates=True)


def link_counts(session: Session, case_ids: Iterable[str]) -> dict[str, int]:
    """How many cases each of ``case_ids`` is linked to, in one query."""
    return _counts(session, "case_links", "", sorted(set(case_ids)))


def first_links(session: Session, counts: dict[str, int], limit: int) -> dict[str, list[str]]:
    """The first ``limit`` linked case ids (in id order) of each case of
    ``counts`` (from link_counts); as earliest_reports, larger cases are
    read one by one, each read stopped by the primary key index."""
    small = [case_id for case_id, n in counts.items() if 0 < n <= limit]
    found = links_of_cases(session, small) if small else {}
    for case_id, n in counts.items():
        if n > limit:
            rows = select_in(
                session,
                "SELECT linked_case_id FROM case_links WHERE case_id IN ({in})"
                " ORDER BY linked_case_id LIMIT ?",
                [case_id],
                after=(limit,),
            )
            found[case_id] = [row[0] for row in rows]
        else:
            found.setdefault(case_id, [])
    return found


def linked_cases(session: Session, case_id: str) -> list[str]:
    """Cases linked to this one by known content, sorted."""
    return links_of_cases(session, [case_id])[case_id]


def links_of_cases(session: Session, case_ids: Iterable[str]) -> dict[str, list[str]]:
    """The cases linked to each of ``case_ids`` by known content, sorted, in one query."""
    ids = sorted(set(case_ids))
    found: dict[str, list[str]] = {case_id: [] for case_id in ids}
    rows = select_in(
        session, "SELECT case_id, linked_case_id FROM case_links WHERE case_id IN ({in})", ids
    )
    for case_id, linked in sorted(rows, key=lambda r: r[1]):
        found[case_id].append(linked)
    return found


#: Advisory lock key serialising appends to the case event log on PostgreSQL.
EVENT_LOG_LOCK = 0x4846_4556  # "HFEV"


def lock_event_log(session: Session) -> None:
    """Serialise event-appending transactions (PostgreSQL; see append_events)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})


def append_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Append to the durable case event log (read by liaison streams), in order.

    Each event is a dict of case_id, kind, status, hosting_country and
    occurred_at. Readers resume "after sequence N", so sequence order must be
    commit order. SQLite has one writer at a time; on PostgreSQL, several
    node processes could commit their events out of sequence order, and a
    reader between the two commits would skip the earlier number for good. A
    transaction-scoped advisory lock makes event-appending transactions
    commit one at a time (released at commit or rollback).
    """
    if events:
        lock_event_log(session)
        insert_rows(session, CaseEventRow, events)


def append_event(session: Session, case: CaseRow, kind: int, now: datetime) -> None:
    """Append one event about ``case`` (see append_events)."""
    append_events(session, [event_row(case.case_id, kind, case.status, case.hosting_country, now)])


def event_row(
    case_id: str,
    kind: int,
    status: int,
    hosting_country: str,
    now: datetime,
    report_id: str | None = None,
) -> dict[str, Any]:
    """The row of one case event, for append_events; ``report_id`` names the
    report that opened or joined the case (those events carry it)."""
    return {
        "case_id": case_id,
        "kind": kind,
        "status": status,
        "hosting_country": hosting_country,
        "occurred_at": now,
        "report_id": report_id,
    }


def list_cases(
    session: Session,
    where: CaseFilter,
    limit: int,
    after: tuple[datetime, str] | None,
    overdue_before: datetime | None = None,
) -> list[CaseRow]:
    """A page of cases, newest first, keyset-paginated by (created_at, case_id).

    ``overdue_before``: only NOTICE_SENT cases whose notice is older than that.
    """
    query = select(CaseRow)
    if overdue_before is not None:
        query = query.where(
            CaseRow.status == int(CaseStatus.NOTICE_SENT), CaseRow.notice_sent_at < overdue_before
        )
    if where.statuses:
        query = query.where(CaseRow.status.in_(where.statuses))
    if where.hosting_countries:
        query = query.where(CaseRow.hosting_country.in_(where.hosting_countries))
    if where.created_since is not None:
        query = query.where(CaseRow.created_at >= where.created_since)
    if where.created_until is not None:
        query = query.where(CaseRow.created_at < where.created_until)
    if where.reporter_member_id:
        reporters = select(CaseReportRow.case_id).where(
            CaseReportRow.origin_member_id == where.reporter_member_id
        )
        query = query.where(CaseRow.case_id.in_(reporters))
    if after is not None:
        created, case_id = after
        query = query.where(
            or_(
                CaseRow.created_at < created,
                and_(CaseRow.created_at == created, CaseRow.case_id < case_id),
            )
        )
    query = query.order_by(CaseRow.created_at.desc(), CaseRow.case_id.desc()).limit(limit)
    return list(session.scalars(query))


def count_cases(session: Session) -> int:
    """How many cases are held here."""
    return int(session.scalar(select(func.count()).select_from(CaseRow)) or 0)


def cases_reported_between(
    session: Session, since: datetime | None, until: datetime | None
) -> list[CaseRow]:
    """Cases whose first report falls in [since, until) (open ends when None)."""
    first = func.coalesce(CaseRow.first_reported_at, CaseRow.created_at)
    query = select(CaseRow)
    if since is not None:
        query = query.where(first >= since)
    if until is not None:
        query = query.where(first < until)
    return list(session.scalars(query))


def events_after(
    session: Session, after: int, countries: Iterable[str], limit: int
) -> list[EventRecord]:
    """Case events after a log position, for the given hosting countries."""
    rows = fetch_in(
        session,
        table_of(CaseEventRow),
        EventRecord._fields,
        "sequence > ? AND hosting_country IN ({in}) ORDER BY sequence LIMIT ?",
        sorted(set(countries)),
        before=(after,),
        after=(limit,),
    )
    # Several chunks of countries (never in practice) would each bring a page.
    rows.sort(key=lambda r: r[0])
    return [EventRecord(*row) for row in rows[:limit]]


def expired_holds(session: Session, now: datetime) -> list[CaseRow]:
    """Cases whose police hold has run out."""
    return list(
        session.scalars(
            select(CaseRow).where(CaseRow.hold_until.is_not(None), CaseRow.hold_until <= now)
        )
    )


def last_event_sequence(session: Session) -> int:
    """Position of the newest case event (0 when the log is empty)."""
    return int(session.scalar(select(func.max(CaseEventRow.sequence))) or 0)
