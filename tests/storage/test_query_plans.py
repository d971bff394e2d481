"""Filing's look-ups stay on their indexes (SQLite's query planner, asked directly).

A look-up that silently falls back to scanning a table still returns the
right answer, so no functional test notices; at a million cases it turns a
batch of 500 reports from a fraction of a second into seconds. Partial and
expression indexes are where that happens: a query must repeat a partial
index's condition word for word before SQLite will use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from federation.core.report import HashAlgorithm
from federation.store import cases as case_store
from federation.store import outbox as outbox_store
from federation.store import status as status_store
from federation.store.database import Database
from federation.store.migrate import upgrade


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    upgrade(db)
    yield db
    db.dispose()


def _plans(db: Database, run: Callable[[Session], object]) -> list[str]:
    """The query plan of every SELECT ``run`` executes.

    Traced on the driver connection: the hot-path look-ups bypass
    SQLAlchemy's statement events (federation/store/_driver.py).
    """
    statements: list[str] = []
    with db.read() as session:
        raw = session.connection().connection.driver_connection
        assert raw is not None
        raw.set_trace_callback(statements.append)  # SQL with its values filled in
        try:
            run(session)
        finally:
            raw.set_trace_callback(None)
        plans = [
            " / ".join(str(row[-1]) for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if sql.lstrip().upper().startswith("SELECT")
        ]
    assert plans, "the look-up ran no SELECT"
    return plans


def test_url_lookup_uses_the_url_index(sqlite_db: Database) -> None:
    keys = [hashlib.sha256(f"https://example.test/{n}".encode()).digest() for n in range(3)]
    for plan in _plans(sqlite_db, lambda s: case_store.cases_by_url(s, keys)):
        assert "SEARCH cases USING INDEX uq_cases_url_open (url_sha256=?)" in plan, plan


def test_exact_hash_lookup_uses_the_partial_hash_index(sqlite_db: Database) -> None:
    pairs = [
        (int(HashAlgorithm.SHA256), b"\x01" * 32),
        (int(HashAlgorithm.MD5), b"\x02" * 16),
    ]
    plans = _plans(sqlite_db, lambda s: case_store.cases_by_hash(s, pairs))
    assert len(plans) == 2  # one query per algorithm
    for plan in plans:
        assert "USING INDEX ix_case_hashes_lookup (algorithm=? AND value=?)" in plan, plan


def test_a_large_case_is_read_one_page_at_a_time_on_its_indexes(sqlite_db: Database) -> None:
    """The reads of a case's reports, history and reporter-side links stop
    after one page on an index, however many rows the case has."""
    at = datetime(2026, 6, 1, tzinfo=UTC)
    reads: list[Callable[[Session], object]] = [
        lambda s: case_store.report_page(s, "c", None, 100),
        lambda s: case_store.report_page(s, "c", (at, "r"), 100),
        lambda s: status_store.applied_page(s, "c", 0, 90, newest_first=True),
        lambda s: status_store.linked_report_page(s, "c", "", 100),
    ]
    wanted = (
        "USING COVERING INDEX ix_case_reports_case_order",
        "USING INDEX ix_case_reports_case_order",
        "USING INDEX uq_status_updates_case_sequence",
        "USING COVERING INDEX ix_report_case_links_case",
    )
    for read in reads:
        for plan in _plans(sqlite_db, read):
            assert "SEARCH" in plan and any(w in plan for w in wanted), plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of the whole case


def test_the_reporter_list_reads_each_report_s_cases_on_indexes(sqlite_db: Database) -> None:
    """The reporter's list (cases/authored.py) looks up the cases, links,
    updates and forwards of its reports by key, never by scanning those
    tables; only its one read of our own reports in the period scans."""
    ids = ["r1", "r2"]
    reads: list[Callable[[Session], object]] = [
        lambda s: case_store.placements_of_reports(s, ids),
        lambda s: status_store.links_of_reports(s, ids),
        lambda s: status_store.applied_steps(s, ["c1", "c2"]),
        lambda s: status_store.applied_envelopes_of_status(s, ["c1"], 9),
        lambda s: outbox_store.report_deliveries(s, ids, "hfp.v1.Report"),
    ]
    for read in reads:
        for plan in _plans(sqlite_db, read):
            assert "SEARCH" in plan and "SCAN" not in plan, plan
