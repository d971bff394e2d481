"""Repository of cases held by this node, their reports, hashes, links and events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.orm import Session

from federation.core.case import CaseEventKind, CaseFilter
from federation.core.case_status import CaseStatus
from federation.core.ids import CaseId, MemberId, ReportId
from federation.store._driver import (
    bind_value,
    fetch,
    fetch_in,
    insert_many,
    insert_records,
    lock_clause,
    select_in,
    stream,
    update_many,
)
from federation.store.models import (
    EXACT_HASHES_ONLY,
    CaseEventRow,
    CaseHashRow,
    CaseLinkRow,
    CaseReportRow,
    CaseRow,
    table_of,
)


class CaseRecord(NamedTuple):
    """A case held here, as stored: the one form of a case outside its views
    (federation.core.case.CaseView), read and written without the ORM.

    Liaison streams and case pages read cases many times a second; loading
    them as ORM objects cost far more than the queries themselves. A record
    is never changed in place: update_case writes the changed columns and
    returns the new record. The fields are CaseRow's columns (see there).
    """

    case_id: CaseId
    canonical_url: str
    url_sha256: bytes
    hosting_country: str
    responsible_member_id: MemberId
    status: int
    is_open: bool
    reappearance_of_case_id: CaseId | None
    last_sequence: int
    created_at: datetime
    updated_at: datetime
    first_reported_at: datetime | None = None
    # Unset for a case that has just opened (see insert_cases):
    notice_sent_at: datetime | None = None
    removed_at: datetime | None = None
    police_acknowledged_at: datetime | None = None
    police_reference: str | None = None
    hold_until: datetime | None = None
    hold_reason: str | None = None


_CASES = table_of(CaseRow)
#: The fields of a newly opened case (see insert_cases).
_OPENING_FIELDS = CaseRecord._fields.index("first_reported_at") + 1
#: The columns of a CaseRecord, for queries built with SQLAlchemy.
_CASE_COLUMNS = tuple(_CASES.c[name] for name in CaseRecord._fields)


class ReportRecord(NamedTuple):
    """A report of a case (see CaseRecord)."""

    case_id: CaseId
    report_id: ReportId
    origin_member_id: MemberId
    joined_at: datetime
    envelope: bytes
    #: The MOVED chain of a report moved here (see CaseReportRow.moved_chain).
    moved_chain: bytes | None = None


class EventRecord(NamedTuple):
    """An entry of the case event log (see CaseRecord)."""

    sequence: int
    case_id: CaseId
    kind: int
    status: int
    hosting_country: str
    occurred_at: datetime
    report_id: ReportId | None
    #: The W3C traceparent of the call that logged the event (tracing on).
    traceparent: str | None = None


def case_records(session: Session, case_ids: Iterable[str]) -> dict[CaseId, CaseRecord]:
    """Cases by id, for showing them, in one query."""
    rows = fetch_in(session, _CASES, CaseRecord._fields, "case_id IN ({in})", sorted(set(case_ids)))
    return {row[0]: CaseRecord(*row) for row in rows}


def insert_cases(session: Session, cases: Sequence[CaseRecord]) -> None:
    """Store newly opened cases, in one statement: the columns up to
    first_reported_at only (binding the unset others costs ingest time)."""
    insert_records(session, _CASES, cases, upto=_OPENING_FIELDS)


def update_case(session: Session, case: CaseRecord, **changes: Any) -> CaseRecord:
    """Write ``changes`` (CaseRecord field -> new value) to the case's row,
    those columns only; the record as it now stands."""
    names = sorted(changes)
    update_many(session, _CASES, names, "case_id", [[*(changes[n] for n in names), case.case_id]])
    return case._replace(**changes)


def record_joins(session: Session, joined: Mapping[CaseId, datetime | None], now: datetime) -> None:
    """Cases that reports joined now: their first_reported_at (``joined``: case
    id -> its earliest report's time) and updated_at, in one statement, in key order."""
    rows = [(now, at, case_id) for case_id, at in sorted(joined.items())]
    update_many(session, _CASES, ("updated_at", "first_reported_at"), "case_id", rows)


def report_records(
    session: Session, case_ids: Iterable[CaseId]
) -> dict[CaseId, list[ReportRecord]]:
    """Every report of each case, in the order they joined, in one query."""
    ids = sorted(set(case_ids))
    found: dict[CaseId, list[ReportRecord]] = {case_id: [] for case_id in ids}
    rows = fetch_in(
        session, table_of(CaseReportRow), ReportRecord._fields, "case_id IN ({in})", ids
    )
    for row in sorted(rows, key=lambda r: (r[3], r[1])):
        found[row[0]].append(ReportRecord(*row))
    return found


def report_counts(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, int]:
    """How many reports each case holds, in one query (an index-only count)."""
    return _counts(session, "case_reports", "", sorted(set(case_ids)))


def earliest_reports(
    session: Session, counts: dict[CaseId, int], limit: int
) -> dict[CaseId, list[ReportRecord]]:
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


ReportKey = tuple[datetime, ReportId]
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


def reports_by_id(session: Session, report_ids: Iterable[str]) -> dict[ReportId, ReportRecord]:
    """Reports of cases held here, by report id, in one query."""
    rows = fetch_in(
        session,
        table_of(CaseReportRow),
        ReportRecord._fields,
        "report_id IN ({in})",
        sorted(set(report_ids)),
    )
    return {row[1]: ReportRecord(*row) for row in rows}


def _counts(session: Session, table: str, extra: str, case_ids: list[CaseId]) -> dict[CaseId, int]:
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

    case_id: CaseId
    status: int


@dataclass(frozen=True, slots=True)
class UrlCases:
    """What is held for one canonical URL: its open case, its latest closed one."""

    open_case_id: CaseId | None = None
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


def existing_case_ids(session: Session, case_ids: Iterable[str]) -> set[CaseId]:
    """Which of ``case_ids`` are cases held here, in one query."""
    rows = select_in(
        session, "SELECT case_id FROM cases WHERE case_id IN ({in})", sorted(set(case_ids))
    )
    return {row[0] for row in rows}


def get_case(session: Session, case_id: str, *, lock: bool = False) -> CaseRecord | None:
    """One case by id; ``lock``: for a write that decides from its state (status,
    next sequence, a hold), hold the row until the transaction ends, so that
    another node process on the same PostgreSQL database changing the case
    waits (SQLite's write transactions already exclude each other)."""
    where = "case_id = ?" + (lock_clause(session) if lock else "")
    rows = fetch(session, _CASES, CaseRecord._fields, where, [case_id])
    return CaseRecord(*rows[0]) if rows else None


def case_id_of_report(session: Session, report_id: str) -> CaseId | None:
    """The case a report belongs to, if it is held here: the newest, when it
    came back after a MOVED and joined a second one."""
    # The ORM maps the column as str; a case id is what it holds.
    return cast(
        CaseId | None,
        session.scalar(
            select(CaseReportRow.case_id)
            .where(CaseReportRow.report_id == report_id)
            .order_by(CaseReportRow.joined_at.desc())
            .limit(1)
        ),
    )


def reporters_of(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, set[MemberId]]:
    """Members that authored a report in each of the given cases, in one query."""
    ids = list(set(case_ids))
    found: dict[CaseId, set[MemberId]] = {case_id: set() for case_id in ids}
    if ids:
        rows = session.execute(
            select(CaseReportRow.case_id, CaseReportRow.origin_member_id)
            .where(CaseReportRow.case_id.in_(ids))
            .distinct()
        )
        for row in rows:
            found[row.case_id].add(row.origin_member_id)
    return found


def case_reports(session: Session, case_id: CaseId) -> list[ReportRecord]:
    """Every report of a case, in the order they joined."""
    return report_records(session, [case_id])[case_id]


HashPair = tuple[int, bytes]
"""(algorithm, value) of a content hash."""


def hashes_of(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, set[HashPair]]:
    """The content hashes already held for each of the given cases, in one query."""
    ids = list(set(case_ids))
    found: dict[CaseId, set[HashPair]] = {case_id: set() for case_id in ids}
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


def cases_by_hash(session: Session, hashes: Iterable[HashPair]) -> dict[HashPair, set[CaseId]]:
    """Cases holding each (algorithm, value) pair exactly, in one indexed query
    per algorithm. Not for PDQ hashes: the index leaves them out (they are
    matched by distance, in memory), so none would be found."""
    wanted = set(hashes)
    found: dict[HashPair, set[CaseId]] = {}
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


def cases_with_hashes(session: Session, hashes: Sequence[HashPair]) -> set[CaseId]:
    """Cases holding any of the given (algorithm, value) pairs exactly."""
    return set().union(*cases_by_hash(session, hashes).values())


def all_hashes(session: Session, algorithm: int) -> Iterable[tuple[CaseId, bytes]]:
    """Every (case_id, value) of one algorithm, streamed (index loading)."""
    rows = stream(
        session, table_of(CaseHashRow), ("case_id", "value"), "algorithm = ?", (algorithm,)
    )
    for case_id, value in rows:
        yield CaseId(case_id), bytes(value)


def insert_reports(session: Session, reports: Sequence[ReportRecord]) -> None:
    """Store reports joining cases held here, in one statement."""
    insert_records(session, table_of(CaseReportRow), reports)


def insert_hashes(session: Session, hashes: Sequence[tuple[str, int, bytes]]) -> None:
    """Store (case_id, algorithm, value) content hashes of cases, in one statement."""
    insert_many(
        session,
        table_of(CaseHashRow),
        [{"case_id": c, "algorithm": a, "value": v} for c, a, v in hashes],
    )


def insert_links(session: Session, pairs: Iterable[tuple[str, str]]) -> None:
    """Record known-content links in both directions; existing ones are kept."""
    rows = [
        {"case_id": a, "linked_case_id": b}
        for x, y in set(pairs)
        if x != y
        for a, b in ((x, y), (y, x))
    ]
    insert_many(session, table_of(CaseLinkRow), rows, ignore_duplicates=True)


def link_counts(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, int]:
    """How many cases each of ``case_ids`` is linked to, in one query."""
    return _counts(session, "case_links", "", sorted(set(case_ids)))


def first_links(
    session: Session, counts: dict[CaseId, int], limit: int
) -> dict[CaseId, list[CaseId]]:
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


def linked_cases(session: Session, case_id: CaseId) -> list[CaseId]:
    """Cases linked to this one by known content, sorted."""
    return links_of_cases(session, [case_id])[case_id]


def links_of_cases(session: Session, case_ids: Iterable[CaseId]) -> dict[CaseId, list[CaseId]]:
    """The cases linked to each of ``case_ids`` by known content, sorted, in one query."""
    ids = sorted(set(case_ids))
    found: dict[CaseId, list[CaseId]] = {case_id: [] for case_id in ids}
    rows = select_in(
        session, "SELECT case_id, linked_case_id FROM case_links WHERE case_id IN ({in})", ids
    )
    for case_id, linked in sorted(rows, key=lambda r: r[1]):
        found[case_id].append(linked)
    return found


#: Advisory lock key serialising the commits of event-appending
#: transactions on PostgreSQL (see append_events).
EVENT_LOG_LOCK = 0x4846_4556  # "HFEV"

#: Key in Session.info of the events a transaction appends at its commit.
_PENDING_EVENTS = "hfed_pending_events"


def lock_event_log(session: Session) -> None:
    """Serialise event-appending transactions (PostgreSQL; see append_events)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})


def append_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Append to the durable case event log (read by liaison streams), in order.

    Each event is a dict of case_id, kind, status, hosting_country and
    occurred_at. Readers resume "after sequence N", so a sequence number
    must never become visible after a higher one has been read: that
    reader would skip it for good. With several node processes on one
    PostgreSQL database, numbers taken from the sequence mid-transaction
    would commit in any order. So the events are only buffered here and
    written by write_pending_events as the transaction's last statements,
    right before its commit, under a transaction-scoped advisory lock: a
    number is taken only once every earlier holder of the lock has
    committed (the lock is released after the commit is visible), and the
    lock is held just for the insert and the commit, not for the
    transaction's other work. Taking no other lock after it, the append
    also cannot deadlock with a transaction that holds a case row and
    waits for the log. SQLite has one writer at a time and needs no lock;
    the same buffering applies, so both backends run one code path.
    """
    if events:
        session.info.setdefault(_PENDING_EVENTS, []).extend(events)


def write_pending_events(session: Session) -> None:
    """Write the events buffered by append_events (Database calls this just
    before each commit; see there)."""
    events = session.info.pop(_PENDING_EVENTS, None)
    if events:
        lock_event_log(session)
        insert_many(session, table_of(CaseEventRow), events)


def drop_pending_events(session: Session) -> None:
    """Forget buffered events of a transaction that rolled back."""
    session.info.pop(_PENDING_EVENTS, None)


def append_event(session: Session, case: CaseRecord, kind: int, now: datetime) -> None:
    """Append one event about ``case`` (see append_events)."""
    append_events(session, [event_row(case.case_id, kind, case.status, case.hosting_country, now)])


def event_row(
    case_id: str,
    kind: int,
    status: int,
    hosting_country: str,
    now: datetime,
    report_id: str | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """The row of one case event, for append_events; ``report_id`` names the
    report that opened or joined the case (those events carry it),
    ``traceparent`` the trace of the call that logged it."""
    return {
        "case_id": case_id,
        "kind": kind,
        "status": status,
        "hosting_country": hosting_country,
        "occurred_at": now,
        "report_id": report_id,
        "traceparent": traceparent,
    }


def list_cases(
    session: Session,
    where: CaseFilter,
    limit: int,
    after: tuple[datetime, str] | None,
    overdue_before: datetime | None = None,
) -> list[CaseRecord]:
    """A page of cases, newest first, keyset-paginated by (created_at, case_id).

    ``overdue_before``: only NOTICE_SENT cases whose notice is older than that
    (federation.core.deadline.notice_overdue, as a condition the index serves).
    """
    query = select(*_CASE_COLUMNS)
    if overdue_before is not None:
        query = query.where(
            CaseRow.status == int(CaseStatus.NOTICE_SENT), CaseRow.notice_sent_at < overdue_before
        )
    query = _filtered(query, where)
    if after is not None:
        created, case_id = after
        query = query.where(
            or_(
                CaseRow.created_at < created,
                and_(CaseRow.created_at == created, CaseRow.case_id < case_id),
            )
        )
    query = query.order_by(CaseRow.created_at.desc(), CaseRow.case_id.desc()).limit(limit)
    return _records(session, query)


def _filtered(query: Select[Any], where: CaseFilter) -> Select[Any]:
    """``query`` narrowed to the cases ``where`` admits."""
    if where.statuses:
        query = query.where(CaseRow.status.in_(where.statuses))
    if where.hosting_countries:
        query = query.where(CaseRow.hosting_country.in_(where.hosting_countries))
    if where.created_since is not None:
        query = query.where(CaseRow.created_at >= where.created_since)
    if where.created_until is not None:
        query = query.where(CaseRow.created_at < where.created_until)
    if where.canonical_url:
        query = query.where(CaseRow.canonical_url == where.canonical_url)
    if where.reporter_member_id:
        reporters = select(CaseReportRow.case_id).where(
            CaseReportRow.origin_member_id == where.reporter_member_id
        )
        query = query.where(CaseRow.case_id.in_(reporters))
    return query


def _records(session: Session, query: Select[Any]) -> list[CaseRecord]:
    """The cases a select of _CASE_COLUMNS finds."""
    return [CaseRecord(*row) for row in session.execute(query)]


def count_cases(session: Session) -> int:
    """How many cases are held here."""
    return int(session.scalar(select(func.count()).select_from(CaseRow)) or 0)


def cases_reported_between(
    session: Session, since: datetime | None, until: datetime | None
) -> list[CaseRecord]:
    """Cases whose first report falls in [since, until) (open ends when None)."""
    first = func.coalesce(CaseRow.first_reported_at, CaseRow.created_at)
    query = select(*_CASE_COLUMNS)
    if since is not None:
        query = query.where(first >= since)
    if until is not None:
        query = query.where(first < until)
    return _records(session, query)


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


def expired_holds(session: Session, now: datetime) -> list[CaseRecord]:
    """Cases whose police hold has run out, locked for the caller's write.

    Every node process on a shared PostgreSQL database looks for them: rows
    another process is lifting right now are skipped (SKIP LOCKED), and one
    it lifted meanwhile no longer matches once its commit is seen, so each
    hold is lifted, and its HOLD_EXPIRED logged, once.
    """
    query = (
        select(*_CASE_COLUMNS)
        .where(CaseRow.hold_until.is_not(None), CaseRow.hold_until <= now)
        .order_by(CaseRow.case_id)
        .with_for_update(skip_locked=True)
    )
    return _records(session, query)


def last_event_sequence(session: Session) -> int:
    """Position of the newest case event (0 when the log is empty)."""
    return int(session.scalar(select(func.max(CaseEventRow.sequence))) or 0)


#: Event kinds that add a report, and with it maybe content hashes, to a case.
_FILING_KINDS = frozenset({int(CaseEventKind.CASE_OPENED), int(CaseEventKind.REPORT_JOINED)})


class FiledSince(NamedTuple):
    """What filed_since read: cases reports opened or joined, the log
    position read up to, and how many events were read."""

    case_ids: list[CaseId]
    upto: int
    events: int


def filed_since(session: Session, after: int, limit: int) -> FiledSince:
    """Cases that reports opened or joined after log position ``after``
    (reading at most ``limit`` events).

    Other node processes sharing the database follow the log this way to
    learn of cases filed elsewhere (their PDQ hashes); the log's positions
    become visible in order (see append_events), so nothing is passed over.
    """
    rows = fetch(
        session,
        table_of(CaseEventRow),
        ("sequence", "case_id", "kind"),
        "sequence > ? ORDER BY sequence LIMIT ?",
        (after, limit),
    )
    filed = sorted({CaseId(row[1]) for row in rows if row[2] in _FILING_KINDS})
    return FiledSince(filed, rows[-1][0] if rows else after, len(rows))


def hashes_of_algorithm(
    session: Session, case_ids: Iterable[CaseId], algorithm: int
) -> list[tuple[CaseId, bytes]]:
    """(case_id, value) of every hash of one algorithm held for the given cases."""
    ids = sorted(set(case_ids))
    if not ids:
        return []
    rows = fetch_in(
        session,
        table_of(CaseHashRow),
        ("case_id", "value"),
        "algorithm = ? AND case_id IN ({in})",
        ids,
        before=(algorithm,),
    )
    return [(CaseId(case_id), bytes(value)) for case_id, value in rows]


def placements_of_reports(
    session: Session, report_ids: Iterable[str]
) -> list[tuple[ReportId, CaseId, datetime]]:
    """(report_id, case_id, joined_at) of every case held here that holds one
    of ``report_ids``, in one query per chunk of ids."""
    table = table_of(CaseReportRow)
    ids = sorted(set(report_ids))
    columns = ("report_id", "case_id", "joined_at")
    rows = fetch_in(session, table, columns, "report_id IN ({in})", ids)
    return [(ReportId(r), CaseId(c), at) for r, c, at in rows]
