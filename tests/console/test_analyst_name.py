"""The node's side of the console: the analyst name it accepts, and what it records."""

from __future__ import annotations

import grpc
import pytest

from federation.wire.metadata import ANALYST_METADATA, analyst_metadata
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import report_pb2, status_pb2
from tests.console.conftest import DK, NL
from tests.support.net import DEADLINE, Network
from tests.support.refusals import refusal_reason


@pytest.mark.parametrize("name", ["", "a" * 65, "ana smith", "<b>", "ana,bob"])
def test_a_bad_analyst_name_is_refused(console_net: Network, name: str) -> None:
    with console_net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        found = refusal_reason(
            lambda: stub.ListCases(
                hpb.ListCasesRequest(), timeout=DEADLINE, metadata=((ANALYST_METADATA, name),)
            )
        )
    assert found == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_ANALYST_NAME")


def test_another_member_cannot_act_as_an_analyst(console_net: Network) -> None:
    with console_net.channel(NL, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        found = refusal_reason(
            lambda: stub.ListCases(
                hpb.ListCasesRequest(), timeout=DEADLINE, metadata=analyst_metadata("ana")
            )
        )
    assert found == (grpc.StatusCode.PERMISSION_DENIED, "NOT_OPERATOR")


def test_list_cases_finds_a_case_by_any_spelling_of_its_url(console_net: Network) -> None:
    report = report_pb2.Report(
        url="https://Spelled.Example.com:443/a/../path", hosting_country="DK"
    )
    with console_net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        receipt = stub.SubmitReport(
            hpb.SubmitReportRequest(report=report), timeout=DEADLINE
        ).receipt
        found = stub.ListCases(
            hpb.ListCasesRequest(filters={"url": "https://spelled.example.com/path"}),
            timeout=DEADLINE,
        )
        bad = refusal_reason(
            lambda: stub.ListCases(
                hpb.ListCasesRequest(filters={"url": "not a url"}), timeout=DEADLINE
            )
        )
    assert [c.case_id for c in found.cases] == [receipt.case_id]
    assert bad == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_URL")


def test_get_case_offers_what_the_table_allows(console_net: Network) -> None:
    report = report_pb2.Report(url="https://offers.example.com/x", hosting_country="DK")
    with console_net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        receipt = stub.SubmitReport(
            hpb.SubmitReportRequest(report=report), timeout=DEADLINE
        ).receipt
        answer = stub.GetCase(hpb.GetCaseRequest(case_id=receipt.case_id), timeout=DEADLINE)
    names = [status_pb2.CaseStatus.Name(s) for s in answer.next_statuses]
    assert names == [
        "CASE_STATUS_ASSESSED_ILLEGAL",
        "CASE_STATUS_ASSESSED_NOT_ILLEGAL",
        "CASE_STATUS_CONTENT_GONE",
        "CASE_STATUS_MOVED",
    ]
