"""A takedown notice left unanswered past the deadline is flagged and logged."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from tests.support.net import DEADLINE, create_network, small_members, start, stop

B = "hotline-nl"
DEADLINE_HOURS = 0.0005  # 1.8 seconds


def test_overdue_notice_is_flagged_listed_and_logged(tmp_path: Path) -> None:
    net = create_network(tmp_path / "net", small_members(B))
    config = net.directory / "members" / B / "node.toml"
    config.write_text(
        config.read_text() + f"\n[takedown]\noverdue_after_hours = {DEADLINE_HOURS}"
        "\ncheck_every_seconds = 0.2\n"
    )
    start(net.directory)
    try:
        with net.channel(B, B) as channel:
            stub = pb_grpc.HotlineServiceStub(channel)
            report = report_pb2.Report(
                url=f"https://slow.example.net/{os.urandom(4).hex()}", hosting_country="NL"
            )
            case_id = stub.SubmitReport(
                pb.SubmitReportRequest(report=report), timeout=DEADLINE
            ).receipt.case_id
            for status in (
                status_pb2.CASE_STATUS_ASSESSED_ILLEGAL,
                status_pb2.CASE_STATUS_NOTICE_SENT,
            ):
                stub.RecordStatus(
                    pb.RecordStatusRequest(case_id=case_id, status=status), timeout=DEADLINE
                )
            assert not stub.GetCase(
                pb.GetCaseRequest(case_id=case_id), timeout=DEADLINE
            ).case.overdue
            time.sleep(DEADLINE_HOURS * 3600 + 1.0)
            case = stub.GetCase(pb.GetCaseRequest(case_id=case_id), timeout=DEADLINE).case
            listed = stub.ListCases(
                pb.ListCasesRequest(filters=case_pb2.CaseFilter(overdue_only=True)),
                timeout=DEADLINE,
            )
        assert case.overdue
        assert [c.case_id for c in listed.cases] == [case_id]
        log = (net.directory / "members" / B / "node.log").read_text()
        assert "takedown overdue" in log and case_id in log
    finally:
        stop(net.directory)
