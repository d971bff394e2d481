"""LiaisonService on a real network: jurisdiction scoping, the resumable stream,
holds, and the audit log."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from tests.support.net import DEADLINE, Network, create_network, start, stop
from tests.support.refusals import field_violations, reason, refusal_reason, refused
from tests.support.watching import watch_until_idle

DK, NL = "hotline-dk", "hotline-nl"
POLICE_DK, POLICE_NL = "police-dk", "police-nl"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = create_network(tmp_path_factory.mktemp("liaison") / "net")
    config = network.directory / "members" / DK / "node.toml"
    config.write_text(config.read_text() + "\n[takedown]\ncheck_every_seconds = 0.2\n")
    start(network.directory)
    try:
        yield network
    finally:
        stop(network.directory)


def submit(net: Network, at: str, country: str) -> str:
    report = report_pb2.Report(
        url=f"https://ref.example.com/{os.urandom(5).hex()}", hosting_country=country
    )
    with net.channel(at, at) as channel:
        receipt = (
            hgrpc.HotlineServiceStub(channel)
            .SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE)
            .receipt
        )
    return receipt.case_id


def record(net: Network, at: str, case_id: str, status: int) -> None:
    with net.channel(at, at) as channel:
        hgrpc.HotlineServiceStub(channel).RecordStatus(
            hpb.RecordStatusRequest(case_id=case_id, status=status),  # type: ignore[arg-type]
            timeout=DEADLINE,
        )


@contextmanager
def liaison(net: Network, who: str, node: str = DK) -> Iterator[lgrpc.LiaisonServiceStub]:
    with net.channel(who, node) as channel:
        yield lgrpc.LiaisonServiceStub(channel)


def code_of(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def until(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(seconds=seconds))
    return stamp


def test_a_liaison_sees_only_its_jurisdiction(net: Network) -> None:
    dk_case = submit(net, DK, "DK")
    nl_case = submit(net, NL, "NL")
    with liaison(net, POLICE_DK) as stub:
        listed = stub.ListReferrals(lpb.ListReferralsRequest(page_size=500), timeout=DEADLINE)
        ids = {c.case_id for c in listed.cases}
        assert dk_case in ids and nl_case not in ids
        assert {c.hosting_country for c in listed.cases} == {"DK"}
        ack = lpb.AcknowledgeReferralRequest(case_id=nl_case, reference="X-1")
        # A case outside the jurisdiction is as unknown as one that does not exist.
        assert refusal_reason(lambda: stub.AcknowledgeReferral(ack, timeout=DEADLINE)) == (
            grpc.StatusCode.NOT_FOUND,
            "UNKNOWN_CASE",
        )
    with liaison(net, POLICE_NL) as stub:  # a node not responsible for NL
        request = lpb.ListReferralsRequest()
        assert refusal_reason(lambda: stub.ListReferrals(request, timeout=DEADLINE)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "OUTSIDE_JURISDICTION",
        )
    with net.channel(DK, DK) as channel:  # a hotline may not use the liaison service
        stub = lgrpc.LiaisonServiceStub(channel)
        assert (
            code_of(lambda: stub.ListReferrals(lpb.ListReferralsRequest(), timeout=DEADLINE))
            is grpc.StatusCode.PERMISSION_DENIED
        )


def _watch(
    stub: lgrpc.LiaisonServiceStub, cursor: str, count: int
) -> list[lpb.WatchReferralsResponse]:
    stream = stub.WatchReferrals(lpb.WatchReferralsRequest(cursor=cursor), timeout=30)
    got = []
    for response in stream:
        got.append(response)
        if len(got) == count:
            stream.cancel()
            break
    return got


def test_watch_resumes_from_any_cursor_without_gaps_or_repeats(net: Network) -> None:
    with liaison(net, POLICE_DK) as stub:
        start_cursor = ""
        history = _watch(stub, start_cursor, 1)  # at least one event exists
        for _ in range(4):
            case_id = submit(net, DK, "DK")
            record(net, DK, case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
        everything = []
        cursor = ""
        while True:  # read in chunks of 3, interrupting the stream each time
            chunk = watch_until_idle(stub, cursor, 3)
            if not chunk:
                break
            everything += chunk
            cursor = chunk[-1].cursor
        sequences = [r.event.sequence for r in everything]
        assert sequences == sorted(set(sequences)), "repeated or out of order"
        assert len(sequences) >= 9 and history[0].event.sequence == sequences[0]
        in_one_go = watch_until_idle(stub, "", 10_000)
        assert [r.event.sequence for r in in_one_go] == sequences


def test_hold_blocks_the_notice_until_released(net: Network) -> None:
    case_id = submit(net, DK, "DK")
    record(net, DK, case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
    with liaison(net, POLICE_DK) as stub:
        held = stub.RequestHold(
            lpb.RequestHoldRequest(case_id=case_id, reason="investigation", until=until(3600)),
            timeout=DEADLINE,
        ).case
        assert held.status == status_pb2.CASE_STATUS_LEA_HOLD and held.hold_reason
        blocked = refusal_reason(
            lambda: record(net, DK, case_id, status_pb2.CASE_STATUS_NOTICE_SENT)
        )
        assert blocked == (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_ACTIVE")
        stub.ReleaseHold(lpb.ReleaseHoldRequest(case_id=case_id), timeout=DEADLINE)
    record(net, DK, case_id, status_pb2.CASE_STATUS_NOTICE_SENT)


def test_hold_expires_by_itself_and_is_recorded(net: Network) -> None:
    case_id = submit(net, DK, "DK")
    record(net, DK, case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
    record(net, DK, case_id, status_pb2.CASE_STATUS_LEA_NOTIFIED)
    with liaison(net, POLICE_DK) as stub:
        stub.RequestHold(
            lpb.RequestHoldRequest(case_id=case_id, reason="short", until=until(1.5)),
            timeout=DEADLINE,
        )
        assert (
            code_of(lambda: record(net, DK, case_id, status_pb2.CASE_STATUS_NOTICE_SENT))
            is grpc.StatusCode.FAILED_PRECONDITION
        )
        time.sleep(2.5)
        record(net, DK, case_id, status_pb2.CASE_STATUS_NOTICE_SENT)
        kinds = [
            r.event.kind for r in watch_until_idle(stub, "", 10_000) if r.event.case_id == case_id
        ]
    assert case_pb2.CASE_EVENT_KIND_HOLD_REQUESTED in kinds
    assert case_pb2.CASE_EVENT_KIND_HOLD_EXPIRED in kinds


def test_every_call_is_audited(net: Network) -> None:
    case_id = submit(net, DK, "DK")
    with liaison(net, POLICE_DK) as stub:
        stub.AcknowledgeReferral(
            lpb.AcknowledgeReferralRequest(case_id=case_id, reference="R-77"), timeout=DEADLINE
        )
        code_of(lambda: stub.ReleaseHold(lpb.ReleaseHoldRequest(case_id=case_id), timeout=DEADLINE))
    with liaison(net, POLICE_NL) as stub:
        code_of(lambda: stub.ListReferrals(lpb.ListReferralsRequest(), timeout=DEADLINE))
    # Refused calls are audited in batches, about once a second: wait (bounded).
    end = time.monotonic() + 10
    while True:
        with closing(sqlite3.connect(f"file:{net.db_path(DK)}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT member_id, rpc, case_ids, outcome FROM audit_log"
            ).fetchall()
        mine = [(m, rpc, outcome) for m, rpc, cases, outcome in rows if case_id in cases]
        denied = any(m == POLICE_NL and outcome == "PERMISSION_DENIED" for m, _, _, outcome in rows)
        if (denied and len(mine) >= 2) or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert (POLICE_DK, "AcknowledgeReferral", "OK") in mine
    assert (POLICE_DK, "ReleaseHold", "FAILED_PRECONDITION") in mine
    assert any(m == POLICE_NL and outcome == "PERMISSION_DENIED" for m, _, _, outcome in rows)


def test_a_cursor_from_beyond_the_log_is_refused(net: Network) -> None:
    from federation.liaison.referrals import encode_cursor

    with liaison(net, POLICE_DK) as stub:
        for cursor, expected in (
            (encode_cursor(10**9), (grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_AHEAD")),
            ("not-a-cursor", (grpc.StatusCode.INVALID_ARGUMENT, "BAD_CURSOR")),
        ):
            stream = stub.WatchReferrals(lpb.WatchReferralsRequest(cursor=cursor), timeout=5)
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(stream))
            assert reason(caught.value) == expected


# --- what a refusal says: reason and field -------------------------------------------


def test_a_refused_stream_names_its_reason_and_field(net: Network) -> None:
    """WatchReferrals with a cursor not made by the node, expect INVALID_ARGUMENT
    with reason BAD_CURSOR and a BadRequest violation on the cursor field."""
    with liaison(net, POLICE_DK) as stub:
        request = lpb.WatchReferralsRequest(cursor="bm90LWEtY3Vyc29y")
        error = refused(lambda: stub.WatchReferrals(request, timeout=5))
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_CURSOR")
    assert field_violations(error) == [("cursor", error.details())]


def test_an_illegal_transition_is_named(net: Network) -> None:
    """RecordStatus NOTICE_SENT on a fresh case (it may not follow RECEIVED),
    expect FAILED_PRECONDITION with reason ILLEGAL_TRANSITION."""
    case_id = submit(net, DK, "DK")
    assert refusal_reason(lambda: record(net, DK, case_id, status_pb2.CASE_STATUS_NOTICE_SENT)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ILLEGAL_TRANSITION",
    )


def test_a_bad_page_token_and_a_bad_hold_name_their_fields(net: Network) -> None:
    """ListCaseReports with a page token made for another list and RequestHold
    with an end in the past, expect INVALID_ARGUMENT with the reason and a
    BadRequest violation naming the request field."""
    case_id = submit(net, DK, "DK")
    record(net, DK, case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
    with liaison(net, POLICE_DK) as stub:
        listing = lpb.LiaisonServiceListCaseReportsRequest(case_id=case_id, page_token="eDF8eXx6")
        token = refused(lambda: stub.ListCaseReports(listing, timeout=DEADLINE))
        hold = lpb.RequestHoldRequest(case_id=case_id, reason="investigation", until=until(-60))
        late = refused(lambda: stub.RequestHold(hold, timeout=DEADLINE))
    assert reason(token) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_PAGE_TOKEN")
    assert field_violations(token) == [("page_token", token.details())]
    assert reason(late) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_HOLD_UNTIL")
    assert field_violations(late) == [("until", late.details())]
