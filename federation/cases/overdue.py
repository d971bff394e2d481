"""Logs takedowns that are overdue, so an operator can repeat the notice."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from federation.cases.queries import OverduePolicy
from federation.core.case import CaseFilter
from federation.core.ids import CaseId
from federation.runtime.clock import Clock, utc_now
from federation.runtime.periodic import Periodic
from federation.store import cases as store
from federation.store.database import Database

log = structlog.get_logger(__name__)

CHECK_EVERY_SECONDS = 60.0
MAX_LISTED = 1000


class OverdueWatcher:
    """Background thread: each minute, log cases that became overdue since the last
    check, and run ``also`` (the node lifts expired police holds there)."""

    def __init__(
        self,
        db: Database,
        policy: OverduePolicy,
        clock: Clock = utc_now,
        interval: float = CHECK_EVERY_SECONDS,
        also: Callable[[], object] = lambda: None,
    ) -> None:
        self._db = db
        self._policy = policy
        self._clock = clock
        self._interval = interval
        self._also = also
        self._known: set[CaseId] = set()
        # A storage hiccup must not end the watcher.
        self._rounds = Periodic("overdue", interval, self._round, "overdue check failed")

    def start(self) -> None:
        """Start watching."""
        self._rounds.start()

    def stop(self) -> None:
        """Stop watching."""
        self._rounds.stop(timeout=5)

    def check(self) -> list[CaseId]:
        """Log newly overdue cases; returns every overdue case id."""
        now = self._clock()
        with self._db.read() as session:
            rows = store.list_cases(
                session, CaseFilter(), MAX_LISTED, None, now - self._policy.after
            )
        overdue = [r.case_id for r in rows]
        for row in rows:
            if row.case_id not in self._known:
                log.warning(
                    "takedown overdue: repeat the notice",
                    case_id=row.case_id,
                    hosting_country=row.hosting_country,
                    notice_sent_at=row.notice_sent_at.isoformat() if row.notice_sent_at else None,
                )
        self._known = set(overdue)
        return overdue

    def _round(self) -> None:
        self.check()
        self._also()
