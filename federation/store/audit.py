"""The liaison audit log: append and read, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.store.models import AuditRow

#: A call that returned more cases records the first ones and the count.
MAX_CASES = 1000


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


def entries(session: Session, since: datetime | None, member_id: str, limit: int) -> list[AuditRow]:
    """Entries, oldest first, optionally since a time and for one member."""
    query = select(AuditRow)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    if member_id:
        query = query.where(AuditRow.member_id == member_id)
    return list(session.scalars(query.order_by(AuditRow.id).limit(limit)))
