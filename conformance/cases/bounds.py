"""Section 10.4 (bounded messages), 10.5 (numbers in requests) and the liaison view.

A case with more reports than one message may carry is made by delivering
101 reports by the harness for one URL in one batch; the node's operator
API (GetCase, ListCaseReports) and a liaison of the node's jurisdiction
(ListCaseReports, WatchReferrals) then show how the node bounds it.
"""

from __future__ import annotations

import grpc

from conformance.cases.authored import shared_owned
from conformance.context import Context
from conformance.items import ACCEPTED, DUPLICATE
from conformance.operator import DEADLINE, expect_code
from conformance.registry import case, fail
from hfp.v1 import (
    case_pb2,
    hotline_service_pb2,
    liaison_service_pb2,
)

#: Reports in the big case: one more than a Case may list.
BIG = 101
MAX_LISTED = 100
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
#: A page token or cursor no node could have made.
GARBAGE = "%%not-a-token%%"


def big_case(ctx: Context) -> tuple[str, list[str]]:
    """(case id, report ids in delivery order) of a case holding BIG reports (once)."""

    def make() -> tuple[str, list[str]]:
        f = ctx.factory
        url = f.url("bnd-big")
        specs = [f.report_spec(f.report("bnd-big", url=url), f.accepted_here()) for _ in range(BIG)]
        # The opener alone, then the rest in one batch (whose order among
        # themselves a node may choose: one transaction).
        receipts = ctx.deliver_ok([specs[0].item])
        receipts += ctx.deliver_ok([s.item for s in specs[1:]], timeout=30.0)
        case_ids = set()
        for spec, envelope in zip(specs, receipts, strict=True):
            receipt = ctx.check_receipt(envelope, spec.item.envelope)
            if receipt.outcome not in (ACCEPTED, DUPLICATE):
                fail(f"report {spec.item_id} of the big case was not filed")
            case_ids.add(receipt.case_id)
        if len(case_ids) != 1:
            fail(f"{BIG} reports of one URL landed in {len(case_ids)} cases")
        return case_ids.pop(), [s.item_id for s in specs]

    return ctx.once("bnd-big", make)


def _list(
    ctx: Context, case_id: str, size: int = 0, token: str = "", *, police: bool = False
) -> object:
    """ListCaseReports as the operator (or, with ``police``, as the liaison)."""
    if police:
        request = liaison_service_pb2.LiaisonServiceListCaseReportsRequest(
            case_id=case_id, page_size=size, page_token=token
        )
        return ctx.liaison().stub.ListCaseReports(request, timeout=DEADLINE)
    return ctx.operator().stub.ListCaseReports(
        hotline_service_pb2.ListCaseReportsRequest(
            case_id=case_id, page_size=size, page_token=token
        ),
        timeout=DEADLINE,
    )


@case("BND-001", "10.4", "GetCase of a 101-report case lists at most 100 reports with report_count")
def get_case_bounded(ctx: Context) -> None:
    case_id, ids = big_case(ctx)
    seen = ctx.operator().case(case_id=case_id)
    if seen is None:
        fail(f"GetCase({case_id}) NOT_FOUND")
    if len(seen.reports) > MAX_LISTED or seen.report_count != BIG:
        fail(
            f"expected <= 100 reports and report_count {BIG}, got {len(seen.reports)} and "
            f"{seen.report_count}"
        )
    listed = [r.report_id for r in seen.reports]
    if not listed or listed[0] != ids[0] or len(set(listed)) != len(listed):
        fail("the listed reports do not start with the opener, or repeat one")
    if not set(listed) <= set(ids):
        fail("GetCase lists reports that are not in the case")


@case("BND-002", "10.4", "ListCaseReports pages through every report once, the opener first")
def list_case_reports(ctx: Context) -> None:
    case_id, ids = big_case(ctx)
    got: list[str] = []
    token = ""
    for _ in range(10):
        page = _list(ctx, case_id, 40, token)
        assert isinstance(page, hotline_service_pb2.ListCaseReportsResponse)
        got += [r.report_id for r in page.reports]
        token = page.next_page_token
        if not token:
            break
    if sorted(got) != sorted(ids) or got[0] != ids[0]:
        fail(f"expected the {BIG} reports once each, opener first; got {len(got)}")


