"""Numbers in range, one item never failing another, floods that take no peer's capacity.

One node process (hotline-dk) on loopback. Callers: hotline-nl (sends
poisoned batches), hotline-de (well-formed ones), police-dk (liaison) and
the node's own member (HotlineService). Admission is set so that the
concurrent batches of the isolation test are never refused for rate, the
liaison's flood is, and the client services take at most CLIENT_CAP calls
at once (the test fault ``hold-calls`` fills them deterministically).
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import closing

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from federation.api.admission import TEST_HOLD_METADATA
from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.core.reasons import STATUS_UPDATE_TYPE
from federation.core.status_update import StatusUpdate
from federation.wire.convert import encode_status_update
from hfp.v1 import case_pb2, receipt_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    create_network,
    deliver,
    item,
    make_report,
    now,
    outcome_name,
    reason_name,
    sign,
    sign_report,
    small_members,
    start,
    stop,
    verify_receipt,
)

NODE = "hotline-dk"
POISONER, BYSTANDER, POLICE = "hotline-nl", "hotline-de", "police-dk"
CLIENT_CAP = 4
ENV = {
    "HFED_ENABLE_TEST_FAULTS": "1",
    "HFED_TESTING__FAULTS": '["hold-calls"]',
    "HFED_ADMISSION__CALLS_PER_SECOND": "100",
    "HFED_ADMISSION__BURST": "400",
    "HFED_ADMISSION__CALLS_IN_FLIGHT_PER_MEMBER": "64",
    "HFED_ADMISSION__CLIENT_THREADS": "6",
    "HFED_ADMISSION__CLIENT_CALLS_TOTAL": str(CLIENT_CAP),
    "HFED_ADMISSION__STREAMS_TOTAL": "2",
}
#: Concurrent batches of the isolation test, of each kind (bounded).
ROUNDS = 30
#: Calls of the refused-call flood (all beyond the liaison's burst of 400).
FLOOD = 900


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """hotline-dk with the settings above."""
    network = create_network(tmp_path_factory.mktemp("isolation") / "net", small_members(NODE))
    try:
        with pytest.MonkeyPatch.context() as env:  # the node inherits the environment
            for name, value in ENV.items():
                env.setenv(name, value)
            start(network.directory)
        yield network
    finally:
        stop(network.directory)


def _log(net: Network) -> str:
    return (net.directory / "members" / NODE / "node.log").read_text(errors="replace")


def _update(sequence: int) -> fed_pb.ForwardedItem:
    """A status update of hotline-nl's with ``sequence`` (a case of its own)."""
    update = StatusUpdate(
        new_uuid7(), new_uuid7(), (new_uuid7(),), POISONER, CaseStatus.RECEIVED, sequence, now()
    )
    envelope = sign(encode_status_update(update), net_key(POISONER), POISONER, STATUS_UPDATE_TYPE)
    return item(envelope)


_keys: dict[str, object] = {}


def net_key(member: str):  # type: ignore[no-untyped-def]
    return _keys[member]


def _report(sender: str) -> fed_pb.ForwardedItem:
    return item(sign_report(make_report(sender, "DK"), net_key(sender)))  # type: ignore[arg-type]


@pytest.fixture(scope="module", autouse=True)
def keys(net: Network) -> None:
    for member in (POISONER, BYSTANDER):
        _keys[member] = net.signing_key(member)


def _receipts(net: Network, signed: list[object]) -> list[tuple[str, str]]:
    decoded = [verify_receipt(net, s) for s in signed]  # type: ignore[arg-type]
    return [(outcome_name(r), reason_name(r)) for r in decoded]


ACCEPTED = ("OUTCOME_ACCEPTED", "REJECT_REASON_UNSPECIFIED")
LIMIT = ("OUTCOME_REJECTED", "REJECT_REASON_LIMIT_EXCEEDED")


# --- finding 3: numbers in range, items and callers isolated ------------------------


@pytest.mark.parametrize("sequence", [2**64 - 1, 2**63], ids=["2^64-1", "2^63"])
def test_a_sequence_storage_cannot_hold_is_refused_alone(net: Network, sequence: int) -> None:
    """Deliver [valid report, StatusUpdate with a sequence above 2^63-1], expect the
    call OK, the report accepted and the update alone REJECTED LIMIT_EXCEEDED."""
    with net.stub(POISONER, NODE) as stub:
        signed = deliver(stub, [_report(POISONER), _update(sequence)])
    assert _receipts(net, signed) == [ACCEPTED, LIMIT]


