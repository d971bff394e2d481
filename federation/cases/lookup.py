"""The analysts' read side as one object: cases, their pages, and statistics.

Binds the database, the overdue policy and the clock once, so that the API
layer asks for a case or a page without reaching storage itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from federation.cases.queries import (
    CasePage,
    HistoryPage,
    OverduePolicy,
    ReportPage,
    case_history,
    case_reports,
    get_case,
    list_cases,
    stats,
)
from federation.core.case import CaseFilter, CaseView
from federation.core.ids import CaseId, ReportId
from federation.core.stats import TakedownStats
from federation.runtime.clock import Clock, utc_now
from federation.store.database import Database


class CaseLookup:
    """Reads cases this node holds (ours, and others' we reported to)."""

    def __init__(self, db: Database, overdue: OverduePolicy, clock: Clock = utc_now) -> None:
        self._db = db
        self._overdue = overdue
        self._clock = clock

    def case(
        self, *, case_id: CaseId | Literal[""] = "", report_id: ReportId | Literal[""] = ""
    ) -> CaseView:
        """One case by its id or by the id of one of its reports."""
        return get_case(
            self._db, self._clock(), self._overdue, case_id=case_id, report_id=report_id
        )

    def cases(self, where: CaseFilter, page_size: int, token: str) -> CasePage:
        """A filtered page of our cases, newest first."""
        return list_cases(self._db, where, page_size, token, self._clock(), self._overdue)

    def reports(self, case_id: CaseId, page_size: int, token: str) -> ReportPage:
        """A page of a case's reports, in the order they joined."""
        return case_reports(self._db, case_id, page_size, token)

    def history(self, case_id: CaseId, page_size: int, token: str) -> HistoryPage:
        """A page of a case's applied status updates, in sequence order."""
        return case_history(self._db, case_id, page_size, token)

    def stats(self, since: datetime | None, until: datetime | None) -> TakedownStats:
        """Takedown statistics over our cases first reported in [since, until)."""
        return stats(self._db, since, until, self._clock())
