"""Engine creation and transactions, with the durability settings per backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from federation.store.cases import drop_pending_events, write_pending_events
from federation.store.checkpoint import WRITER_CHECKPOINT_PAGES, WalCheckpointer


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL on
    # every commit, which is what makes "committed" mean "survives a crash".
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=10000",
        # A large store (a million cases) has indexes far beyond SQLite's
        # default 2 MiB page cache; filing touches random index pages, so a
        # bigger cache and memory-mapped reads keep it off the read path.
        "cache_size=-32768",  # 32 MiB per connection
        "mmap_size=268435456",  # 256 MiB, shared with the OS page cache
        # Checkpoints normally run on a thread of their own (checkpoint.py);
        # a writer runs one itself only when the log grows past this.
        f"wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE), so
    # it waits on busy_timeout instead of failing when it upgrades from read
    # to write after another writer committed.
    mode = connection.get_execution_options().get("hfed_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


#: PostgreSQL SQLSTATEs after which the whole transaction may simply run
#: again: serialization_failure and deadlock_detected.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def lost_a_race(exc: BaseException) -> bool:
    """True when a write transaction failed only because a concurrent one won:
    a unique key it took first (both backends), or a PostgreSQL deadlock or
    serialization failure. Running the transaction again is then correct."""
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES
    return False


#: How long a write waits for SQLite's writer slot before giving up (as
#: busy_timeout does for writers of other processes).
WRITER_WAIT_SECONDS = 10.0


class WriterBusyError(OperationalError):
    """No write turn within WRITER_WAIT_SECONDS: retryable, like "database is locked"."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, Exception(message))


#: Connections each node process keeps to PostgreSQL (plus overflow under load).
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 20


class Database:
    """One engine plus read and write session factories.

    SQLite (the embedded default): WAL, fsync on every commit, foreign keys,
    BEGIN IMMEDIATE for writes; one node process per file.

    PostgreSQL (``postgresql+psycopg://``, production): a connection pool
    checked before use, READ COMMITTED, ``synchronous_commit=on`` (a commit
    returns only once its WAL is flushed), so several node processes can
    share one database.

    ``background_checkpoints`` (SQLite files only; for long-running nodes)
    moves WAL checkpoints out of the writers' commits onto a thread of their
    own (see checkpoint.py).
    """

    def __init__(
        self, url: str, *, echo: bool = False, background_checkpoints: bool = False
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgresql = url.startswith("postgresql")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url, echo=echo, connect_args={"check_same_thread": False}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        elif self.is_postgresql:
            self.engine = create_engine(
                url,
                echo=echo,
                pool_size=PG_POOL_SIZE,
                max_overflow=PG_MAX_OVERFLOW,
                pool_pre_ping=True,
                pool_recycle=1800,
                isolation_level="READ COMMITTED",
                connect_args={
                    "connect_timeout": 10,
                    "application_name": "hfed",
                    # Durable commits even if the server default was relaxed.
                    "options": "-c synchronous_commit=on",
                },
            )
        else:
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True)
        self._writer_lock = threading.RLock() if self.is_sqlite else None
        writer = self.engine.execution_options(hfed_write=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        for maker in (self._read, self._write):
            # Case events get their log positions at commit (cases.append_events).
            event.listen(maker, "before_commit", write_pending_events)
            event.listen(maker, "after_rollback", drop_pending_events)
        #: Called after every committed write transaction (e.g. to wake
        #: liaison streams waiting for new case events).
        self.after_write: list[Callable[[], None]] = []
        self._checkpointer: WalCheckpointer | None = None
        path = self.engine.url.database
        if background_checkpoints and self.is_sqlite and path and path != ":memory:":
            self._checkpointer = WalCheckpointer(path)
            self._checkpointer.start()
            self.after_write.append(self._checkpointer.wake)

    @property
    def dialect(self) -> str:
        """The backend's SQLAlchemy dialect name ("sqlite", "postgresql")."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed (and fsynced) on clean exit.

        Raises WriterBusyError when SQLite's single writer slot stays taken
        for longer than WRITER_WAIT_SECONDS.
        """
        with self._writer_turn(), self._write() as session, session.begin():
            yield session
        for hook in self.after_write:
            hook()

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        # SQLite admits one writer at a time, and a writer that finds the
        # lock taken sleeps in SQLite's busy handler in steps of up to 100 ms,
        # however soon the lock is released. Queueing this process's writers
        # on a lock instead hands the turn over at once (BEGIN IMMEDIATE and
        # busy_timeout still guard against any other process on the file).
        if self._writer_lock is None:
            yield
            return
        if not self._writer_lock.acquire(timeout=WRITER_WAIT_SECONDS):
            raise WriterBusyError("the database is busy with other writes")
        try:
            yield
        finally:
            self._writer_lock.release()

    def dispose(self) -> None:
        """Stop background checkpoints and close every pooled connection."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()