def test_poisoned_batches_fail_no_other_peers_batches(net: Network) -> None:
    """30 poisoned batches of one peer and 30 well-formed batches of another, all at
    once, expect every call OK: every well-formed item accepted, and in each
    poisoned batch the report accepted and the update refused LIMIT_EXCEEDED."""

    def poisoned() -> list[tuple[str, str]]:
        with net.stub(POISONER, NODE) as stub:
            return _receipts(net, deliver(stub, [_report(POISONER), _update(2**64 - 1)]))

    def clean() -> list[tuple[str, str]]:
        with net.stub(BYSTANDER, NODE) as stub:
            batch = [_report(BYSTANDER) for _ in range(5)]
            return _receipts(net, deliver(stub, batch, timeout=BULK_DEADLINE))

    with futures.ThreadPoolExecutor(16) as pool:
        calls = [pool.submit(poisoned) for _ in range(ROUNDS)]
        calls += [pool.submit(clean) for _ in range(ROUNDS)]
        results = [c.result(timeout=BULK_DEADLINE * 2) for c in calls]
    assert results[:ROUNDS] == [[ACCEPTED, LIMIT]] * ROUNDS
    assert results[ROUNDS:] == [[ACCEPTED] * 5] * ROUNDS


# --- finding 8: bad requests are INVALID_ARGUMENT, never INTERNAL -------------------


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BAD_FILTERS = {
    "since-2^62": case_pb2.CaseFilter(created_since=Timestamp(seconds=2**62)),
    "until-nanos--5": case_pb2.CaseFilter(created_until=Timestamp(seconds=0, nanos=-5)),
}
BAD_TOKENS = {
    "token-without-zone": _token(f"2026-01-01T00:00:00|{new_uuid7()}"),
    "token-not-a-case-id": _token("2026-01-01T00:00:00+00:00|x' OR 1=1"),
    "token-overflowing-offset": _token(f"0001-01-01T00:00:00+05:00|{new_uuid7()}"),
}


#: The ErrorInfo reason and the BadRequest field each bad request is refused with.
EXPECTED = {
    "since-2^62": ("INVALID_TIMESTAMP", "filters.created_since"),
    "until-nanos--5": ("INVALID_TIMESTAMP", "filters.created_until"),
    **{name: ("BAD_PAGE_TOKEN", "page_token") for name in BAD_TOKENS},
}


def _invalid(error: grpc.RpcError, shape: str) -> str:
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad)
    reason, field = EXPECTED[shape]
    assert (info.reason, info.domain) == (reason, "hfp.v1")
    assert [(v.field, v.description) for v in bad.field_violations] == [(field, error.details())]
    return error.details() or ""


def _requests() -> list[tuple[str, dict[str, object]]]:
    shapes: list[tuple[str, dict[str, object]]] = [
        (name, {"filters": f}) for name, f in BAD_FILTERS.items()
    ]
    shapes += [(name, {"page_token": t}) for name, t in BAD_TOKENS.items()]
    return shapes


@pytest.mark.parametrize(("shape", "fields"), _requests(), ids=[n for n, _ in _requests()])
def test_bad_list_requests_are_invalid_argument_without_a_traceback(
    net: Network, shape: str, fields: dict[str, object]
) -> None:
    """ListCases and ListReferrals with an out-of-range timestamp or a page token
    not made by the node, expect INVALID_ARGUMENT with an ErrorInfo naming the
    reason (INVALID_TIMESTAMP, BAD_PAGE_TOKEN), a BadRequest naming the field,
    and no traceback in the node's log."""
    before = _log(net).count("Traceback")
    with net.channel(NODE, NODE) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListCases(hpb.ListCasesRequest(**fields), timeout=DEADLINE)  # type: ignore[arg-type]
        detail = _invalid(caught.value, shape)
    assert ("range" in detail) if shape in BAD_FILTERS else ("page_token" in detail)
    with net.channel(POLICE, NODE) as channel:
        liaison = lgrpc.LiaisonServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            liaison.ListReferrals(lpb.ListReferralsRequest(**fields), timeout=DEADLINE)  # type: ignore[arg-type]
        _invalid(caught.value, shape)
    assert _log(net).count("Traceback") == before


