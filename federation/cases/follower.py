"""Following the filings of the other node processes on one PostgreSQL database.

A member that runs several node processes over one database shares every
table, but each process keeps its own in-memory PDQ index and wakes its own
liaison streams after its own commits. This thread closes both gaps: every
``interval`` seconds it reads the case event log past the position it has
followed to, adds the PDQ hashes of the cases filed there to the index
(CaseBook.follow), and rings ``on_new`` when the log moved, so that a
liaison stream served here sends another process's events at once instead
of after its idle wait.

The bound this gives: a PDQ hash another process committed is searched here
at most ``interval`` (plus one read) after its commit. Two near hashes filed
at the same moment by two processes, each in a transaction the other cannot
see yet, are not linked (exact hashes are looked up in the database and link
as soon as the other's commit is visible). A single process (SQLite) runs
no follower: its index sees every filing.
"""

from __future__ import annotations

from collections.abc import Callable

from federation.cases.filing import FOLLOW_PAGE, CaseBook
from federation.runtime.periodic import Periodic
from federation.store.database import Database

#: Default time between two reads of the log (seconds).
FOLLOW_SECONDS = 0.5
#: Pages read per round at most, so a long backlog never holds the thread
#: (it goes on at the next round).
PAGES_PER_ROUND = 20


class FilingFollower:
    """Background thread running CaseBook.follow every ``interval`` seconds."""

    def __init__(
        self,
        book: CaseBook,
        db: Database,
        interval: float = FOLLOW_SECONDS,
        on_new: Callable[[], None] = lambda: None,
    ) -> None:
        self._book = book
        self._db = db
        self._on_new = on_new
        # The database may be away for a while: the next round tries again.
        self._rounds = Periodic(
            "follow-filings",
            interval,
            self.round,
            "following other processes' filings failed; retrying",
        )

    def start(self) -> None:
        """Start following."""
        self._rounds.start()

    def stop(self) -> None:
        """Stop following (waits for a round in progress)."""
        self._rounds.stop(timeout=10)

    def round(self) -> int:
        """Follow the log up to its end (at most PAGES_PER_ROUND pages); the events read."""
        total = 0
        for _ in range(PAGES_PER_ROUND):
            read = self._book.follow(self._db, FOLLOW_PAGE)
            total += read
            if read < FOLLOW_PAGE:
                break
        if total:
            self._on_new()
        return total
