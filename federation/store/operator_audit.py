"""The operator audit: what analysts did through the node's operator identity.

Append and read, nothing else (the database refuses UPDATE and DELETE).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from federation.store.models import OperatorAuditRow, table_of


class OperatorEntry(NamedTuple):
    """One entry of the operator audit, as stored (see OperatorAuditRow)."""

    id: int
    at: datetime
    analyst: str
    rpc: str
    case_id: str
    outcome: str
    detail: str


_COLUMNS = tuple(table_of(OperatorAuditRow).c[name] for name in OperatorEntry._fields)


def append(
    session: Session, at: datetime, analyst: str, rpc: str, case_id: str, outcome: str, detail: str
) -> None:
    """Add one entry."""
    session.add(
        OperatorAuditRow(
            at=at,
            analyst=analyst,
            rpc=rpc,
            case_id=case_id[:36],
            outcome=outcome,
            detail=detail[:500],
        )
    )


def entries(
    session: Session,
    since: datetime | None,
    analyst: str,
    limit: int,
    newest_first: bool = False,
) -> list[OperatorEntry]:
    """Entries, oldest (or newest) first, optionally since a time and for one analyst."""
    query = select(*_COLUMNS)
    if since is not None:
        query = query.where(OperatorAuditRow.at >= since)
    if analyst:
        query = query.where(OperatorAuditRow.analyst == analyst)
    order = OperatorAuditRow.id.desc() if newest_first else OperatorAuditRow.id
    rows = session.execute(query.order_by(order).limit(limit))
    return [OperatorEntry(*row) for row in rows]
