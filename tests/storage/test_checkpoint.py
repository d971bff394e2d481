"""Background WAL checkpoints: committed pages reach the database file without
any writer checkpointing, on a real SQLite file."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import text

from federation.store.checkpoint import WRITER_CHECKPOINT_PAGES
from federation.store.database import Database
from federation.store.migrate import upgrade

#: Upper bound on waiting for the checkpoint thread (it runs within ~0.1 s).
WAIT_SECONDS = 10.0


def _write_rows(db: Database, count: int) -> None:
    with db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS scratch (n INTEGER, blob BLOB)"))
        session.execute(
            text("INSERT INTO scratch VALUES (:n, randomblob(2000))"),
            [{"n": n} for n in range(count)],
        )


def _rows_in_main_file(path: Path, tmp_path: Path) -> int:
    """Rows visible in a copy of the database file alone (its WAL left behind);
    -1 when the copy was torn by a checkpoint writing the file meanwhile."""
    copy = tmp_path / "main-file-only.db"
    shutil.copyfile(path, copy)
    try:
        with closing(sqlite3.connect(copy)) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "scratch" not in names:
                return 0
            return int(conn.execute("SELECT COUNT(*) FROM scratch").fetchone()[0])
    except sqlite3.DatabaseError:
        # The copy is not atomic: a page-by-page checkpoint running during it
        # leaves a file that reads as malformed. Waiting callers try again.
        return -1


def _wait_for(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_commits_reach_the_database_file_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    # Created before the file exists and is migrated, as a fresh node's is.
    db = Database(f"sqlite:///{path}", background_checkpoints=True)
    try:
        upgrade(db)
        _write_rows(db, 200)  # ~100 pages: far below a writer's own checkpoint
        assert _wait_for(lambda: _rows_in_main_file(path, tmp_path) == 200)
        _write_rows(db, 100)
        assert _wait_for(lambda: _rows_in_main_file(path, tmp_path) == 300)
    finally:
        db.dispose()


def test_without_the_thread_writers_wait_for_a_large_log(tmp_path: Path) -> None:
    path = tmp_path / "tool.db"
    db = Database(f"sqlite:///{path}")
    try:
        upgrade(db)
        with db.read() as session:
            pages = session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
        assert pages == WRITER_CHECKPOINT_PAGES
        _write_rows(db, 200)
        time.sleep(0.3)  # what the background thread would need
        assert _rows_in_main_file(path, tmp_path) == 0  # still only in the log
    finally:
        db.dispose()
    # Closing the last connection checkpoints: nothing was left behind.
    assert _rows_in_main_file(path, tmp_path) == 200


def test_dispose_stops_the_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'stop.db'}", background_checkpoints=True)
    upgrade(db)
    _write_rows(db, 10)
    db.dispose()
    assert not [t for t in threading.enumerate() if t.name == "wal-checkpoint"]
