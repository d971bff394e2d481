"""ListAudit refuses what it cannot answer with a reason, never an internal error."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from hfp.v1 import hotline_service_pb2 as pb
from tests.support.hotline import hotline
from tests.support.net import DEADLINE, Network, running_network, small_members
from tests.support.refusals import refusal_reason

DK = "hotline-dk"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("reads") / "net", small_members(DK)) as n:
        yield n


def test_an_unknown_audit_log_value_is_refused(net: Network) -> None:
    with hotline(net, DK) as stub:
        request = pb.ListAuditRequest(log=99)  # type: ignore[arg-type]
        got = refusal_reason(lambda: stub.ListAudit(request, timeout=DEADLINE))
    assert got == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_ENUM_VALUE")


def test_an_out_of_range_since_is_refused(net: Network) -> None:
    request = pb.ListAuditRequest()
    request.since.seconds = -(10**12)  # long before year 1
    with hotline(net, DK) as stub:
        code, _reason = refusal_reason(lambda: stub.ListAudit(request, timeout=DEADLINE))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