@case("BND-003", "10.4", "ListCaseReports with a huge page_size serves at most 100 reports")
def list_page_cap(ctx: Context) -> None:
    case_id, _ = big_case(ctx)
    page = _list(ctx, case_id, 100000)
    assert isinstance(page, hotline_service_pb2.ListCaseReportsResponse)
    if len(page.reports) > MAX_LISTED or page.report_count != BIG:
        fail(
            f"expected <= 100 reports, report_count {BIG}; got {len(page.reports)}, "
            f"{page.report_count}"
        )


@case(
    "BND-004",
    "10.4",
    "ListCaseReports with a negative page_size gets INVALID_ARGUMENT",
    reject=True,
)
def list_negative(ctx: Context) -> None:
    case_id, _ = big_case(ctx)
    expect_code("ListCaseReports(page_size=-1)", lambda: _list(ctx, case_id, -1), INVALID)


@case(
    "BND-005",
    "10.5",
    "ListCaseReports with a malformed page_token gets INVALID_ARGUMENT",
    reject=True,
)
def list_bad_token(ctx: Context) -> None:
    case_id, _ = big_case(ctx)
    expect_code(
        "ListCaseReports(page_token=garbage)",
        lambda: _list(ctx, case_id, 10, GARBAGE),
        INVALID,
    )


@case("BND-006", "10.5", "a page_token made for another case gets INVALID_ARGUMENT", reject=True)
def list_foreign_token(ctx: Context) -> None:
    case_id, _ = big_case(ctx)
    page = _list(ctx, case_id, 10)
    assert isinstance(page, hotline_service_pb2.ListCaseReportsResponse)
    other = shared_owned(ctx)
    expect_code(
        "ListCaseReports(token of another case)",
        lambda: _list(ctx, other.case_id, 10, page.next_page_token),
        INVALID,
        NOT_FOUND,
    )


@case("BND-007", "10.4", "ListCaseReports of an unknown case gets NOT_FOUND", reject=True)
def list_unknown(ctx: Context) -> None:
    expect_code("ListCaseReports(unknown)", lambda: _list(ctx, ctx.factory.new_id()), NOT_FOUND)


def _stats(ctx: Context, seconds: int, nanos: int) -> object:
    request = hotline_service_pb2.GetStatsRequest()
    request.since.seconds = seconds
    request.since.nanos = nanos
    return ctx.operator().stub.GetStats(request, timeout=DEADLINE)


def _timestamp_case(number: int, seconds: int, nanos: int, what: str) -> None:
    @case(f"NUM-{number:03d}", "10.5", f"GetStats with {what} gets INVALID_ARGUMENT", reject=True)
    def run(ctx: Context) -> None:
        expect_code(f"GetStats(since={what})", lambda: _stats(ctx, seconds, nanos), INVALID)


for _number, (_seconds, _nanos, _what) in enumerate(
    (
        (253402300800, 0, "a time after 9999-12-31"),
        (-62135596801, 0, "a time before year 1"),
        (0, 1_000_000_000, "nanos of 10^9"),
        (0, -1, "negative nanos"),
    ),
    start=5,
):
    _timestamp_case(_number, _seconds, _nanos, _what)


@case("NUM-009", "10.5", "ListCases with a malformed page_token gets INVALID_ARGUMENT", reject=True)
def cases_bad_token(ctx: Context) -> None:
    stub = ctx.operator().stub
    expect_code(
        "ListCases(page_token=garbage)",
        lambda: stub.ListCases(
            hotline_service_pb2.ListCasesRequest(page_token=GARBAGE), timeout=DEADLINE
        ),
        INVALID,
    )


# --- the liaison's view ----------------------------------------------------------------------


@case("LIA-001", "10.4", "a liaison's ListCaseReports on a referral pages at most 100 reports")
def liaison_pages(ctx: Context) -> None:
    case_id, _ = big_case(ctx)
    page = _list(ctx, case_id, 1000, police=True)
    assert isinstance(page, liaison_service_pb2.LiaisonServiceListCaseReportsResponse)
    if not 0 < len(page.reports) <= MAX_LISTED or not page.next_page_token:
        fail(f"expected a page of at most 100 reports and a next token, got {len(page.reports)}")


@case("LIA-002", "4", "a liaison's ListCaseReports of an unknown case gets NOT_FOUND", reject=True)
def liaison_unknown(ctx: Context) -> None:
    expect_code(
        "liaison ListCaseReports(unknown)",
        lambda: _list(ctx, ctx.factory.new_id(), police=True),
        NOT_FOUND,
    )


