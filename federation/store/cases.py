"""Repository of cases held by this node, their reports, hashes, links and events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from federation.core.case import CaseFilter
from federation.core.case_status import CaseStatus
from federation.store.models import (
    CaseEventRow,
    CaseHashRow,
    CaseLinkRow,
    CaseReportRow,
    CaseRow,
)


def find_open_case(session: Session, url_sha256: bytes) -> CaseRow | None:
    """The open case for a canonical URL, if any."""
    return session.scalar(
        select(CaseRow).where(CaseRow.url_sha256 == url_sha256, CaseRow.is_open.is_(True))
    )


def latest_closed_case(session: Session, url_sha256: bytes) -> CaseRow | None:
    """The most recently created closed case for a canonical URL."""
    return session.scalar(
        select(CaseRow)
        .where(CaseRow.url_sha256 == url_sha256, CaseRow.is_open.is_(False))
        .order_by(CaseRow.created_at.desc())
        .limit(1)
    )


def get_case(session: Session, case_id: str) -> CaseRow | None:
    """One case by id."""
    return session.get(CaseRow, case_id)


def case_id_of_report(session: Session, report_id: str) -> str | None:
    """The case a report belongs to, if it is held here."""
    return session.scalar(select(CaseReportRow.case_id).where(CaseReportRow.report_id == report_id))


def add_report(
    session: Session, case_id: str, report_id: str, origin: str, envelope: bytes, now: datetime
) -> None:
    """Link a report (its envelope as received) to a case."""
    session.add(
        CaseReportRow(
            report_id=report_id,
            case_id=case_id,
            origin_member_id=origin,
            envelope=envelope,
            joined_at=now,
        )
    )


def reporters(session: Session, case_id: str) -> set[str]:
    """Members that authored a report in the case."""
    return set(
        session.scalars(
            select(CaseReportRow.origin_member_id)
            .where(CaseReportRow.case_id == case_id)
            .distinct()
        )
    )


def case_reports(session: Session, case_id: str) -> list[CaseReportRow]:
    """Every report of a case, in the order they joined."""
    return list(
        session.scalars(
            select(CaseReportRow)
            .where(CaseReportRow.case_id == case_id)
            .order_by(CaseReportRow.joined_at, CaseReportRow.report_id)
        )
    )


def add_hashes(session: Session, case_id: str, hashes: Iterable[tuple[int, bytes]]) -> None:
    """Remember a case's content hashes (each distinct pair once)."""
    known = {
        (r.algorithm, r.value)
        for r in session.execute(
            select(CaseHashRow.algorithm, CaseHashRow.value).where(CaseHashRow.case_id == case_id)
        )
    }
    for algorithm, value in dict.fromkeys(hashes):
        if (algorithm, value) not in known:
            session.add(CaseHashRow(case_id=case_id, algorithm=algorithm, value=value))


def cases_with_hashes(session: Session, hashes: Sequence[tuple[int, bytes]]) -> set[str]:
    """Cases holding any of the given (algorithm, value) pairs exactly."""
    if not hashes:
        return set()
    condition = or_(*(and_(CaseHashRow.algorithm == a, CaseHashRow.value == v) for a, v in hashes))
    return set(session.scalars(select(CaseHashRow.case_id).where(condition).distinct()))


def all_hashes(session: Session, algorithm: int) -> Iterable[tuple[str, bytes]]:
    """Every (case_id, value) of one algorithm, streamed (index loading)."""
    rows = session.execute(
        select(CaseHashRow.case_id, CaseHashRow.value)
        .where(CaseHashRow.algorithm == algorithm)
        .execution_options(yield_per=10_000)
    )
    for row in rows:
        yield row.case_id, row.value


def link_cases(session: Session, case_id: str, others: Iterable[str]) -> None:
    """Record known-content links in both directions (idempotent)."""
    for other in others:
        if other == case_id:
            continue
        for a, b in ((case_id, other), (other, case_id)):
            if session.get(CaseLinkRow, (a, b)) is None:
                session.add(CaseLinkRow(case_id=a, linked_case_id=b))


def linked_cases(session: Session, case_id: str) -> list[str]:
    """Cases linked to this one by known content, sorted."""
    return sorted(
        session.scalars(select(CaseLinkRow.linked_case_id).where(CaseLinkRow.case_id == case_id))
    )


#: Advisory lock key serialising appends to the case event log on PostgreSQL.
EVENT_LOG_LOCK = 0x4846_4556  # "HFEV"


def append_event(session: Session, case: CaseRow, kind: int, now: datetime) -> None:
    """Append to the durable case event log (read by liaison streams).

    Readers resume "after sequence N", so sequence order must be commit
    order. SQLite has one writer at a time; on PostgreSQL, several node
    processes could commit their events out of sequence order, and a reader
    between the two commits would skip the earlier number for good. A
    transaction-scoped advisory lock makes event-appending transactions
    commit one at a time (released at commit or rollback).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})
    session.add(
        CaseEventRow(
            case_id=case.case_id,
            kind=kind,
            status=case.status,
            hosting_country=case.hosting_country,
            occurred_at=now,
        )
    )


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
) -> list[CaseEventRow]:
    """Case events after a log position, for the given hosting countries."""
    return list(
        session.scalars(
            select(CaseEventRow)
            .where(CaseEventRow.sequence > after, CaseEventRow.hosting_country.in_(list(countries)))
            .order_by(CaseEventRow.sequence)
            .limit(limit)
        )
    )


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
