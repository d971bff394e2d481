"""Fill a stopped node's SQLite database with synthetic cases, fast.

A node that has filed N reports holds, per case: the case, its report, the
report's hashes (SHA-256 and PDQ), the CASE_OPENED event, the RECEIVED
status update it signed, the inbound item with its receipt, and the status
update's delivered outbox row to the reporter. ``fill_cases`` writes exactly
those rows with raw sqlite3 (hundreds of times faster than going through the
node), with blobs of realistic sizes and random hash values.

The schema belongs to federation/store/models.py and its migrations, not to
this file: before writing, every table is checked for columns this file does
not know and cannot leave empty, so a schema change fails loudly with the
table's name instead of writing inconsistent rows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from federation.core.ids import new_uuid7
from federation.store.migrate import upgrade_url

#: Sizes of the stored blobs, as the node writes them for a two-hash report.
ENVELOPE_BYTES = 380
RECEIPT_BYTES = 290
UPDATE_BYTES = 312
CHUNK = 10_000

TABLES: dict[str, tuple[str, ...]] = {
    "cases": (
        "case_id",
        "canonical_url",
        "url_sha256",
        "hosting_country",
        "responsible_member_id",
        "status",
        "is_open",
        "last_sequence",
        "created_at",
        "updated_at",
        "first_reported_at",
    ),
    "case_reports": ("report_id", "case_id", "origin_member_id", "envelope", "joined_at"),
    "case_hashes": ("case_id", "algorithm", "value"),
    "case_events": ("case_id", "kind", "status", "hosting_country", "occurred_at"),
    "status_updates": (
        "update_id",
        "case_id",
        "author_member_id",
        "sequence",
        "status",
        "observed_at",
        "envelope",
        "applied",
        "recorded_at",
    ),
    "inbound_items": (
        "item_id",
        "payload_type",
        "signer_member_id",
        "key_id",
        "sender_member_id",
        "via_member_ids",
        "envelope",
        "payload_sha256",
        "outcome",
        "receipt",
        "received_at",
    ),
    "outbox": (
        "destination",
        "item_id",
        "payload_type",
        "envelope",
        "via_member_ids",
        "state",
        "attempts",
        "created_at",
        "receipt",
        "finished_at",
        "claimed_by",
    ),
}


class SchemaChangedError(RuntimeError):
    """The node's schema has columns this preloader does not fill."""


def check_schema(conn: sqlite3.Connection, table: str, columns: Sequence[str]) -> None:
    """Refuse to write ``table`` if the schema gained a required column or lost one."""
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    if not info:
        raise SchemaChangedError(f"table {table} does not exist: update bench/preload.py")
    names = {row[1] for row in info}
    # A NOT NULL column without default, other than the INTEGER PRIMARY KEY rowid alias.
    required = {
        row[1] for row in info if row[3] and row[4] is None and not (row[5] and row[2] == "INTEGER")
    }
    missing = [c for c in columns if c not in names]
    unfilled = sorted(required - set(columns))
    if missing or unfilled:
        raise SchemaChangedError(
            f"table {table}: columns gone {missing}, required columns not filled {unfilled}: "
            "update bench/preload.py to the new schema"
        )


