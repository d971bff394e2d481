"""The calls ``hfed case`` makes to a node (imported when a case command runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from federation.cli.case_text import summary
from federation.cli.connect import DEADLINE, Target, channel, rpc_failure
from hfp.v1 import case_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc

#: Most pages --all reads of one list (a million entries at 100 a page).
MAX_PAGES = 10_000


def fetch_case(target: Target, some_id: str, *, everything: bool) -> case_pb2.Case:
    """The case with that id, or holding the report with that id."""
    with channel(target) as ch:
        stub = pb_grpc.HotlineServiceStub(ch)
        try:
            found = get_case(stub, target.metadata, some_id)
            if everything:
                _fill(stub, target.metadata, found)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    return found


def get_case(stub: pb_grpc.HotlineServiceStub, metadata: Any, some_id: str) -> case_pb2.Case:
    """GetCase by case id, then (if none) by report id."""
    try:
        return stub.GetCase(
            pb.GetCaseRequest(case_id=some_id), timeout=DEADLINE, metadata=metadata
        ).case
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.NOT_FOUND:
            raise
    return stub.GetCase(
        pb.GetCaseRequest(report_id=some_id), timeout=DEADLINE, metadata=metadata
    ).case


def _fill(stub: pb_grpc.HotlineServiceStub, metadata: Any, case: case_pb2.Case) -> None:
    """Replace the case's bounded lists with every report and update, paged."""
    if case.report_count > len(case.reports):
        reports = _pages(
            _pager(stub.ListCaseReports, pb.ListCaseReportsRequest, case.case_id, metadata)
        )
        del case.reports[:]
        case.reports.extend(r for page in reports for r in page.reports)
    if case.history_count > len(case.history):
        # The case's own updates (in a reporter's view of a moved case, the
        # cases before the move are not paged here).
        history = _pages(
            _pager(stub.ListCaseHistory, pb.ListCaseHistoryRequest, case.case_id, metadata)
        )
        del case.history[:], case.history_envelopes[:]
        for page in history:
            case.history.extend(page.history)
            case.history_envelopes.extend(page.history_envelopes)


Paged = TypeVar("Paged", pb.ListCaseReportsResponse, pb.ListCaseHistoryResponse)


def _pager(
    method: Callable[..., Paged], request: Callable[..., Any], case_id: str, metadata: Any
) -> Callable[[str], Paged]:
    """One page of a case's list at a page token, as _pages calls it."""
    return lambda token: method(
        request(case_id=case_id, page_size=100, page_token=token),
        timeout=DEADLINE,
        metadata=metadata,
    )


def _pages(call: Callable[[str], Paged]) -> list[Paged]:
    """Every page of a list, following next_page_token (at most MAX_PAGES)."""
    pages: list[Paged] = []
    token = ""
    for _ in range(MAX_PAGES):
        pages.append(call(token))
        token = pages[-1].next_page_token
        if not token:
            break
    return pages


def list_cases(
    target: Target, filters: case_pb2.CaseFilter, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` case rows, newest first, and whether more exist."""
    rows: list[dict[str, Any]] = []
    token = ""
    with channel(target) as ch:
        stub = pb_grpc.HotlineServiceStub(ch)
        while len(rows) < limit:
            request = pb.ListCasesRequest(
                filters=filters, page_size=min(limit - len(rows), 500), page_token=token
            )
            try:
                page = stub.ListCases(request, timeout=DEADLINE, metadata=target.metadata)
            except grpc.RpcError as exc:
                raise rpc_failure(exc, target) from exc
            rows.extend(summary(c) for c in page.cases)
            token = page.next_page_token
            if not token:
                break
    return rows, bool(token)


def status_value(name: str) -> status_pb2.CaseStatus.ValueType:
    """The wire value of a status the CLI spells ``notice_sent``."""
    return status_pb2.CaseStatus.Value(f"CASE_STATUS_{name.upper()}")


def record_status(target: Target, request: pb.RecordStatusRequest) -> pb.RecordStatusResponse:
    """Record a status; a report id (as `case show` takes) names its case."""
    with channel(target) as ch:
        stub = pb_grpc.HotlineServiceStub(ch)
        try:
            try:
                return stub.RecordStatus(request, timeout=DEADLINE, metadata=target.metadata)
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.NOT_FOUND:
                    raise
                by_report = pb.GetCaseRequest(report_id=request.case_id)
                found = stub.GetCase(by_report, timeout=DEADLINE, metadata=target.metadata).case
                request.case_id = found.case_id
                return stub.RecordStatus(request, timeout=DEADLINE, metadata=target.metadata)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
