"""Back up and restore a node's SQLite database file (``hfed db backup``, ``hfed db restore``).

A backup is taken with SQLite's online backup API, which copies a consistent
snapshot page by page while the node keeps writing (WAL mode: the copy sees
the last committed transaction when it started, never half of one). A restore
checks that the file is an HFP node database this code can upgrade, keeps the
file it replaces (and its WAL, which must never be replayed onto another
database) aside, and moves the copy into place with a rename.

PostgreSQL databases are backed up with ``pg_dump``; ``pg_dump_command`` says
how for a configured URL without its password.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from federation.core.errors import SetupError

#: Tables every node database has from its first migration on.
NODE_TABLES = frozenset({"alembic_version", "inbound_items", "outbox", "cases"})
#: Suffixes of the files SQLite keeps beside a database in WAL mode.
SIDE_FILES = ("-wal", "-shm")
#: The byte of the ``-shm`` file on which every connection to a WAL database
#: holds a shared lock while it is open (SQLite's unix VFS: UNIX_SHM_DMS).
SHM_DMS_OFFSET = 128
#: Pages copied per step of an online backup (the node writes between steps).
BACKUP_PAGES = 1024


class BackupError(SetupError):
    """A backup or restore that must not go ahead (the message says why)."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    """What a checked backup file holds."""

    path: Path
    revision: str
    #: When the newest stored item arrived (None for an empty node).
    newest_item: datetime | None


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL; BackupError for any other database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        raise BackupError(f"not an SQLite file database: {parsed.drivername}")
    if parsed.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(parsed.database)


def pg_dump_command(url: str, out: Path) -> str:
    """The ``pg_dump`` call that backs up the PostgreSQL database at ``url``
    (custom format, for ``pg_restore``); the password is left out on purpose."""
    parsed = make_url(url)
    parts = ["pg_dump", "-Fc", "--no-owner"]
    if parsed.host:
        parts += ["-h", parsed.host]
    if parsed.port:
        parts += ["-p", str(parsed.port)]
    if parsed.username:
        parts += ["-U", parsed.username]
    parts += ["-f", str(out), parsed.database or ""]
    return " ".join(parts)


def _copy(source: sqlite3.Connection, out: Path) -> None:
    with closing(sqlite3.connect(out)) as target:
        source.backup(target, pages=BACKUP_PAGES)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(database: Path, out: Path) -> BackupFile:
    """Copy the live database at ``database`` into the new file ``out``, checked."""
    if not database.exists():
        raise BackupError(f"no database at {database}")
    if out.exists():
        raise BackupError(f"{out} exists; refusing to overwrite it")
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30.0)) as source:
        _copy(source, partial)
    try:
        checked = check(partial)
    except BackupError:
        partial.unlink(missing_ok=True)
        raise
    _fsync(partial)
    partial.rename(out)
    return BackupFile(out, checked.revision, checked.newest_item)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _newest_item(conn: sqlite3.Connection) -> datetime | None:
    value = conn.execute("SELECT MAX(received_at) FROM inbound_items").fetchone()[0]
    if value is None:
        return None
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def check(path: Path) -> BackupFile:
    """The backup at ``path`` if it is an intact HFP node database with a schema
    revision recorded; BackupError saying what is wrong otherwise."""
    if not path.is_file():
        raise BackupError(f"no file at {path}")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if integrity != "ok":
                raise BackupError(f"{path} is damaged: {integrity}")
            missing = NODE_TABLES - _tables(conn)
            if missing:
                raise BackupError(f"{path} is not an HFP node database (no {sorted(missing)})")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if row is None:
                raise BackupError(f"{path} records no schema revision")
            return BackupFile(path, str(row[0]), _newest_item(conn))
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc


def in_use(database: Path) -> bool:
    """True while any process has the WAL-mode database open (a running node
    does, from start to stop): its shared lock on the ``-shm`` file's DMS
    byte stops us from taking that byte exclusively. A killed process holds
    no lock, so this tells a stopped node from a running one however it ended."""
    try:
        fd = os.open(database.with_name(database.name + "-shm"), os.O_RDWR)
    except FileNotFoundError:
        return False  # no connection in WAL mode has it open
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SHM_DMS_OFFSET)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases our test lock
    return False


def _aside_name(database: Path, stamp: str) -> Path:
    return database.with_name(f"{database.name}.replaced-{stamp}")


def put_aside(database: Path, now: datetime) -> Path | None:
    """Move the database and its WAL files out of the way (renamed, never
    deleted); the new name of the database, or None when there was none."""
    aside = _aside_name(database, now.strftime("%Y%m%dT%H%M%SZ"))
    moved = None
    for suffix in ("", *SIDE_FILES):
        current = database.with_name(database.name + suffix)
        if current.exists():
            current.rename(aside.with_name(aside.name + suffix))
            moved = aside
    return moved


def restore(backup_path: Path, database: Path, now: datetime) -> Path | None:
    """Put the checked backup in place of ``database`` (the node must be stopped);
    where the replaced database was kept, or None when there was none."""
    partial = database.with_name(database.name + ".restoring")
    partial.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True)) as source:
        _copy(source, partial)
    _fsync(partial)
    aside = put_aside(database, now)
    partial.rename(database)
    return aside