# --- finding 5: floods take no peer's capacity, refusals are audited in batches ------


def _audit(net: Network) -> list[tuple[str, str, int]]:
    uri = f"file:{net.db_path(NODE)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        rows = conn.execute(
            "SELECT rpc, outcome, calls FROM audit_log WHERE member_id = ? ORDER BY id", (POLICE,)
        ).fetchall()
    return [(str(r), str(o), int(c)) for r, o, c in rows]


def test_a_refused_flood_is_audited_call_for_call_in_few_entries(net: Network) -> None:
    """The liaison calls ListReferrals 900 times from 8 threads, far above its rate,
    expect every refused call in the audit log (the calls of its entries add up to
    the refusals the liaison saw) in far fewer entries than refused calls: each
    entry, and so each write, stands for many calls."""
    skip = len(_audit(net))

    def one(_: int) -> grpc.StatusCode:
        with net.channel(POLICE, NODE) as channel:
            stub = lgrpc.LiaisonServiceStub(channel)
            try:
                stub.ListReferrals(lpb.ListReferralsRequest(page_size=1), timeout=DEADLINE)
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    with futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(FLOOD), timeout=120))
    refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert refused >= FLOOD - 400 - 200, "the flood was not refused"
    end = time.monotonic() + 20
    entries = [e for e in _audit(net)[skip:] if e[1] == "RESOURCE_EXHAUSTED"]
    while sum(c for *_, c in entries) < refused and time.monotonic() < end:
        time.sleep(0.2)  # written about once a second
        entries = [e for e in _audit(net)[skip:] if e[1] == "RESOURCE_EXHAUSTED"]
    assert sum(c for *_, c in entries) == refused
    assert len(entries) <= refused // 20, (len(entries), refused)


def test_federation_calls_are_served_while_the_client_services_are_full(net: Network) -> None:
    """Hold CLIENT_CAP calls to HotlineService and LiaisonService in flight, expect a
    further one refused at once RESOURCE_EXHAUSTED (client_calls_total, with a
    retry delay) while peers' Deliver and GetRoster calls are served."""
    hold = ((TEST_HOLD_METADATA, "30000"),)
    with net.channel(POLICE, NODE) as police, net.channel(NODE, NODE) as own:
        liaison, hotline = lgrpc.LiaisonServiceStub(police), hgrpc.HotlineServiceStub(own)
        held = []
        try:
            for _ in range(CLIENT_CAP):  # one after another: nothing else is in flight
                held.append(
                    hotline.GetStats.future(hpb.GetStatsRequest(), timeout=60, metadata=hold)
                )
                time.sleep(0.3)
            assert not any(h.done() for h in held), "a held call was not admitted"
            end = time.monotonic() + 20
            while True:  # bounded: until the held calls fill the cap
                try:
                    liaison.ListReferrals(lpb.ListReferralsRequest(page_size=1), timeout=DEADLINE)
                except grpc.RpcError as exc:
                    if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                        refusal = exc
                        break
                    raise
                assert time.monotonic() < end, "held calls never filled the cap"
                time.sleep(0.1)
            status = rpc_status.from_call(refusal)  # type: ignore[arg-type]
            assert status is not None
            info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(info) and status.details[1].Unpack(retry)
            assert info.metadata["limit"] == "client_calls_total"
            assert retry.retry_delay.ToMilliseconds() > 0
            with net.stub(BYSTANDER, NODE) as peer:
                for _ in range(5):
                    signed = deliver(peer, [_report(BYSTANDER)])
                    assert _receipts(net, signed) == [ACCEPTED]
                    roster = peer.GetRoster(fed_pb.GetRosterRequest(), timeout=DEADLINE)
                    assert roster.HasField("roster")
            assert not any(h.done() for h in held), "held calls ended early"
        finally:
            for call in held:
                call.cancel()
    assert receipt_pb2.Outcome.Name(receipt_pb2.OUTCOME_ACCEPTED) == ACCEPTED[0]
