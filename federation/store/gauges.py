"""Figures the metrics endpoint reads at scrape time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from federation.core.case_status import CaseStatus
from federation.store.models import CaseRow


def open_cases(session: Session) -> int:
    """Cases this node holds that are still open."""
    return int(
        session.scalar(select(func.count()).select_from(CaseRow).where(CaseRow.is_open.is_(True)))
        or 0
    )


def overdue_cases(session: Session, notice_before: datetime) -> int:
    """Cases whose takedown notice is older than the deadline."""
    query = (
        select(func.count())
        .select_from(CaseRow)
        .where(
            CaseRow.status == int(CaseStatus.NOTICE_SENT), CaseRow.notice_sent_at < notice_before
        )
    )
    return int(session.scalar(query) or 0)
