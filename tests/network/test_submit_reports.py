"""SubmitReports at a real node: up to 1,000 reports in one call, each under
SubmitReport's rules, one result per report in order; a bad report is refused
alone; a resent report (same id and creation time) gets its stored receipt."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest

from federation.core.ids import new_uuid7, uuid7_time
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import receipt_pb2, report_pb2
from tests.support.hotline import hotline
from tests.support.net import DEADLINE, Network, running_network, small_members
from tests.support.refusals import refusal_reason

DK, NL = "hotline-dk", "hotline-nl"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("batch") / "net", small_members(DK, NL)) as n:
        yield n


def _url(tag: str) -> str:
    return f"https://batch-{tag}-{os.urandom(4).hex()}.example.com/x"


def _call(net: Network, reports: list[report_pb2.Report]) -> list[pb.SubmitReportsResult]:
    with hotline(net, DK) as stub:
        reply = stub.SubmitReports(pb.SubmitReportsRequest(reports=reports), timeout=DEADLINE)
    return list(reply.results)


def test_each_report_gets_its_own_result_in_order(net: Network) -> None:
    same = _url("same")
    reports = [
        report_pb2.Report(url=_url("dk"), hosting_country="DK"),
        report_pb2.Report(url=_url("nl"), hosting_country="NL"),
        report_pb2.Report(url="not a url", hosting_country="DK"),
        report_pb2.Report(url=same, hosting_country="DK"),
        report_pb2.Report(url=same + "#fragment", hosting_country="DK"),
        report_pb2.Report(url=_url("origin"), hosting_country="DK", origin_member_id=NL),
    ]
    results = _call(net, reports)
    assert len(results) == len(reports)
    kinds = [r.WhichOneof("result") for r in results]
    assert kinds == ["receipt", "receipt", "refusal", "receipt", "receipt", "refusal"]
    outcomes = [r.receipt.outcome for r in results if r.HasField("receipt")]
    assert outcomes == [
        receipt_pb2.OUTCOME_ACCEPTED,
        receipt_pb2.OUTCOME_FORWARDED,
        receipt_pb2.OUTCOME_ACCEPTED,
        receipt_pb2.OUTCOME_DUPLICATE,  # the same canonical URL, one batch: joins the case
    ]
    assert results[1].receipt.forwarded_to == NL
    assert results[4].receipt.case_id == results[3].receipt.case_id
    assert results[2].refusal.reason == "INVALID_REPORT"  # as SubmitReport's ErrorInfo
    assert "url" in results[2].refusal.detail
    assert results[5].refusal.reason == "FOREIGN_ORIGIN"


def test_a_resent_report_gets_the_receipt_stored_the_first_time(net: Network) -> None:
    report_id = new_uuid7()
    report = report_pb2.Report(report_id=report_id, url=_url("again"), hosting_country="DK")
    report.created_at.FromDatetime(uuid7_time(report_id))
    [first] = _call(net, [report])
    [again] = _call(net, [report])
    assert first.receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED
    assert again.receipt == first.receipt  # not DUPLICATE: the same signed report


@pytest.mark.parametrize(("count", "why"), [(0, "REQUIRED_FIELD"), (1001, "BATCH_TOO_MANY_ITEMS")])
def test_an_empty_or_oversized_call_is_refused_whole(net: Network, count: int, why: str) -> None:
    reports = [report_pb2.Report(url=_url(str(i)), hosting_country="DK") for i in range(count)]
    assert refusal_reason(lambda: _call(net, reports)) == (grpc.StatusCode.INVALID_ARGUMENT, why)


def test_a_report_id_reused_for_other_content_is_refused(net: Network) -> None:
    report_id = new_uuid7()
    first = report_pb2.Report(report_id=report_id, url=_url("one"), hosting_country="DK")
    other = report_pb2.Report(report_id=report_id, url=_url("two"), hosting_country="DK")
    [taken] = _call(net, [first])
    [reused] = _call(net, [other])
    assert taken.receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED
    assert reused.receipt.outcome == receipt_pb2.OUTCOME_REJECTED, reused
    assert reused.receipt.case_id == ""  # says nothing of the first report's case
