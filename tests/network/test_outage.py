"""Durable forwarding: B down, 1,000 reports at A, A restarted, B back."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from federation.devnet import processes
from tests.support.net import running_network, small_members

A, B = "hotline-dk", "hotline-nl"
COUNT = 1000


def _count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_thousand_reports_reach_b_exactly_once_after_outage(tmp_path: Path) -> None:
    members = small_members(A, B, "secretariat")
    with running_network(tmp_path / "net", members) as net:
        processes.down(net.directory, only=[B])
        source = tmp_path / "bulk.csv"
        with source.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["url", "country", "hashes"])
            for i in range(COUNT):
                writer.writerow(
                    [
                        f"https://outage.example.net/{i}/{os.urandom(4).hex()}",
                        "NL",
                        "sha256:" + os.urandom(32).hex(),
                    ]
                )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "federation.cli.main",
                "report",
                "import",
                "--devnet",
                str(net.directory),
                "--member",
                A,
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        a_db, b_db = net.db_path(A), net.db_path(B)
        assert _count(a_db, "SELECT count(*) FROM outbox WHERE state = 0") == COUNT
        processes.down(net.directory, only=[A])  # restart A: the queue must survive
        processes.up(net.directory, only=[A])
        processes.up(net.directory, only=[B])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _count(a_db, "SELECT count(*) FROM outbox WHERE state = 0") == 0:
                break
            time.sleep(0.5)
        assert _count(a_db, "SELECT count(*) FROM outbox WHERE state = 1") == COUNT
        assert _count(a_db, "SELECT count(*) FROM outbox WHERE receipt IS NULL") == 0
        assert _count(b_db, "SELECT count(*) FROM case_reports") == COUNT
        assert _count(b_db, "SELECT count(DISTINCT report_id) FROM case_reports") == COUNT
        assert _count(b_db, "SELECT count(*) FROM cases") == COUNT
        assert _count(b_db, "SELECT count(*) FROM inbound_items") == COUNT
