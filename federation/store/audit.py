"""The liaison audit log: append and read, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.core.ids import CaseId
from federation.store.models import AuditRow, table_of

#: A call that returned more cases records the first ones and the count.
MAX_CASES = 1000


@dataclass(slots=True)
class Refusals:
    """Identical refused calls of one liaison, written as one entry."""

    member_id: str
    rpc: str
    outcome: str
    detail: str
    case_ids: tuple[CaseId, ...]
    first_at: datetime
    last_at: datetime
    calls: int = 1


def append(
    session: Session,
    at: datetime,
    member_id: str,
    rpc: str,
    case_ids: Sequence[str],
    outcome: str,
    detail: str,
) -> None:
    """Add one entry."""
    listed = list(case_ids[:MAX_CASES])
    if len(case_ids) > MAX_CASES:
        detail = f"{detail} ({len(case_ids)} cases, first {MAX_CASES} listed)".strip()
    session.add(
        AuditRow(
            at=at,
            member_id=member_id,
            rpc=rpc,
            case_ids=listed,
            outcome=outcome,
            detail=detail[:500],
        )
    )


def append_refusals(session: Session, refusals: Sequence[Refusals]) -> None:
    """Add one entry per group of identical refused calls, in one insert."""
    session.add_all(
        AuditRow(
            at=r.first_at,
            member_id=r.member_id,
            rpc=r.rpc,
            case_ids=list(r.case_ids[:MAX_CASES]),
            outcome=r.outcome,
            detail=_coalesced_detail(r)[:500],
            calls=r.calls,
        )
        for r in refusals
    )


def _coalesced_detail(r: Refusals) -> str:
    if r.calls == 1:
        return r.detail
    last = r.last_at.isoformat(timespec="milliseconds")
    return f"{r.detail} ({r.calls} such calls, the last at {last})"


class Entry(NamedTuple):
    """One entry of the audit log, as stored (see AuditRow)."""

    id: int
    at: datetime
    member_id: str
    rpc: str
    case_ids: list[CaseId]
    outcome: str
    detail: str
    calls: int


_ENTRY_COLUMNS = tuple(table_of(AuditRow).c[name] for name in Entry._fields)


def entries(
    session: Session,
    since: datetime | None,
    member_id: str,
    limit: int,
    newest_first: bool = False,
) -> list[Entry]:
    """Entries, oldest (or newest) first, optionally since a time and for one member."""
    query = select(*_ENTRY_COLUMNS)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    if member_id:
        query = query.where(AuditRow.member_id == member_id)
    order = AuditRow.id.desc() if newest_first else AuditRow.id
    return [Entry(*row) for row in session.execute(query.order_by(order).limit(limit))]
