#!/usr/bin/env python3
"""A node's start-up with N stored PDQ hashes (issue 21: 10 M in at most 60 s).

Builds (once, cached under bench/.work/) a migrated SQLite database whose
``case_hashes`` table holds N random PDQ hashes under N case ids, with no
other rows: start-up reads only that table for the index (CaseBook.load),
so the rest of a real database does not change what is timed. The database
is installed for hotline-nl of a fresh benchmark network, the node is
started as ``devnet up`` starts it, and the time until it answers its health
check is printed, with its peak RSS.

    bench/run is not needed:  PYTHONPATH=. .venv/bin/python bench/pdq_startup.py --n 10000000
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import numpy as np

from bench import netctl, preload
from bench.netctl import NL
from bench.progress import say

TARGET_SECONDS = 60.0
PDQ = 4  # HashAlgorithm.PDQ
CHUNK = 200_000


def fill(path: Path, count: int, seed: int) -> None:
    """``count`` PDQ rows in case_hashes (foreign keys off: no case rows needed)."""
    rng = np.random.default_rng(seed)
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = OFF")
        for first in range(0, count, CHUNK):
            size = min(CHUNK, count - first)
            values = rng.integers(0, 256, (size, 32), dtype=np.uint8)
            rows = (
                (f"00000000-0000-7000-8000-{first + i:012d}", PDQ, values[i].tobytes())
                for i in range(size)
            )
            db.executemany(
                "INSERT INTO case_hashes (case_id, algorithm, value) VALUES (?, ?, ?)", rows
            )
            db.commit()
            say(f"pdq start-up: {first + size:,} of {count:,} hashes stored")


def main() -> None:
    """Build or reuse the database, start the node on it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="stored PDQ hashes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    template = preload.cached_database(
        args.work, f"pdq-{args.n}.db", lambda path: fill(path, args.n, args.seed)
    )
    net = netctl.create(args.work / "pdq-startup-net")
    preload.install_copy(template, net.db_path(NL))
    start = time.perf_counter()
    try:
        netctl.start(net, [NL])
        seconds = time.perf_counter() - start
        rss = netctl.peak_rss_mib(net.pid(NL))
    finally:
        netctl.stop_all()
    verdict = "MET" if seconds <= TARGET_SECONDS else "MISSED"
    print(f"stored PDQ hashes    {args.n:,}")
    print(f"start-up to SERVING  {seconds:.1f} s (target <= {TARGET_SECONDS:.0f} s: {verdict})")
    print(f"node peak RSS        {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
