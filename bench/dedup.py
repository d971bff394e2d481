"""Dedup look-ups: exact hash over millions of stored hashes, PDQ near match over 1M.

Exact: the node's own look-up, ``federation.store.cases.cases_with_hashes``,
in one read session on a real SQLite database migrated with
``federation.store.migrate.upgrade`` and filled with raw sqlite3 (one case
per ten SHA-256 hashes, so that every hash row references a real case). The
filled database is cached in the work directory, keyed by size and schema
revision. Half the queries are stored values, half random ones (misses).
The file is read once before timing (see ``_warm``).

PDQ: ``federation.core.pdq_index.PdqIndex`` with threshold 31, as
bench/pdq_bench.py measures it (planted neighbours must be found; half the
queries are random).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import numpy as np

from bench.pdq_bench import THRESHOLD, flip_bits, make_items, make_queries, time_queries
from bench.preload import bulk_insert, cached_database
from bench.progress import say
from bench.report import Results
from federation.core.pdq_index import PdqIndex
from federation.core.report import HashAlgorithm
from federation.store.cases import cases_with_hashes
from federation.store.database import Database

TARGET_EXACT_P99_MS = 1.0
TARGET_PDQ_P99_MS = 10.0
HASHES_PER_CASE = 10
CHUNK = 200_000
SHA256 = int(HashAlgorithm.SHA256)


def _case_id(number: int) -> str:
    """A UUID-shaped case id for case ``number``."""
    return f"00000000-0000-7000-8000-{number:012d}"


def _fill_chunk(conn: sqlite3.Connection, chunk: int, total: int, rng: np.random.Generator) -> int:
    """Write hashes [chunk*CHUNK, ...) and the cases they belong to; rows written."""
    start = chunk * CHUNK
    size = max(0, min(CHUNK, total - start))
    if not size:
        return 0
    values = rng.integers(0, 256, (size, 32), dtype=np.uint8).tobytes()
    first, last = start // HASHES_PER_CASE, (start + size - 1) // HASHES_PER_CASE
    stamp = "2026-01-01 00:00:00.000000"
    conn.executemany(  # a case may straddle two chunks: the second insert is ignored
        "INSERT OR IGNORE INTO cases (case_id, canonical_url, url_sha256, hosting_country, "
        "responsible_member_id, status, is_open, last_sequence, created_at, updated_at) "
        "VALUES (?, ?, ?, 'NL', 'hotline-nl', 1, 1, 1, ?, ?)",
        [
            (_case_id(c), f"https://dedup.example.test/{c}", os.urandom(32), stamp, stamp)
            for c in range(first, last + 1)
        ],
    )
    conn.executemany(
        "INSERT INTO case_hashes (case_id, algorithm, value) VALUES (?, ?, ?)",
        (
            (_case_id((start + i) // HASHES_PER_CASE), SHA256, values[i * 32 : (i + 1) * 32])
            for i in range(size)
        ),
    )
    return size


def filled_database(work: Path, count: int) -> Path:
    """A migrated database holding ``count`` SHA-256 hashes (cached between runs)."""

    def fill(path: Path) -> None:
        say(f"dedup: filling {count:,} hashes into {path.name} (cached for later runs)")
        rng = np.random.default_rng(7)
        bulk_insert(
            path,
            ["cases", "case_hashes"],
            lambda conn, chunk: _fill_chunk(conn, chunk, count, rng),
        )

    return cached_database(work, f"dedup-{count}.db", fill)


def _samples(path: Path, count: int, rng: random.Random) -> list[bytes]:
    """``count`` stored values (rowids are 1..N in a filled database)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        total = int(conn.execute("SELECT MAX(id) FROM case_hashes").fetchone()[0])
        rows = [rng.randint(1, total) for _ in range(count)]
        return [
            bytes(conn.execute("SELECT value FROM case_hashes WHERE id = ?", (r,)).fetchone()[0])
            for r in rows
        ]


#: Bytes read at a time when warming a database file into the page cache.
WARM_CHUNK = 8 * 1024 * 1024


def _warm(path: Path) -> None:
    """Read the database file once, so that look-ups meet the OS page cache as
    they do on a running node, not whatever earlier steps left in it (a full
    run copies gigabytes of ingest databases just before, and the first pass
    over a cold 10M-hash file measured a p99 of 1.4 ms, a warm one 0.2 ms)."""
    with path.open("rb") as data:
        while data.read(WARM_CHUNK):
            pass


def measure_exact(
    results: Results, work: Path, count: int, queries: int, rng: random.Random
) -> None:
    """p50/p99 of cases_with_hashes for one hash over ``count`` stored hashes."""
    path = filled_database(work, count)
    _warm(path)
    present = _samples(path, queries // 2, rng)
    absent = [rng.randbytes(32) for _ in range(queries - len(present))]
    db = Database(f"sqlite:///{path}")
    latencies, found = [], 0
    try:
        with db.read() as session:
            cases_with_hashes(session, [(SHA256, present[0])])  # warm the statement cache
            for value in rng.sample(present + absent, queries):
                begin = time.perf_counter_ns()
                found += bool(cases_with_hashes(session, [(SHA256, value)]))
                latencies.append((time.perf_counter_ns() - begin) / 1e6)
    finally:
        db.dispose()
    if found < len(present):
        raise RuntimeError(f"only {found} of {len(present)} stored hashes were found")
    p50, p99 = np.percentile(latencies, [50, 99])
    say(f"dedup: exact over {count:,}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    results.add("exact_lookup_p50_ms", float(p50), "ms")
    results.add("exact_lookup_p99_ms", float(p99), "ms", TARGET_EXACT_P99_MS, at_most=True)
    results.add("stored_hashes_exact", count, "hashes")


def measure_pdq(results: Results, count: int, queries: int, seed: int) -> None:
    """p50/p99 of a PDQ near-match search over ``count`` stored hashes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    items = make_items(count, seed)
    for i in range(count // 1000):  # plant neighbours so some queries meet clusters
        _, source = items[rng.randrange(count)]
        items.append((f"planted-{i:06d}", flip_bits(source, rng.randint(1, THRESHOLD), rng)))
    search, expected = make_queries(items, queries, rng)
    say(f"dedup: building a PDQ index of {len(items):,}")
    index = PdqIndex(THRESHOLD)
    index.add_many(items)
    latencies, _ = time_queries(index, search, expected, rng)
    p50, p99 = np.percentile(latencies, [50, 99])
    say(f"dedup: PDQ over {len(items):,}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    results.add("pdq_lookup_p50_ms", float(p50), "ms")
    results.add("pdq_lookup_p99_ms", float(p99), "ms", TARGET_PDQ_P99_MS, at_most=True)
    results.add("stored_hashes_pdq", len(items), "hashes")
