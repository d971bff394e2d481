"""When a takedown is overdue: the one rule for our cases and our reports."""

from __future__ import annotations

from datetime import datetime, timedelta

from federation.core.case_status import CaseStatus

#: The deadline a node uses unless configured otherwise ([takedown] overdue_after_hours).
DEFAULT_OVERDUE_AFTER = timedelta(hours=72)


def notice_overdue(
    status: CaseStatus | None,
    notice_sent_at: datetime | None,
    now: datetime,
    after: timedelta = DEFAULT_OVERDUE_AFTER,
) -> bool:
    """True when the takedown notice went out longer than ``after`` ago and the
    case has not moved on since (its status is still NOTICE_SENT); a repeated
    notice restarts the clock (``notice_sent_at`` is the latest one)."""
    return (
        status is CaseStatus.NOTICE_SENT
        and notice_sent_at is not None
        and now - notice_sent_at > after
    )
