"""Copying SQLite's write-ahead log back into the database file, beside the writers.

In WAL mode every commit appends the pages it changed to the log, and a
checkpoint later writes them to their places in the database file (and
fsyncs it). By default SQLite runs that checkpoint inside whichever commit
pushes the log past 1,000 pages, while the writer slot is held. On a large
store filing touches index pages all over the file (URL digests and content
hashes are random keys), so the checkpoint is a burst of scattered writes:
at a million stored cases it took half of every batch's commit.

A checkpoint does not need the writer slot: SQLite lets one run while a
writer appends. So the node runs them on a thread of its own, with its own
connection, woken after commits and at most every ``interval`` seconds.
Writers still checkpoint by themselves once the log passes
``WRITER_CHECKPOINT_PAGES`` (the connection setting), which bounds the log if
this thread falls behind or is not running (command-line tools, tests).
Durability does not change: a commit is on disk once its log is fsynced,
before and after this.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import structlog

log = structlog.get_logger(__name__)

#: Log size (pages) at which a writer checkpoints by itself, inside its commit.
WRITER_CHECKPOINT_PAGES = 16_000
#: Shortest pause between two background checkpoints, in seconds: each one
#: fsyncs the database file, so they are spaced rather than run per commit.
CHECKPOINT_INTERVAL_SECONDS = 0.1
#: How long a background checkpoint waits for SQLite's locks (ms).
BUSY_TIMEOUT_MS = 1000


class WalCheckpointer:
    """A thread that runs PASSIVE checkpoints on one SQLite file after commits."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self._path = path
        self._interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (its connection opens at the first commit)."""
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Note that a commit appended to the log (cheap: called after every write)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread after a last checkpoint."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        self._wake.wait()
        # Opened only now: a connection opened on a file not yet in WAL mode
        # (a database created after this object) would not checkpoint it.
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            # Writers still checkpoint by themselves (WRITER_CHECKPOINT_PAGES).
            log.warning("background checkpoints unavailable", error=str(exc))
            return
        try:
            while not self._stopping.is_set():
                self._wake.wait()
                self._wake.clear()
                self._checkpoint(connection)
                self._stopping.wait(self._interval)
            self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        started = time.perf_counter()
        try:
            busy, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            # The next commit wakes us again, and writers still checkpoint by
            # themselves past WRITER_CHECKPOINT_PAGES: nothing is lost by waiting.
            log.warning("background checkpoint failed", error=str(exc))
            return
        log.debug(
            "checkpoint",
            busy=busy,
            log_pages=logged,
            copied_pages=copied,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
