"""The console's one way to the node: HotlineService calls as the operator.

Every call carries the analyst's name (federation.wire.metadata) so that the
node records who acted; a refusal becomes a NodeRefusalError holding the node's
own reason code and detail, shown to the analyst as the node gave them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from federation.cli.connect import DEADLINE, Target, channel
from federation.wire.metadata import analyst_metadata
from federation.wire.times import to_timestamp
from hfp.v1 import case_pb2, receipt_pb2, report_pb2, status_pb2
from hfp.v1 import federation_service_pb2 as federation_pb2
from hfp.v1 import federation_service_pb2_grpc as federation_grpc
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc

R = TypeVar("R")


class NodeRefusalError(Exception):
    """The node refused or failed a call: its status code, reason and detail."""

    def __init__(self, code: str, reason: str, detail: str) -> None:
        super().__init__(f"{code} {reason}: {detail}")
        self.code = code
        self.reason = reason
        self.detail = detail


def refusal(exc: grpc.RpcError) -> NodeRefusalError:
    """The code, ErrorInfo reason (if any) and detail of a failed call."""
    code = exc.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        return NodeRefusalError(code.name, "NODE_UNAVAILABLE", "the node is not reachable")
    reason = ""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    info = error_details_pb2.ErrorInfo()
    for detail in status.details if status is not None else ():
        if detail.Unpack(info):
            reason = info.reason
    return NodeRefusalError(code.name, reason, exc.details() or "")


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """What the inbox asks for: filters and a page."""

    statuses: tuple[int, ...] = ()
    countries: tuple[str, ...] = ()
    overdue_only: bool = False
    url: str = ""
    page_size: int = 25
    page_token: str = ""


class NodeClient:
    """HotlineService of one node, over one channel kept open (open, use, close)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._exits = ExitStack()
        self._stub: pb_grpc.HotlineServiceStub | None = None
        self._federation: federation_grpc.FederationServiceStub | None = None

    @property
    def member_id(self) -> str:
        """The node's member id (the hotline the console belongs to)."""
        return self._target.member_id

    def open(self) -> None:
        """Open the channel."""
        opened = self._exits.enter_context(channel(self._target))
        self._stub = pb_grpc.HotlineServiceStub(opened)
        self._federation = federation_grpc.FederationServiceStub(opened)

    def close(self) -> None:
        """Close the channel."""
        self._exits.close()
        self._stub = None
        self._federation = None

    def _call(self, analyst: str, call: Callable[..., R], request: object) -> R:
        named = analyst_metadata(analyst) if analyst else ()
        metadata = (*self._target.metadata, *named)
        try:
            return call(request, timeout=DEADLINE, metadata=metadata)
        except grpc.RpcError as exc:
            raise refusal(exc) from exc

    @property
    def stub(self) -> pb_grpc.HotlineServiceStub:
        """The open stub (RuntimeError before open())."""
        if self._stub is None:
            raise RuntimeError("NodeClient.open() first")
        return self._stub

    def cases(self, analyst: str, query: CaseQuery) -> pb.ListCasesResponse:
        """One page of cases, newest first."""
        filters = case_pb2.CaseFilter(
            statuses=[status_pb2.CaseStatus.ValueType(s) for s in query.statuses],
            hosting_countries=list(query.countries),
            overdue_only=query.overdue_only,
            url=query.url,
        )
        request = pb.ListCasesRequest(
            filters=filters, page_size=query.page_size, page_token=query.page_token
        )
        return self._call(analyst, self.stub.ListCases, request)

    def case(self, analyst: str, some_id: str) -> pb.GetCaseResponse:
        """One case by its id or the id of one of its reports."""
        try:
            return self._call(analyst, self.stub.GetCase, pb.GetCaseRequest(case_id=some_id))
        except NodeRefusalError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND.name:
                raise
        return self._call(analyst, self.stub.GetCase, pb.GetCaseRequest(report_id=some_id))

    def record_status(
        self, analyst: str, case_id: str, status: int, note: str, new_country: str
    ) -> pb.RecordStatusResponse:
        """Record the next status of one of our cases."""
        request = pb.RecordStatusRequest(
            case_id=case_id,
            status=status_pb2.CaseStatus.ValueType(status),
            note=note,
            new_hosting_country=new_country,
        )
        return self._call(analyst, self.stub.RecordStatus, request)

    def submit(self, analyst: str, report: report_pb2.Report) -> receipt_pb2.Receipt:
        """Submit one report from our intake; the node's signed receipt says what became of it."""
        request = pb.SubmitReportRequest(report=report)
        return self._call(analyst, self.stub.SubmitReport, request).receipt

    def stats(
        self, analyst: str, since: datetime | None = None, until: datetime | None = None
    ) -> pb.GetStatsResponse:
        """Takedown statistics of the cases first reported in [since, until)."""
        request = pb.GetStatsRequest()
        if since is not None:
            request.since.CopyFrom(to_timestamp(since))
        if until is not None:
            request.until.CopyFrom(to_timestamp(until))
        return self._call(analyst, self.stub.GetStats, request)

    def authored(
        self, analyst: str, filters: pb.AuthoredReportFilter, page_size: int, page_token: str = ""
    ) -> pb.ListAuthoredReportsResponse:
        """One page of the reports this hotline sent, overdue first, with totals."""
        request = pb.ListAuthoredReportsRequest(
            filters=filters, page_size=page_size, page_token=page_token
        )
        return self._call(analyst, self.stub.ListAuthoredReports, request)

    def operations(self, analyst: str, refused_limit: int) -> pb.GetOperationsResponse:
        """Peers' outbox queues, refused items, roster and certificate lifetimes."""
        request = pb.GetOperationsRequest(refused_limit=refused_limit)
        return self._call(analyst, self.stub.GetOperations, request)

    def audit(
        self, analyst: str, log: pb.AuditLog.ValueType, who: str, since: datetime | None, limit: int
    ) -> pb.ListAuditResponse:
        """Both audits (or one), newest first, bounded."""
        request = pb.ListAuditRequest(log=log, who=who, limit=limit)
        if since is not None:
            request.since.CopyFrom(to_timestamp(since))
        return self._call(analyst, self.stub.ListAudit, request)

    def signed_roster(self) -> bytes:
        """The node's installed roster as signed (SignedRoster bytes), to check
        histories against; the caller verifies it against the root keys."""
        if self._federation is None:
            raise RuntimeError("NodeClient.open() first")
        reply = self._call("", self._federation.GetRoster, federation_pb2.GetRosterRequest())
        return bytes(reply.roster.SerializeToString())
