"""What happened to what we sent: the reporter's list across a forward and a MOVED.

Three real nodes. A = hotline-dk sends four reports: two hosted in NL go to
B = hotline-nl, one hosted in DK is filed at A itself, and one more goes to
B and stays at RECEIVED. B takes one down, and moves the other to DE, where
C = hotline-de takes it over and sends a notice that goes unanswered. A's
deadline is a few seconds, so that notice is overdue when A lists its
reports: A must show C's case and status for the moved report (not B's),
flag exactly that report overdue, and filter, page and total correctly, in
the RPC, in ``hfed report list`` and in the reporter's side of GetStats.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from click.testing import CliRunner

from federation.cli.main import cli
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import status_pb2
from tests.support.hotline import hotline, record, submit_url, wait_history
from tests.support.net import DEADLINE, Network, create_network, small_members, start, stop

A, B, C = "hotline-dk", "hotline-nl", "hotline-de"
S = status_pb2
#: A's takedown deadline: 3.6 seconds.
DEADLINE_HOURS = 0.001


@dataclass(frozen=True)
class Sent:
    """The four reports A sent, and the cases they ended in."""

    moved: str
    removed: str
    local: str
    waiting: str
    moved_case_at_c: str
    removed_case_at_b: str
    local_case: str


def _take_down(net: Network, at: str, case_id: str, *statuses: int) -> None:
    for status in statuses:
        record(net, at, case_id, status)


def _send_and_handle(net: Network) -> Sent:
    tag = os.urandom(4).hex()
    moved = submit_url(net, A, f"https://moved.example.net/{tag}", "NL").item_id
    removed = submit_url(net, A, f"https://removed.example.net/{tag}", "NL").item_id
    local = submit_url(net, A, f"https://local.example.dk/{tag}", "DK")
    waiting = submit_url(net, A, f"https://waiting.example.net/{tag}", "NL").item_id
    at_b = wait_history(net, B, moved, 1).case_id
    record(net, B, at_b, S.CASE_STATUS_MOVED, new_hosting_country="DE")
    at_c = wait_history(net, C, moved, 1).case_id
    _take_down(net, C, at_c, S.CASE_STATUS_ASSESSED_ILLEGAL, S.CASE_STATUS_NOTICE_SENT)
    removed_case = wait_history(net, B, removed, 1).case_id
    _take_down(
        net,
        B,
        removed_case,
        S.CASE_STATUS_ASSESSED_ILLEGAL,
        S.CASE_STATUS_NOTICE_SENT,
        S.CASE_STATUS_CONTENT_REMOVED,
    )
    _take_down(net, A, local.case_id, S.CASE_STATUS_ASSESSED_ILLEGAL)
    # A holds B's RECEIVED and MOVED, then C's RECEIVED, ASSESSED, NOTICE_SENT.
    wait_history(net, A, moved, 5)
    wait_history(net, A, removed, 4)
    wait_history(net, A, waiting, 1)
    time.sleep(DEADLINE_HOURS * 3600 + 1.0)  # C's notice is now past A's deadline
    return Sent(moved, removed, local.item_id, waiting, at_c, removed_case, local.case_id)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, Sent]]:
    network = create_network(tmp_path_factory.mktemp("authored") / "net", small_members(A, B, C))
    config = network.directory / "members" / A / "node.toml"
    config.write_text(
        config.read_text() + f"\n[takedown]\noverdue_after_hours = {DEADLINE_HOURS}\n"
    )
    start(network.directory)
    try:
        yield network, _send_and_handle(network)
    finally:
        stop(network.directory)


def _list(net: Network, **request: object) -> pb.ListAuthoredReportsResponse:
    with hotline(net, A) as stub:
        return stub.ListAuthoredReports(
            pb.ListAuthoredReportsRequest(**request),  # type: ignore[arg-type]
            timeout=DEADLINE,
        )


def _counts(reply: pb.ListAuthoredReportsResponse) -> dict[int, int]:
    return {c.status: c.count for c in reply.counts_by_status}


def test_moved_report_shows_the_new_owner_its_case_and_the_overdue_flag(
    net: tuple[Network, Sent],
) -> None:
    network, sent = net
    reply = _list(network)
    lines = {r.report_id: r for r in reply.reports}
    assert set(lines) == {sent.moved, sent.removed, sent.local, sent.waiting}
    moved = lines[sent.moved]
    assert (moved.responsible_member_id, moved.case_id) == (C, sent.moved_case_at_c)
    assert moved.status == S.CASE_STATUS_NOTICE_SENT and moved.overdue
    assert (moved.first_owner_member_id, moved.moves, moved.hosting_country) == (B, 1, "DE")
    assert moved.canonical_url.startswith("https://moved.example.net/")
    removed = lines[sent.removed]
    assert (removed.responsible_member_id, removed.case_id) == (B, sent.removed_case_at_b)
    assert removed.status == S.CASE_STATUS_CONTENT_REMOVED and not removed.overdue
    assert removed.delivery == pb.DELIVERY_DELIVERED and removed.hosting_country == "NL"
    local = lines[sent.local]
    assert (local.responsible_member_id, local.case_id) == (A, sent.local_case)
    assert (
        local.status == S.CASE_STATUS_ASSESSED_ILLEGAL and local.delivery == pb.DELIVERY_FILED_HERE
    )
    assert lines[sent.waiting].status == S.CASE_STATUS_RECEIVED
    # Overdue first, then newest sent first.
    assert [r.report_id for r in reply.reports] == [
        sent.moved,
        sent.waiting,
        sent.local,
        sent.removed,
    ]
    assert reply.total_count == 4 and reply.overdue_count == 1 and not reply.next_page_token
    assert _counts(reply) == {
        S.CASE_STATUS_RECEIVED: 1,
        S.CASE_STATUS_ASSESSED_ILLEGAL: 1,
        S.CASE_STATUS_NOTICE_SENT: 1,
        S.CASE_STATUS_CONTENT_REMOVED: 1,
    }
    assert all(r.since_sent.ToTimedelta().total_seconds() > 0 for r in reply.reports)


def test_filters_select_and_total_only_what_they_name(net: tuple[Network, Sent]) -> None:
    network, sent = net
    overdue = _list(network, filters=pb.AuthoredReportFilter(overdue_only=True))
    assert [r.report_id for r in overdue.reports] == [sent.moved] and overdue.total_count == 1
    removed = _list(
        network, filters=pb.AuthoredReportFilter(statuses=[S.CASE_STATUS_CONTENT_REMOVED])
    )
    assert [r.report_id for r in removed.reports] == [sent.removed]
    assert _counts(removed) == {S.CASE_STATUS_CONTENT_REMOVED: 1}
    moved_to = _list(network, filters=pb.AuthoredReportFilter(hosting_countries=["DE"]))
    assert [r.report_id for r in moved_to.reports] == [sent.moved]
    nl = _list(network, filters=pb.AuthoredReportFilter(hosting_countries=["NL"]))
    assert {r.report_id for r in nl.reports} == {sent.removed, sent.waiting}
    later = pb.AuthoredReportFilter()
    later.sent_since.GetCurrentTime()
    assert _list(network, filters=later).total_count == 0


def test_pages_cover_the_list_once_with_the_same_totals(net: tuple[Network, Sent]) -> None:
    network, _ = net
    whole = _list(network)
    seen, token, pages = [], "", 0
    while True:
        page = _list(network, page_size=1, page_token=token)
        assert page.total_count == 4 and _counts(page) == _counts(whole)
        seen += [r.report_id for r in page.reports]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [r.report_id for r in whole.reports] and pages == 4


def test_bad_token_window_and_foreign_caller_are_refused(net: tuple[Network, Sent]) -> None:
    network, _ = net
    with pytest.raises(grpc.RpcError) as caught:
        _list(network, page_token="bm90LWEtdG9rZW4=")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    backwards = pb.AuthoredReportFilter()
    backwards.sent_since.GetCurrentTime()
    backwards.sent_until.FromSeconds(backwards.sent_since.seconds - 60)
    with pytest.raises(grpc.RpcError) as caught:
        _list(network, filters=backwards)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    # Operator only: another member's certificate is refused.
    with network.channel(B, A) as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.HotlineServiceStub(channel).ListAuthoredReports(
            pb.ListAuthoredReportsRequest(), timeout=DEADLINE
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_stats_give_the_reporter_side(net: tuple[Network, Sent]) -> None:
    network, _ = net
    with hotline(network, A) as stub:
        stats = stub.GetStats(pb.GetStatsRequest(), timeout=DEADLINE)
    ours = stats.reporter
    assert ours.report_count == 4 and ours.removed_count == 1 and ours.overdue_count == 1
    assert ours.removed_within_72h_share == 1.0
    where = pb.AuthoredReportFilter(statuses=[S.CASE_STATUS_CONTENT_REMOVED])
    removed = _list(network, filters=where).reports[0]
    took = ours.takedown_median.ToTimedelta()
    assert ours.takedown_p90.ToTimedelta() == took
    assert 0 < took.total_seconds() <= removed.since_sent.ToTimedelta().total_seconds()
    assert {c.status: c.count for c in ours.counts_by_status} == _counts(_list(network))
    # The responsible side is unchanged: A owns only its local case.
    assert sum(c.count for c in stats.counts_by_status) == 1


def _hfed(net: Network, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["report", "list", "--devnet", str(net.directory), "--member", A, *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_lists_in_every_format(net: tuple[Network, Sent]) -> None:
    network, sent = net
    data = json.loads(_hfed(network, "--format", "json"))
    first = data["reports"][0]
    assert first["report_id"] == sent.moved
    assert first["overdue"] is True and first["moves"] == 1 and first["case_id"]
    assert first["status"] == "notice_sent" and first["responsible"] == C
    assert isinstance(first["age_seconds"], int) and first["sent"].endswith("Z")
    assert data["total"] == 4 and data["overdue"] == 1 and data["next_page_token"] == ""
    assert data["by_status"] == {
        "received": 1,
        "assessed_illegal": 1,
        "notice_sent": 1,
        "content_removed": 1,
    }
    rows = list(csv.DictReader(io.StringIO(_hfed(network, "--format", "csv", "--overdue"))))
    assert [r["report_id"] for r in rows] == [sent.moved]
    table = _hfed(network, "--limit", "2")
    assert "4 report(s) match" in table and "overdue 1" in table
    assert "next page: --page-token" in table
    token = table.rsplit("--page-token ", 1)[1].split()[0]
    rest = json.loads(_hfed(network, "--limit", "2", "--page-token", token, "--format", "json"))
    assert len(rest["reports"]) == 2 and rest["next_page_token"] == ""
    every = json.loads(_hfed(network, "--limit", "1", "--all", "--format", "json"))
    assert [r["report_id"] for r in every["reports"]] == [r["report_id"] for r in data["reports"]]
    removed = json.loads(_hfed(network, "--status", "content_removed", "--format", "json"))
    assert [r["report_id"] for r in removed["reports"]] == [sent.removed]
    assert json.loads(_hfed(network, "--country", "de", "--format", "json"))["total"] == 1
