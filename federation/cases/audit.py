"""The operator audit of analysts' actions: one entry per call naming an analyst.

The console names the logged-in analyst on every HotlineService call it
makes as the node's operator identity; the node writes who did what to
which case, and how it ended, in its own transaction (these calls come from
a handful of people, not from peers, so a write each costs nothing that
matters; calls naming no analyst, such as bulk intake, write nothing).
"""

from __future__ import annotations

from federation.runtime.clock import Clock, utc_now
from federation.store import operator_audit
from federation.store.database import Database


class OperatorAudit:
    """Appends entries to the operator audit."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def record(self, analyst: str, rpc: str, case_id: str, outcome: str, detail: str) -> None:
        """Append the entry of one call made for ``analyst``."""
        with self._db.write() as session:
            operator_audit.append(session, self._clock(), analyst, rpc, case_id, outcome, detail)
