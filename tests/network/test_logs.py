"""A node's log is JSON, line by line, and names callers and items but never URLs or hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest

from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import report_pb2
from tests.support.net import DEADLINE, create_network, small_members, start, stop

A = "hotline-dk"


def log_lines(directory: Path, member: str) -> list[dict[str, object]]:
    """Every line of the node's log, parsed (a line that is not JSON fails the test)."""
    text = (directory / "members" / member / "node.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def submit(channel: grpc.Channel, url: str, sha256: str) -> pb.SubmitReportResponse:
    """SubmitReport of one report with one SHA-256."""
    report = report_pb2.Report(url=url, hosting_country="DK")
    report.hashes.add(algorithm=report_pb2.HASH_ALGORITHM_SHA256, value=bytes.fromhex(sha256))
    return pb_grpc.HotlineServiceStub(channel).SubmitReport(
        pb.SubmitReportRequest(report=report), timeout=DEADLINE
    )


def test_submitted_report_logs_ids_not_url_or_hash(tmp_path: Path) -> None:
    net = create_network(tmp_path / "net", small_members(A, "secretariat"))
    config = net.directory / "members" / A / "node.toml"
    # Debug: the line per submitted report is a debug line (see HotlineServicer).
    config.write_text(config.read_text() + '\n[log]\nformat = "auto"\nlevel = "debug"\n')
    url = f"https://logs.example.org/{os.urandom(6).hex()}"
    sha256 = os.urandom(32).hex()
    try:
        start(net.directory)
        with net.channel(A, A) as channel:
            receipt = submit(channel, url, sha256).receipt
            with pytest.raises(grpc.RpcError) as refused:
                submit(channel, url + " with space", sha256)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        stop(net.directory)
    lines = log_lines(net.directory, A)
    text = (net.directory / "members" / A / "node.log").read_text()
    assert "logs.example.org" not in text and sha256 not in text.lower()
    submitted = [line for line in lines if line.get("event") == "report submitted"]
    assert [line["report_id"] for line in submitted] == [receipt.item_id]
    assert submitted[0]["caller"] == A and submitted[0]["rpc"] == "SubmitReport"
    refusal = next(line for line in lines if line.get("event") == "call refused")
    assert refusal["caller"] == A and refusal["reason"] == "INVALID_REPORT"
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
