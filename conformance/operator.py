"""The harness as the node's operator and as a liaison: client calls to
HotlineService and LiaisonService with the credentials the target file gives.

The §10 cases need the node under test to *author* reports (only its own
intake does that) and to show what it stored (GetCase, ListCaseReports).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from conformance.network import TlsIdentity, secure_channel
from conformance.registry import CaseSkippedError, fail
from hfp.v1 import (
    case_pb2,
    hotline_service_pb2,
    hotline_service_pb2_grpc,
    liaison_service_pb2_grpc,
    receipt_pb2,
    report_pb2,
)

DEADLINE = 10.0
T = TypeVar("T")


def rpc_code_of(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code a call ends with (OK when it succeeds)."""
    try:
        call()
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def expect_code(what: str, call: Callable[[], object], *codes: grpc.StatusCode) -> None:
    """Fail unless ``call`` ends with one of ``codes``."""
    got = rpc_code_of(call)
    if got not in codes:
        fail(f"{what}: expected {'/'.join(c.name for c in codes)}, got {got.name}")


class Operator:
    """HotlineService of the node under test, called with the operator's certificate."""

    def __init__(self, endpoint: str, tls: TlsIdentity) -> None:
        self.channel = secure_channel(endpoint, tls.channel_credentials())
        self.stub = hotline_service_pb2_grpc.HotlineServiceStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def submit(self, report: report_pb2.Report) -> receipt_pb2.Receipt:
        """SubmitReport: the node authors, signs and routes ``report``."""
        try:
            reply = self.stub.SubmitReport(
                hotline_service_pb2.SubmitReportRequest(report=report), timeout=DEADLINE
            )
        except grpc.RpcError as exc:
            raise CaseSkippedError(f"the operator API refused SubmitReport: {exc}") from exc
        return reply.receipt

    def case(self, *, case_id: str = "", report_id: str = "") -> case_pb2.Case | None:
        """GetCase by case or report id; None when NOT_FOUND."""
        request = (
            hotline_service_pb2.GetCaseRequest(case_id=case_id)
            if case_id
            else hotline_service_pb2.GetCaseRequest(report_id=report_id)
        )
        try:
            return self.stub.GetCase(request, timeout=DEADLINE).case
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def wait_case(
        self, probe: Callable[[case_pb2.Case], bool], report_id: str, limit: float = 8.0
    ) -> case_pb2.Case | None:
        """The case of ``report_id`` once ``probe`` holds for it (or the last seen)."""
        deadline = time.monotonic() + limit
        seen = None
        while time.monotonic() < deadline:
            seen = self.case(report_id=report_id)
            if seen is not None and probe(seen):
                return seen
            time.sleep(0.1)
        return seen


class Liaison:
    """LiaisonService of the node under test, called with a liaison's certificate."""

    def __init__(self, endpoint: str, tls: TlsIdentity) -> None:
        self.channel = secure_channel(endpoint, tls.channel_credentials())
        self.stub = liaison_service_pb2_grpc.LiaisonServiceStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()
