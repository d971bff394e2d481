"""A peer's refusal of a forwarded item is kept, not retried, and surfaced
(log, `hfed outbox rejected`, and the Prometheus counter)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

from federation.devnet import processes
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import receipt_pb2, report_pb2
from tests.support.net import (
    DEADLINE,
    create_network,
    publish_next_roster,
    revoked_and_replaced,
    small_members,
    start,
    stop,
)

A, B = "hotline-dk", "hotline-nl"


def _rejected(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE state = 2").fetchone()[0])


def test_refused_forward_is_kept_and_surfaced(tmp_path: Path) -> None:
    net = create_network(tmp_path / "net", small_members(A, B))
    config = net.directory / "members" / A / "node.toml"
    config.write_text("roster_pull_seconds = 3600\n" + config.read_text())
    start(net.directory)
    try:
        # B alone learns that A's key is revoked (A is down and misses the push).
        processes.down(net.directory, only=[A])
        publish_next_roster(net, B, keys={A: revoked_and_replaced(net.signing_key(A))}, caller=B)
        processes.up(net.directory, only=[A])
        report = report_pb2.Report(
            url=f"https://refused.example.com/{os.urandom(4).hex()}", hosting_country="NL"
        )
        with net.channel(A, A) as channel:
            receipt = (
                pb_grpc.HotlineServiceStub(channel)
                .SubmitReport(pb.SubmitReportRequest(report=report), timeout=DEADLINE)
                .receipt
            )
        assert receipt.outcome == receipt_pb2.OUTCOME_FORWARDED
        deadline = time.monotonic() + 20
        while _rejected(net.db_path(A)) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _rejected(net.db_path(A)) == 1
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "federation.cli.main",
                "outbox",
                "rejected",
                "--devnet",
                str(net.directory),
                "--member",
                A,
                "--format",
                "csv",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert receipt.item_id in listed and "KEY_NOT_VALID" in listed
        with net.channel(A, A) as channel:
            ops = pb_grpc.HotlineServiceStub(channel).GetOperations(
                pb.GetOperationsRequest(refused_limit=10), timeout=DEADLINE
            )
        [refused] = ops.refused
        assert (refused.member_id, refused.item_id) == (B, receipt.item_id)
        assert refused.reject_reason == receipt_pb2.REJECT_REASON_KEY_NOT_VALID
        assert refused.HasField("refused_at") and not ops.refused_truncated
        [queue] = [q for q in ops.peers if q.member_id == B]
        assert queue.rejected == 1
        # A still holds the first roster: that is why its item was refused.
        assert ops.roster.version == 1 and ops.HasField("certificate_not_after")
        metrics_url = f"http://{net.member(A).metrics}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=DEADLINE) as response:
            text = response.read().decode()
        assert 'hfed_outbox_rejected_total{peer="hotline-nl",reason="KEY_NOT_VALID"} 1.0' in text
        assert "peer rejected item" in (net.directory / "members" / A / "node.log").read_text()
    finally:
        stop(net.directory)