def _stamp(moment: datetime) -> str:
    """A UTC time as SQLAlchemy stores a DateTime in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _case_rows(
    index: int, tag: str, now: datetime, blobs: dict[str, bytes]
) -> Iterator[tuple[str, tuple[object, ...]]]:
    """Every row one filed report leaves behind, as (table, values)."""
    case_id, report_id, update_id = new_uuid7(), new_uuid7(), new_uuid7()
    url = f"https://preload.example.test/{tag}/{index}/{os.urandom(6).hex()}"
    at = _stamp(now - timedelta(seconds=index % 2_592_000))  # spread over 30 days
    yield (
        "cases",
        (
            case_id,
            url,
            hashlib.sha256(url.encode()).digest(),
            "NL",
            "hotline-nl",
            1,
            1,
            1,
            at,
            at,
            at,
        ),
    )
    yield "case_reports", (report_id, case_id, "hotline-dk", blobs["envelope"], at)
    yield "case_hashes", (case_id, 1, os.urandom(32))
    yield "case_hashes", (case_id, 4, os.urandom(32))
    yield "case_events", (case_id, 1, 1, "NL", at)
    yield (
        "status_updates",
        (
            update_id,
            case_id,
            "hotline-nl",
            1,
            1,
            at,
            blobs["update"],
            1,
            at,
        ),
    )
    yield (
        "inbound_items",
        (
            report_id,
            "hfp.v1.Report",
            "hotline-dk",
            blobs["key_id"].decode(),
            "hotline-dk",
            "[]",
            blobs["envelope"],
            os.urandom(32),
            1,
            blobs["receipt"],
            at,
        ),
    )
    yield (
        "outbox",
        (
            "hotline-dk",
            update_id,
            "hfp.v1.StatusUpdate",
            blobs["update"],
            "[]",
            1,
            1,
            at,
            blobs["receipt"],
            at,
            "preload",
        ),
    )


def _write_chunk(conn: sqlite3.Connection, start: int, count: int, tag: str) -> None:
    now = datetime.now(UTC)
    blobs = {
        "envelope": os.urandom(ENVELOPE_BYTES),
        "receipt": os.urandom(RECEIPT_BYTES),
        "update": os.urandom(UPDATE_BYTES),
        "key_id": os.urandom(32).hex().encode(),
    }
    rows: dict[str, list[tuple[object, ...]]] = {table: [] for table in TABLES}
    for index in range(start, start + count):
        for table, values in _case_rows(index, tag, now, blobs):
            rows[table].append(values)
    for table, table_rows in rows.items():
        columns = TABLES[table]
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - our names
        conn.executemany(sql, table_rows)


def count_cases(db_path: Path) -> int:
    """How many cases the database holds."""
    with closing(sqlite3.connect(db_path, timeout=30.0)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0])


def _indexes(conn: sqlite3.Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the explicit indexes on ``tables``."""
    rows = conn.execute(
        "SELECT name, sql, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    )
    return [(name, sql) for name, sql, table in rows if table in tables]


def bulk_insert(
    db_path: Path, tables: Sequence[str], write: Callable[[sqlite3.Connection, int], int]
) -> None:
    """Run ``write(conn, chunk_number)`` until it returns 0, as fast as SQLite goes.

    The node is stopped and a crash only means filling again, so there is no
    journal and no fsync, and the tables' indexes are dropped first and built
    once at the end (a sorted build instead of millions of random inserts),
    from the very statements the migrations created.
    """
    with closing(sqlite3.connect(db_path, timeout=30.0, isolation_level=None)) as conn:
        indexes = _indexes(conn, tables)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB for the index builds
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        chunk = 0
        while True:
            conn.execute("BEGIN")
            written = write(conn, chunk)
            conn.execute("COMMIT")
            if not written:
                break
            chunk += 1
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("PRAGMA journal_mode=WAL")  # what the node uses


def fill_cases(
    db_path: Path, count: int, tag: str, progress: Callable[[int], None] | None = None
) -> None:
    """Add ``count`` filed cases to a migrated database whose node is stopped."""
    with closing(sqlite3.connect(db_path, timeout=30.0)) as conn:
        for table, columns in TABLES.items():
            check_schema(conn, table, columns)

    def write(conn: sqlite3.Connection, chunk: int) -> int:
        start = chunk * CHUNK
        size = max(0, min(CHUNK, count - start))
        if size:
            _write_chunk(conn, start, size, tag)
            if progress is not None:
                progress(start + size)
        return size

    bulk_insert(db_path, list(TABLES), write)


#: Bump when the rows written here change, so that cached templates are rebuilt.
FORMAT = 1


def schema_key(work: Path) -> str:
    """The newest schema revision (migrating a scratch database) and FORMAT."""
    probe = work / "schema-probe.db"
    probe.unlink(missing_ok=True)
    try:
        return f"{upgrade_url(f'sqlite:///{probe}')} format {FORMAT}"
    finally:
        probe.unlink(missing_ok=True)


def template(work: Path, cases: int, say: Callable[[str], None]) -> Path:
    """A migrated database holding ``cases`` preloaded cases, cached in ``work``.

    Templates hold no network-specific rows (no roster: a node installs its
    bootstrap roster at start), so any benchmark network's node can use a
    copy. A template is rebuilt when the schema revision or FORMAT changes.
    """

    def fill(path: Path) -> None:
        say(f"preload: building a database of {cases:,} cases (cached for later runs)")
        fill_cases(path, cases, "pre")

    return cached_database(work, f"ingest-{cases}.db", fill)


def install_copy(template: Path, target: Path) -> None:
    """Put a copy of ``template`` at ``target``, for a node that is stopped.

    The copy gets a new inode (copied beside, then renamed over the old file):
    a connection some library left open on the old file in this process must
    not share SQLite's per-inode WAL state with the new one. The copy is
    flushed to disk before the node starts: gigabytes of a fresh copy still
    being written back would compete with the node's own fsyncs during a
    timed run (at 1M cases that is a 4 GB file).
    """
    scratch = target.with_suffix(".copy")
    shutil.copyfile(template, scratch)
    with scratch.open("rb+") as copied:
        os.fsync(copied.fileno())
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(scratch, target)


def cached_database(work: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """The SQLite database ``work/name``, migrated and filled by ``fill`` once,
    then kept between runs; rebuilt when the schema revision or FORMAT changes."""
    path = work / name
    marker = path.with_suffix(".ok")
    key = schema_key(work)
    if path.exists() and marker.exists() and marker.read_text() == key:
        return path
    marker.unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    upgrade_url(f"sqlite:///{path}")
    fill(path)
    marker.write_text(key)
    return path
