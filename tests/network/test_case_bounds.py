"""Finding 4 of issue 16: a case with thousands of reports must not make the
case views fail or grow (spec §10.4).

A hostile member files 2,400 duplicates of one URL at the responsible node
in three Deliver calls. Every view of that case (GetCase, the first page of
ListCases and ListReferrals, each WatchReferrals event) must stay under a
fixed size, say how many reports there are, and ListCaseReports must page
through all of them exactly once, on both services, the liaison's calls
audited.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing

import grpc
import pytest

from federation.core.report import Report
from hfp.v1 import case_pb2
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    deliver,
    item,
    make_report,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

OWNER, FILER, POLICE = "hotline-dk", "hotline-de", "police-dk"
#: The opening report, then this many duplicates in batches of BATCH.
DUPLICATES, BATCH = 2400, 800
TOTAL = DUPLICATES + 1
#: No response or stream message about the case may be larger than this,
#: however many reports it holds (today's code sends 34 MB).
MAX_MESSAGE = 512 * 1024


@dataclasses.dataclass(frozen=True)
class Flooded:
    """The network and the case the duplicates went into."""

    net: Network
    case_id: str
    report_ids: frozenset[str]


@pytest.fixture(scope="module")
def flooded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flooded]:
    members = small_members(OWNER)
    with running_network(tmp_path_factory.mktemp("bounds") / "net", members) as net:
        key = net.signing_key(FILER)
        url = "https://flood.example.com/one/location"

        def report() -> Report:
            return make_report(FILER, "DK", url=url)

        reports = [report() for _ in range(TOTAL)]
        case_ids: set[str] = set()
        with net.stub(FILER, OWNER) as stub:
            # The first report opens the case on its own (its RECEIVED update
            # then lists one report id), then three calls of duplicates.
            batches = [reports[:1]] + [
                reports[1 + i : 1 + i + BATCH] for i in range(0, DUPLICATES, BATCH)
            ]
            for batch in batches:
                items = [item(sign_report(r, key)) for r in batch]
                for signed in deliver(stub, items, timeout=BULK_DEADLINE):
                    case_ids.add(verify_receipt(net, signed).case_id)
        assert len(case_ids) == 1
        yield Flooded(net, case_ids.pop(), frozenset(r.report_id for r in reports))


def _channel(flooded: Flooded, caller: str) -> AbstractContextManager[grpc.Channel]:
    """``caller``'s channel to the responsible node (the client's usual limits)."""
    return flooded.net.channel(caller, OWNER)


def _assert_bounded_case(case: case_pb2.Case, flooded: Flooded) -> None:
    assert case.case_id == flooded.case_id
    assert case.report_count == TOTAL
    assert 0 < len(case.reports) <= 100
    assert {r.report_id for r in case.reports} <= flooded.report_ids


def test_get_case_is_bounded_and_counts_every_report(flooded: Flooded) -> None:
    with _channel(flooded, OWNER) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        response = stub.GetCase(hpb.GetCaseRequest(case_id=flooded.case_id), timeout=DEADLINE)
    assert response.ByteSize() < MAX_MESSAGE
    _assert_bounded_case(response.case, flooded)
    assert len(response.case.reports) == 100


def test_first_pages_of_cases_and_referrals_are_bounded(flooded: Flooded) -> None:
    with _channel(flooded, OWNER) as channel:
        cases = hgrpc.HotlineServiceStub(channel).ListCases(
            hpb.ListCasesRequest(), timeout=DEADLINE
        )
    with _channel(flooded, POLICE) as channel:
        referrals = lgrpc.LiaisonServiceStub(channel).ListReferrals(
            lpb.ListReferralsRequest(), timeout=DEADLINE
        )
    for page in (cases, referrals):
        assert page.ByteSize() < MAX_MESSAGE
        [case] = [c for c in page.cases if c.case_id == flooded.case_id]
        _assert_bounded_case(case, flooded)


def test_watch_from_the_start_sends_small_events_with_the_joined_report(
    flooded: Flooded,
) -> None:
    joined: list[str] = []
    with _channel(flooded, POLICE) as channel:
        stream = lgrpc.LiaisonServiceStub(channel).WatchReferrals(
            lpb.WatchReferralsRequest(cursor=""), timeout=60
        )
        for response in stream:
            assert response.ByteSize() < MAX_MESSAGE
            event = response.event
            if event.case_id != flooded.case_id:
                continue
            assert not event.case.reports and event.case.report_count >= 1
            if event.kind in (
                case_pb2.CASE_EVENT_KIND_CASE_OPENED,
                case_pb2.CASE_EVENT_KIND_REPORT_JOINED,
            ):
                joined.append(event.report.report_id)
            if len(joined) == TOTAL:
                stream.cancel()  # type: ignore[attr-defined]
                break
    assert len(joined) == TOTAL and set(joined) == flooded.report_ids


def _page_all(
    call: Callable[[str], tuple[Sequence[case_pb2.CaseReport], str, int, int]],
) -> list[str]:
    """Every report id ListCaseReports returns, following the tokens (bounded)."""
    seen: list[str] = []
    token = ""
    for _ in range(TOTAL):
        reports, token, count, size = call(token)
        assert size < MAX_MESSAGE and count == TOTAL and 0 < len(reports) <= 100
        seen.extend(r.report_id for r in reports)
        if not token:
            return seen
    raise AssertionError("ListCaseReports did not reach its last page")


def test_list_case_reports_pages_through_every_report_once(flooded: Flooded) -> None:
    with _channel(flooded, OWNER) as channel:
        stub = hgrpc.HotlineServiceStub(channel)

        def hotline_page(token: str) -> tuple[Sequence[case_pb2.CaseReport], str, int, int]:
            r = stub.ListCaseReports(
                hpb.ListCaseReportsRequest(
                    case_id=flooded.case_id, page_size=100, page_token=token
                ),
                timeout=DEADLINE,
            )
            return r.reports, r.next_page_token, r.report_count, r.ByteSize()

        seen = _page_all(hotline_page)
    assert len(seen) == TOTAL and set(seen) == flooded.report_ids

    with _channel(flooded, POLICE) as channel:
        police = lgrpc.LiaisonServiceStub(channel)

        def liaison_page(token: str) -> tuple[Sequence[case_pb2.CaseReport], str, int, int]:
            r = police.ListCaseReports(
                lpb.LiaisonServiceListCaseReportsRequest(
                    case_id=flooded.case_id, page_size=0, page_token=token
                ),
                timeout=DEADLINE,
            )
            return r.reports, r.next_page_token, r.report_count, r.ByteSize()

        seen = _page_all(liaison_page)
    assert len(seen) == TOTAL and set(seen) == flooded.report_ids
    pages = -(-TOTAL // 50)  # the default page size
    uri = f"file:{flooded.net.db_path(OWNER)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        rows = conn.execute(
            "SELECT case_ids, outcome FROM audit_log WHERE member_id = ? AND rpc = ?",
            (POLICE, "ListCaseReports"),
        ).fetchall()
    assert len(rows) == pages
    assert all(json.loads(ids) == [flooded.case_id] and ok == "OK" for ids, ok in rows)


def test_list_case_reports_refuses_bad_requests(flooded: Flooded) -> None:
    def code(call: Callable[[], object]) -> grpc.StatusCode:
        try:
            call()
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    with _channel(flooded, OWNER) as channel:
        stub = hgrpc.HotlineServiceStub(channel)

        def ask(**fields: object) -> object:
            request = hpb.ListCaseReportsRequest(case_id=flooded.case_id, **fields)  # type: ignore[arg-type]
            return stub.ListCaseReports(request, timeout=DEADLINE)

        assert code(lambda: ask(page_size=-1)) is grpc.StatusCode.INVALID_ARGUMENT
        assert code(lambda: ask(page_token="not-a-token")) is grpc.StatusCode.INVALID_ARGUMENT
        other = stub.ListCaseReports(
            hpb.ListCaseReportsRequest(case_id=flooded.case_id, page_size=5), timeout=DEADLINE
        )
        missing = hpb.ListCaseReportsRequest(case_id="00000000-0000-0000-0000-000000000000")
        assert (
            code(lambda: stub.ListCaseReports(missing, timeout=DEADLINE))
            is grpc.StatusCode.NOT_FOUND
        )
        # A token is bound to its case: it cannot be replayed against another.
        moved = hpb.ListCaseReportsRequest(
            case_id="00000000-0000-0000-0000-000000000000", page_token=other.next_page_token
        )
        assert code(lambda: stub.ListCaseReports(moved, timeout=DEADLINE)) in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
        )


def test_case_show_says_how_many_reports_and_pages_through_all(flooded: Flooded) -> None:
    hfed = [sys.executable, "-m", "federation.cli.main", "case", "show"]
    where = ["--devnet", str(flooded.net.directory), "--member", OWNER, flooded.case_id]
    shown = subprocess.run(
        [*hfed, *where], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert f"reports (100 of {TOTAL}" in shown and "--all" in shown
    everything = subprocess.run(
        [*hfed, *where, "--all"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert f"reports ({TOTAL}):" in everything
    assert all(report_id in everything for report_id in flooded.report_ids)
