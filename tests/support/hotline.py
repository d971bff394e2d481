"""A hotline's own operator calls (HotlineService) against a running test network.

The client side every multi-node status test needs: submit a report, read a
case, record a status, each as the node's own member over mutual TLS, each
with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from hfp.v1 import case_pb2, receipt_pb2, report_pb2
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from tests.support.net import DEADLINE, Network


@contextmanager
def hotline(net: Network, member: str) -> Iterator[pb_grpc.HotlineServiceStub]:
    """A HotlineService stub of ``member``'s node, called as that member."""
    with net.channel(member, member) as channel:
        yield pb_grpc.HotlineServiceStub(channel)


def submit_url(net: Network, at: str, url: str, country: str) -> receipt_pb2.Receipt:
    """SubmitReport at ``at``: its receipt."""
    report = report_pb2.Report(url=url, hosting_country=country)
    with hotline(net, at) as stub:
        return stub.SubmitReport(pb.SubmitReportRequest(report=report), timeout=DEADLINE).receipt


def get_case(net: Network, at: str, **selector: str) -> case_pb2.Case:
    """GetCase at ``at`` by ``case_id=`` or ``report_id=``."""
    with hotline(net, at) as stub:
        return stub.GetCase(pb.GetCaseRequest(**selector), timeout=DEADLINE).case


def record(net: Network, at: str, case_id: str, status: int, **extra: str) -> None:
    """RecordStatus of one of ``at``'s cases."""
    with hotline(net, at) as stub:
        stub.RecordStatus(
            pb.RecordStatusRequest(case_id=case_id, status=status, **extra),  # type: ignore[arg-type]
            timeout=DEADLINE,
        )


def wait_history(
    net: Network, at: str, report_id: str, length: int, timeout: float = 20.0
) -> case_pb2.Case:
    """Poll (bounded) until the case of ``report_id`` at ``at`` has ``length`` updates."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            case = get_case(net, at, report_id=report_id)
            if len(case.history) >= length:
                return case
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{at} did not get {length} updates for {report_id}")
        time.sleep(0.2)