@case(
    "LIA-003",
    "4",
    "a liaison's ListCaseReports of another member's case (XA) gets NOT_FOUND",
    reject=True,
)
def liaison_foreign(ctx: Context) -> None:
    other = shared_owned(ctx)
    expect_code(
        "liaison ListCaseReports(case of XA)",
        lambda: _list(ctx, other.case_id, police=True),
        NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
    )


@case("LIA-004", "10.5", "a liaison's malformed page_token gets INVALID_ARGUMENT", reject=True)
def liaison_bad_token(ctx: Context) -> None:
    case_id, _ = big_case(ctx)
    expect_code(
        "liaison ListCaseReports(page_token=garbage)",
        lambda: _list(ctx, case_id, 10, GARBAGE, police=True),
        INVALID,
    )


@case(
    "LIA-005", "4", "a hotline's certificate gets PERMISSION_DENIED on LiaisonService", reject=True
)
def liaison_as_hotline(ctx: Context) -> None:
    from conformance.operator import Liaison  # noqa: PLC0415

    client = Liaison(ctx.target.endpoint, ctx.tls)
    try:
        expect_code(
            "ListReferrals as a hotline",
            lambda: client.stub.ListReferrals(
                liaison_service_pb2.ListReferralsRequest(), timeout=DEADLINE
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
    finally:
        client.close()


@case(
    "LIA-006", "10.4", "WatchReferrals events carry no report list; REPORT_JOINED only its report"
)
def events_bounded(ctx: Context) -> None:
    case_id, ids = big_case(ctx)
    stream = ctx.liaison().stub.WatchReferrals(
        liaison_service_pb2.WatchReferralsRequest(), timeout=8.0
    )
    joined = 0
    try:
        for message in stream:
            event = message.event
            if event.case_id != case_id:
                continue
            if event.case.reports:
                fail(
                    f"a {case_pb2.CaseEventKind.Name(event.kind)} event lists "
                    f"{len(event.case.reports)} reports"
                )
            if event.kind == case_pb2.CASE_EVENT_KIND_REPORT_JOINED:
                joined += 1
                if event.report.report_id not in ids:
                    fail("a REPORT_JOINED event carries a report not of this case")
            if joined >= BIG - 1:
                break
    except grpc.RpcError as exc:
        if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        if isinstance(stream, grpc.Future):
            stream.cancel()  # type: ignore[no-untyped-call]
    if joined < BIG - 1:
        fail(f"expected {BIG - 1} REPORT_JOINED events for the case, saw {joined}")


def _history_case(number: int, size: int, token: str, what: str) -> None:
    @case(
        f"NUM-{number:03d}",
        "10.5",
        f"ListCaseHistory with {what} gets INVALID_ARGUMENT",
        reject=True,
    )
    def run(ctx: Context) -> None:
        case_id, _ = big_case(ctx)
        stub = ctx.operator().stub
        expect_code(
            f"ListCaseHistory({what})",
            lambda: stub.ListCaseHistory(
                hotline_service_pb2.ListCaseHistoryRequest(
                    case_id=case_id, page_size=size, page_token=token
                ),
                timeout=DEADLINE,
            ),
            INVALID,
        )


_history_case(11, -5, "", "a negative page_size")
_history_case(12, 10, GARBAGE, "a malformed page_token")


@case(
    "LIA-007",
    "10.5",
    "a liaison's ListReferrals with a malformed page_token: INVALID_ARGUMENT",
    reject=True,
)
def referrals_bad_token(ctx: Context) -> None:
    stub = ctx.liaison().stub
    expect_code(
        "ListReferrals(page_token=garbage)",
        lambda: stub.ListReferrals(
            liaison_service_pb2.ListReferralsRequest(page_token=GARBAGE), timeout=DEADLINE
        ),
        INVALID,
    )


@case(
    "LIA-008",
    "10.5",
    "a liaison's WatchReferrals with a malformed cursor: INVALID_ARGUMENT",
    reject=True,
)
def watch_bad_cursor(ctx: Context) -> None:
    stub = ctx.liaison().stub

    def first() -> object:
        stream = stub.WatchReferrals(
            liaison_service_pb2.WatchReferralsRequest(cursor=GARBAGE), timeout=5.0
        )
        return next(iter(stream))

    expect_code("WatchReferrals(cursor=garbage)", first, INVALID)
