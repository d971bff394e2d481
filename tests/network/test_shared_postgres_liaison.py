"""A police liaison follows one member's two node processes on one PostgreSQL
database: cursors taken from either process resume at the other, while both
commit new cases, and no event is skipped or seen twice.

hotline-dk runs twice (process A through ``devnet up``, process B beside it)
on a fresh PostgreSQL database. Two submitters file DK cases, one through
each process, while police-dk reads WatchReferrals in short pieces, each
piece from the other process than the last and resuming from the last
cursor it saw. Event positions are taken at commit (store.cases
append_events), so a reader between two processes' commits cannot pass
over a position that becomes visible later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from hfp.v1 import report_pb2
from tests.support.net import DEADLINE, Network
from tests.support.postgres import PostgresCluster
from tests.support.shared_postgres import running_pair
from tests.support.watching import watch_until_idle

DK, POLICE = "hotline-dk", "police-dk"
PER_SUBMITTER = 120
#: Events per piece of the watch before it is cut and resumed elsewhere.
PIECE = 7
READ_TIMEOUT = 120.0

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def two_processes(tmp_path: Path, postgres: PostgresCluster) -> Iterator[tuple[Network, Network]]:
    """hotline-dk as two running processes on one database."""
    with running_pair(tmp_path / "net", postgres, DK) as pair:
        yield pair


def _submit(net: Network, tag: str, case_ids: list[str], errors: list[BaseException]) -> None:
    try:
        with net.channel(DK, DK) as channel:
            stub = hgrpc.HotlineServiceStub(channel)
            for n in range(PER_SUBMITTER):
                report = report_pb2.Report(
                    url=f"https://pg-{tag}-{n}.example.com/", hosting_country="DK"
                )
                reply = stub.SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE)
                case_ids.append(reply.receipt.case_id)
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def _piece(net: Network, cursor: str) -> list[lpb.WatchReferralsResponse]:
    """Up to PIECE events after ``cursor`` from this process (1 s idle ends it)."""
    with net.channel(POLICE, DK) as channel:
        return watch_until_idle(lgrpc.LiaisonServiceStub(channel), cursor, PIECE, idle=1.0)


def test_a_liaison_cursor_resumes_across_both_processes_commits(
    two_processes: tuple[Network, Network],
) -> None:
    via_a, via_b = two_processes
    filed: list[str] = []
    errors: list[BaseException] = []
    submitters = [
        threading.Thread(target=_submit, args=(via, tag, filed, errors))
        for via, tag in ((via_a, "a"), (via_b, "b"))
    ]
    for thread in submitters:
        thread.start()

    seen: list[lpb.WatchReferralsResponse] = []
    cursor, pieces, deadline = "", 0, time.monotonic() + READ_TIMEOUT
    while time.monotonic() < deadline:  # bounded by time, and by the work left below
        piece = _piece(via_a if pieces % 2 == 0 else via_b, cursor)
        pieces += 1
        seen += piece
        cursor = piece[-1].cursor if piece else cursor
        writing = any(t.is_alive() for t in submitters)
        if not piece and not writing:
            break
    for thread in submitters:
        thread.join(timeout=60)
    assert not errors, errors

    sequences = [r.event.sequence for r in seen]
    assert sequences == sorted(set(sequences)), "an event was repeated or out of order"
    opened = [r.event.case_id for r in seen if r.event.report.report_id]
    assert len(filed) == 2 * PER_SUBMITTER
    assert set(filed) <= set(opened), f"{len(set(filed) - set(opened))} cases never seen"
    assert pieces > 10, "the watch was cut and resumed many times, alternating processes"
    # Read again in one go from process B: the same events, the same order.
    again: list[lpb.WatchReferralsResponse] = []
    cursor = ""
    for _ in range(1000):  # bounded: at most 7,000 events
        piece = _piece(via_b, cursor)
        if not piece:
            break
        again += piece
        cursor = piece[-1].cursor
    assert [r.event.sequence for r in again] == sequences
