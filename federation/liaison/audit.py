"""The audit of liaison calls: allowed ones at once, refused ones in batches.

Every police call is written to the audit log, refused ones too. A refusal
is meant to cost the node next to nothing, yet a write transaction per
refused call (an fsync on SQLite) let one liaison's flood compete with the
peers' Deliver transactions for the database's single writer. Refusals are
therefore queued here, in memory, and written by one thread, in one
transaction per batch, about once a second and when the node stops.

Nothing is dropped: identical refusals (same liaison, call, outcome, cause
and case ids) pending at once become one entry with their number of calls,
so the queue holds at most one record per distinct refusal. Should even that
grow past MAX_PENDING (dev-mode callers invent names), the thread recording
the refusal writes the queue itself before going on, so memory stays bounded
and the flood pays for it, not the other callers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog

from federation.core.ids import CaseId
from federation.runtime.clock import Clock, utc_now
from federation.store import audit
from federation.store.database import Database

log = structlog.get_logger(__name__)

#: How often pending refusals are written.
FLUSH_SECONDS = 1.0
#: Distinct pending refusals before the recording thread writes them itself.
MAX_PENDING = 2000

_Key = tuple[str, str, str, str, tuple[CaseId, ...]]


class RefusalAudit:
    """Collects refused calls and writes them in batches (start, record, stop)."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = utc_now,
        flush_seconds: float = FLUSH_SECONDS,
        max_pending: int = MAX_PENDING,
        on_flush: Callable[[int], None] = lambda _entries: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._on_flush = on_flush
        self._lock = threading.Lock()
        #: One writer at a time, so that batches reach the log in order.
        self._writing = threading.Lock()
        self._pending: dict[_Key, audit.Refusals] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="audit-refusals", daemon=True)
        self._thread.start()

    def record(
        self,
        member_id: str,
        rpc: str,
        outcome: str,
        detail: str,
        *,
        cause: str = "",
        case_ids: Sequence[CaseId] = (),
    ) -> None:
        """Queue one refused call. ``cause`` groups refusals whose detail differs
        only in passing (a retry delay); without it the detail itself does."""
        ids = tuple(c for c in case_ids if c)
        key = (member_id, rpc, outcome, cause or detail, ids)
        now = self._clock()
        with self._lock:
            entry = self._pending.get(key)
            if entry is not None:
                entry.calls += 1
                entry.last_at = now
                return
            self._pending[key] = audit.Refusals(member_id, rpc, outcome, detail, ids, now, now)
            full = len(self._pending) >= self._max_pending
        if full:
            self.flush()

    def pending(self) -> int:
        """Distinct refusals waiting to be written."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Write every pending refusal now, in one transaction."""
        with self._writing:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                with self._db.write() as session:
                    audit.append_refusals(session, list(batch.values()))
            except Exception:
                self._put_back(batch)
                raise
        self._on_flush(len(batch))

    def stop(self) -> None:
        """Stop the writer thread and write what is left."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def _put_back(self, batch: dict[_Key, audit.Refusals]) -> None:
        """Return a batch that could not be written, merged with what came since."""
        with self._lock:
            for key, entry in batch.items():
                newer = self._pending.pop(key, None)
                if newer is not None:
                    entry.calls += newer.calls
                    entry.last_at = newer.last_at
                self._pending[key] = entry

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # Kept for the next round: the database may be back by then.
                log.exception("refused calls could not be audited yet; retrying")


#: The most case ids one audit entry lists.
MAX_AUDITED_CASES = audit.MAX_CASES


class CallAudit:
    """Writes one entry per liaison call: an allowed call in its own
    transaction, a refused one through the batching RefusalAudit."""

    def __init__(self, db: Database, refusals: RefusalAudit, clock: Clock = utc_now) -> None:
        self._db = db
        self._refusals = refusals
        self._clock = clock

    def record(
        self,
        member_id: str,
        rpc: str,
        case_ids: Sequence[CaseId],
        outcome: str,
        detail: str,
        *,
        cause: str = "",
    ) -> None:
        """Append (or, refused, queue) the entry for one call of ``member_id``."""
        if outcome != "OK":
            self._refusals.record(member_id, rpc, outcome, detail, cause=cause, case_ids=case_ids)
            return
        with self._db.write() as session:
            audit.append(
                session, self._clock(), member_id, rpc, [c for c in case_ids if c], outcome, detail
            )
