"""Engine creation and transactions, with the durability settings per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


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
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE), so
    # it waits on busy_timeout instead of failing when it upgrades from read
    # to write after another writer committed.
    mode = connection.get_execution_options().get("hfed_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


class Database:
    """One engine plus read and write session factories."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        connect_args: dict[str, Any] = {"check_same_thread": False} if self.is_sqlite else {}
        self.engine: Engine = create_engine(
            url, echo=echo, connect_args=connect_args, pool_pre_ping=not self.is_sqlite
        )
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        writer = self.engine.execution_options(hfed_write=True)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        #: Called after every committed write transaction (e.g. to wake
        #: liaison streams waiting for new case events).
        self.after_write: list[Callable[[], None]] = []

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed (and fsynced) on clean exit."""
        with self._write() as session, session.begin():
            yield session
        for hook in self.after_write:
            hook()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
