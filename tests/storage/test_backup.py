"""``hfed db backup`` / ``hfed db restore`` on SQLite files, and the PostgreSQL refusal."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from federation.cli.main import cli
from federation.core.ids import MemberId, ReportId
from federation.store import backup as files
from federation.store.backup import BackupError
from federation.store.copy import CopyError, copy_rows
from federation.store.database import Database
from federation.store.migrate import head_revision, upgrade, upgrade_url
from federation.store.outbox import NewOutboxItem, enqueue_many, pending_count

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def _node_toml(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(
        f'member_id = "hotline-nl"\ndatabase_url = "{url}"\nlisten = "127.0.0.1:1"\n'
        "insecure_plaintext = true\n"
        '[signing]\nkey = "s.pem"\n'
        '[trust]\nroot_public_keys = ["k"]\nthreshold = 1\n'
    )
    return path


def _node_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    upgrade_url(f"sqlite:///{path}")
    return path


def _hfed(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_backup_is_a_checked_copy_and_refuses_to_overwrite(tmp_path: Path) -> None:
    source = _node_db(tmp_path / "node.db")
    made = files.backup(source, tmp_path / "copy.db")
    assert made.revision == head_revision("sqlite://") and made.newest_item is None
    assert files.check(tmp_path / "copy.db").revision == made.revision
    with pytest.raises(BackupError, match="exists"):
        files.backup(source, tmp_path / "copy.db")


def test_check_refuses_what_is_not_a_node_database(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(BackupError, match="not an HFP node database"):
        files.check(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(BackupError, match="not a readable SQLite database"):
        files.check(junk)


def test_restore_keeps_the_replaced_database_and_its_wal_aside(tmp_path: Path) -> None:
    backup = files.backup(_node_db(tmp_path / "a.db"), tmp_path / "backup.db").path
    live = _node_db(tmp_path / "live" / "node.db")
    (tmp_path / "live" / "node.db-wal").write_bytes(b"old wal")
    aside = files.restore(backup, live, NOW)
    assert aside is not None and aside.name == "node.db.replaced-20261204T030000Z"
    assert aside.is_file() and aside.with_name(aside.name + "-wal").read_bytes() == b"old wal"
    assert not live.with_name("node.db-wal").exists(), "the old WAL must not meet the new file"
    assert files.check(live).revision == head_revision("sqlite://")


def test_restore_command_refuses_a_schema_it_does_not_know(tmp_path: Path) -> None:
    backup = files.backup(_node_db(tmp_path / "a.db"), tmp_path / "backup.db").path
    with closing(sqlite3.connect(backup)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00d'")
    config = _node_toml(tmp_path, f"sqlite:///{tmp_path / 'node.db'}")
    result = _hfed("db", "restore", "--config", str(config), str(backup))
    assert result.exit_code != 0 and "f00d" in result.output
    assert not (tmp_path / "node.db").exists()


def test_postgresql_backup_points_to_pg_dump_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://hfed:s3cret@db.example:5433/hfed_nl"
    result = _hfed("db", "backup", "--config", str(_node_toml(tmp_path, url)), "out.dump")
    assert result.exit_code != 0
    assert (
        "pg_dump -Fc --no-owner -h db.example -p 5433 -U hfed -f out.dump hfed_nl" in result.output
    )
    assert "s3cret" not in result.output


def test_in_use_while_a_process_has_the_database_open_not_after_kill_9(tmp_path: Path) -> None:
    database = _node_db(tmp_path / "node.db")
    holder = subprocess.Popen(  # a process with the file open, as a running node has
        [sys.executable, "-c", HOLD, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert files.in_use(database)
    finally:
        holder.kill()
        holder.wait(10)
    assert not files.in_use(database), "a killed process holds no lock"


HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("SELECT COUNT(*) FROM cases").fetchone()
print("open", flush=True)
time.sleep(60)
"""


def test_copy_moves_every_row_to_an_empty_database(new_database_url: Callable[[], str]) -> None:
    source = Database(new_database_url())
    upgrade(source)
    with source.write() as session:
        enqueue_many(session, [_outgoing(n) for n in range(3)], NOW)
    target = Database(new_database_url())
    try:
        counts = copy_rows(source, target)
        assert counts["outbox"] == 3
        with target.write() as session:  # ids continue after the copied ones
            enqueue_many(session, [_outgoing(3)], NOW)
        with target.read() as session:
            assert pending_count(session) == 4
        with pytest.raises(CopyError, match="not empty"):
            copy_rows(source, target)
    finally:
        source.dispose()
        target.dispose()


def _outgoing(n: int) -> NewOutboxItem:
    return NewOutboxItem(
        destination=MemberId("hotline-dk"),
        item_id=ReportId(f"00000000-0000-4000-8000-00000000000{n}"),
        payload_type="x",
        envelope=b"e",
    )
