"""Many concurrent clients and slow readers: per-member admission limits.

One node process (hotline-dk) on loopback with small limits, set through
``HFED_ADMISSION__*`` at start: 4 unary calls in flight and 2 streams per
member, 3 streams on the node, 5 calls/s with bursts of 20 per member, and a
1 s keepalive. The test fault ``hold-calls`` keeps chosen calls in flight, so
that the concurrency caps fill deterministically. Each test calls as members
of its own (the limits are per member), so the tests do not disturb each
other and share the node.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from federation.api.admission import TEST_HOLD_METADATA, Limit
from federation.api.errors import PUSHBACK_METADATA
from federation.core.roster import Role
from federation.devnet.create import MemberSpec
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    count_inbound,
    create_network,
    deliver,
    item,
    make_report,
    outcome_name,
    sign_report,
    small_members,
    start,
    stop,
    verify_receipt,
)

NODE = "hotline-dk"
CALLS_IN_FLIGHT = 4
STREAMS_PER_MEMBER = 2
STREAMS_TOTAL = 3
RATE = 5.0
BURST = 20
LIMITS = {
    "HFED_ENABLE_TEST_FAULTS": "1",
    "HFED_TESTING__FAULTS": '["hold-calls"]',
    "HFED_ADMISSION__CALLS_IN_FLIGHT_PER_MEMBER": str(CALLS_IN_FLIGHT),
    "HFED_ADMISSION__STREAMS_PER_MEMBER": str(STREAMS_PER_MEMBER),
    "HFED_ADMISSION__STREAMS_TOTAL": str(STREAMS_TOTAL),
    "HFED_ADMISSION__CALLS_PER_SECOND": str(RATE),
    "HFED_ADMISSION__BURST": str(BURST),
    "HFED_ADMISSION__KEEPALIVE_SECONDS": "1",
    "HFED_ADMISSION__KEEPALIVE_TIMEOUT_SECONDS": "1",
}
#: Deadline of a stream a test holds open (tests cancel them long before).
STREAM_DEADLINE = 90.0
#: How long a held call stays in flight unless cancelled (the fault caps it at 30 s).
HOLD = ((TEST_HOLD_METADATA, "30000"),)
#: Bound of every "until the node has let go" wait.
SETTLE = 20.0

# Callers, one set per test (every member has its own limits).
POLICE, POLICE_2, POLICE_3 = "police-dk", "police-dk-2", "police-dk-3"
POLICE_4, POLICE_5, POLICE_6 = "police-dk-4", "police-dk-5", "police-dk-6"
EXTRA_HOTLINES = {
    "hotline-se": "SE",
    "hotline-fi": "FI",
    "hotline-no": "NO",
    "hotline-is": "IS",
    "hotline-ee": "EE",
    "hotline-lv": "LV",
    "hotline-lt": "LT",
}
CROWD = ("hotline-ee", "hotline-lv", "hotline-lt", POLICE_4)

ROSTER = fed_pb.GetRosterRequest(known_version=0)


def _members() -> tuple[MemberSpec, ...]:
    hotlines = tuple(
        MemberSpec(m, Role.HOTLINE, (c,), reserve_endpoint=True, display_name=m)
        for m, c in EXTRA_HOTLINES.items()
    )
    liaisons = tuple(
        MemberSpec(m, Role.LIAISON, ("DK",), display_name=m)
        for m in (POLICE_2, POLICE_3, POLICE_4, POLICE_5, POLICE_6)
    )
    return (*small_members(NODE), *hotlines, *liaisons)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """The node with small limits, holding one DK case so every stream has an event."""
    network = create_network(tmp_path_factory.mktemp("admission") / "net", _members())
    try:
        with pytest.MonkeyPatch.context() as env:  # the node inherits the environment
            for name, value in LIMITS.items():
                env.setenv(name, value)
            start(network.directory)
        seed(network, 1)
        yield network
    finally:
        stop(network.directory)


# --- helpers ---------------------------------------------------------------------


def seed(net: Network, count: int, sender: str = "hotline-no") -> set[str]:
    """Deliver ``count`` DK-hosted reports to the node; the case ids they joined."""
    key = net.signing_key(sender)
    cases: set[str] = set()
    with net.stub(sender, NODE) as stub:
        for start_at in range(0, count, 500):
            reports = [make_report(sender, "DK") for _ in range(min(500, count - start_at))]
            receipts = deliver(
                stub, [item(sign_report(r, key)) for r in reports], timeout=BULK_DEADLINE
            )
            for signed in receipts:
                receipt = verify_receipt(net, signed)
                assert outcome_name(receipt) == "OUTCOME_ACCEPTED"
                cases.add(receipt.case_id)
    return cases


def limit_of(error: grpc.RpcError) -> str:
    """The admission limit named by a RESOURCE_EXHAUSTED refusal (its ErrorInfo)."""
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "a refusal carries rich details"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    limit = str(info.metadata["limit"])
    assert (info.reason, info.domain) == (f"ADMISSION_{Limit(limit).name}", "hfp.v1")
    return limit


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    """Run a call expected to be refused; its error."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def eventually(call: Callable[[], object], timeout: float = SETTLE) -> object:
    """Retry a call refused with RESOURCE_EXHAUSTED until it is served (bounded).

    Slots are given back when the node sees a call end, which happens a
    moment after the client has cancelled it.
    """
    end = time.monotonic() + timeout
    while True:
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > end:
                raise
        time.sleep(1 / RATE)  # no faster than the rate: the retries must not run dry


def healthy(net: Network, caller: str) -> bool:
    """Health check as ``caller`` (a member possibly being refused) answers SERVING."""
    with net.channel(caller, NODE) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=DEADLINE
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def watch(channel: grpc.Channel, cursor: str = "") -> Any:
    """A WatchReferrals call (iterate it for events, cancel it to leave)."""
    stub = lgrpc.LiaisonServiceStub(channel)
    return stub.WatchReferrals(lpb.WatchReferralsRequest(cursor=cursor), timeout=STREAM_DEADLINE)


@contextmanager
def small_window_channel(net: Network, who: str) -> Iterator[grpc.Channel]:
    """A channel as ``who`` that keeps gRPC's initial 64 KiB flow-control window
    (BDP probing would grow it to megabytes while nothing is read): the node can
    send such a client that much only until it reads."""
    identity = net.identity(who)
    credentials = grpc.ssl_channel_credentials(identity.ca_cert, identity.key, identity.cert)
    options = [("grpc.http2.bdp_probe", 0)]
    with grpc.secure_channel(net.member(NODE).endpoint, credentials, options) as channel:
        yield channel


@contextmanager
def watching(
    net: Network, who: str, count: int, *, small_window: bool = False
) -> Iterator[list[Any]]:
    """``count`` streams of ``who``, each on its own channel with its first event read
    (so each is surely admitted; a slot the node is still giving back from an
    earlier stream is waited for); all cancelled on exit."""

    def open_one(stack: ExitStack) -> Any:
        with ExitStack() as attempt:
            channel = attempt.enter_context(
                small_window_channel(net, who) if small_window else net.channel(who, NODE)
            )
            call = watch(channel)
            attempt.callback(call.cancel)
            next(call)
            stack.push(attempt.pop_all())  # admitted: keep it open until the end
            return call

    with ExitStack() as stack:
        yield [eventually(lambda: open_one(stack)) for _ in range(count)]


def first_event(net: Network, who: str) -> lpb.WatchReferralsResponse:
    """Open a stream as ``who``, read one event, leave."""
    with net.channel(who, NODE) as channel:
        call = watch(channel)
        try:
            return next(call)  # type: ignore[no-any-return]
        finally:
            call.cancel()


def audit_rows(net: Network, member: str, rpc: str) -> list[tuple[str, str]]:
    """(outcome, detail) of the node's audit entries for ``member``'s ``rpc`` calls, oldest
    first."""
    with closing(sqlite3.connect(f"file:{net.db_path(NODE)}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT outcome, detail FROM audit_log WHERE member_id = ? AND rpc = ? ORDER BY id",
            (member, rpc),
        ).fetchall()
    return [(str(o), str(d)) for o, d in rows]


def events_sent(net: Network, member: str, skip: int, count: int) -> list[int]:
    """How many events each of ``member``'s next ``count`` streams after the first ``skip``
    sent, from their audit entries (written when a stream ends; waited for, bounded)."""
    end = time.monotonic() + SETTLE
    rows = audit_rows(net, member, "WatchReferrals")[skip:]
    while len(rows) < count and time.monotonic() < end:
        time.sleep(0.1)
        rows = audit_rows(net, member, "WatchReferrals")[skip:]
    assert len(rows) == count, rows
    assert all(outcome == "OK" for outcome, _ in rows), rows
    sent = [re.search(r"; (\d+) events sent", detail) for _, detail in rows]
    return [int(m.group(1)) for m in sent if m]


def read_all(net: Network, who: str, cases: set[str]) -> list[lpb.WatchReferralsResponse]:
    """Open a stream as ``who`` and read from the start until every case in ``cases``
    has been seen."""
    with net.channel(who, NODE) as channel:
        call = watch(channel)
        try:
            return read_until(call, cases)
        finally:
            call.cancel()


def read_until(call: Any, cases: set[str]) -> list[lpb.WatchReferralsResponse]:
    """Read a stream until every case in ``cases`` has been seen (bounded by its deadline)."""
    missing, got = set(cases), []
    for response in call:
        got.append(response)
        missing.discard(response.event.case_id)
        if not missing:
            return got
    raise AssertionError(f"stream ended with {len(missing)} cases unseen")


# --- unary calls: concurrency ----------------------------------------------------------


def test_one_member_over_its_concurrency_cap_is_refused_while_another_is_served(
    net: Network,
) -> None:
    """Member X holds its cap of calls in flight and sends 3 more, expect the 3 refused
    RESOURCE_EXHAUSTED (calls_in_flight_per_member) at once while member Y's calls at
    the same time succeed; once X's calls end, X is served again."""
    x, y = "hotline-nl", "hotline-de"
    with net.stub(x, NODE) as xs, net.stub(y, NODE) as ys:
        held = [
            xs.GetRoster.future(ROSTER, timeout=60, metadata=HOLD) for _ in range(CALLS_IN_FLIGHT)
        ]
        try:
            # Only held calls fill X's slots, so a refused probe means all are in flight.
            end = time.monotonic() + SETTLE
            while True:
                try:
                    xs.GetRoster(ROSTER, timeout=DEADLINE)
                except grpc.RpcError as exc:
                    assert limit_of(exc) == "calls_in_flight_per_member"
                    break
                assert time.monotonic() < end, "held calls never filled the cap"
                time.sleep(1 / RATE)
            excess = [xs.GetRoster.future(ROSTER, timeout=DEADLINE) for _ in range(3)]
            others = [ys.GetRoster.future(ROSTER, timeout=DEADLINE) for _ in range(CALLS_IN_FLIGHT)]
            for call in excess:
                error = call.exception(timeout=DEADLINE + 5)
                assert error is not None, "an excess call was served"
                assert limit_of(error) == "calls_in_flight_per_member"
                assert "at most 4 at a time" in error.details()
            for call in others:
                assert call.result(timeout=DEADLINE + 5).HasField("roster")
            assert not any(h.done() for h in held), "held calls ended early"
        finally:
            for call in held:
                call.cancel()
        assert all(h.cancelled() for h in held)
        reply = eventually(lambda: xs.GetRoster(ROSTER, timeout=DEADLINE))
        assert isinstance(reply, fed_pb.GetRosterResponse) and reply.HasField("roster")


# --- unary calls: rate -------------------------------------------------------------------


def test_a_member_over_its_rate_is_refused_then_served_and_nothing_is_lost(
    net: Network,
) -> None:
    """Member X delivers 80 one-item batches back to back, expect those beyond its
    burst refused RESOURCE_EXHAUSTED (calls_per_second) with a retry time, none of
    their items stored; after waiting as told, one batch of all refused items is
    accepted: every item stored exactly once."""
    x = "hotline-se"
    key = net.signing_key(x)
    reports = [make_report(x, "DK") for _ in range(80)]
    refused, retry_after = [], 0.0
    with net.stub(x, NODE) as stub:
        for report in reports:
            try:
                deliver(stub, [item(sign_report(report, key))])
            except grpc.RpcError as exc:
                assert limit_of(exc) == "calls_per_second"
                assert "at most 5 per second (bursts of 20)" in (exc.details() or "")
                status = rpc_status.from_call(exc)  # type: ignore[arg-type]
                assert status is not None
                retry = error_details_pb2.RetryInfo()
                assert status.details[1].Unpack(retry)
                retry_after = retry.retry_delay.ToMilliseconds() / 1000
                assert 0 < retry_after <= 1 / RATE + 0.01
                pushback = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
                assert int(pushback[PUSHBACK_METADATA]) == retry.retry_delay.ToMilliseconds()
                refused.append(report)
        assert refused, "80 calls at once never exceeded a burst of 20 at 5/s"
        assert len(refused) < len(reports), "the burst was refused too"
        assert all(count_inbound(net, NODE, r.report_id) == 0 for r in refused)
        time.sleep(retry_after)
        receipts = eventually(
            lambda: deliver(stub, [item(sign_report(r, key)) for r in refused], BULK_DEADLINE)
        )
    assert isinstance(receipts, list)
    for signed in receipts:
        assert outcome_name(verify_receipt(net, signed)) == "OUTCOME_ACCEPTED"
    assert all(count_inbound(net, NODE, r.report_id) == 1 for r in reports)


# --- streams ----------------------------------------------------------------------------


def test_a_liaison_over_its_stream_cap_is_refused_and_audited_others_unaffected(
    net: Network,
) -> None:
    """Liaison A holds 2 streams and opens a third, expect RESOURCE_EXHAUSTED
    (streams_per_member), audited, while A's unary calls and liaison B's stream are
    served; once A closes a stream it may open one again."""
    with watching(net, POLICE, STREAMS_PER_MEMBER):
        with net.channel(POLICE, NODE) as channel:
            error = refusal(lambda: next(watch(channel)))
            assert limit_of(error) == "streams_per_member"
            assert "at most 2 at a time" in (error.details() or "")
            listed = lgrpc.LiaisonServiceStub(channel).ListReferrals(
                lpb.ListReferralsRequest(page_size=1), timeout=DEADLINE
            )
            assert len(listed.cases) == 1
        assert first_event(net, POLICE_2).event.sequence >= 1
    # Refusals are audited in batches, about once a second: wait for it (bounded).
    end = time.monotonic() + SETTLE
    while True:
        refusals = [
            d for o, d in audit_rows(net, POLICE, "WatchReferrals") if o == "RESOURCE_EXHAUSTED"
        ]
        if any("too many open streams" in d for d in refusals) or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert any("too many open streams" in d for d in refusals), "refused stream not audited"
    assert eventually(lambda: first_event(net, POLICE))


def test_the_node_wide_stream_cap_leaves_threads_for_unary_calls(net: Network) -> None:
    """Two liaisons fill the node's 3 streams, expect a further stream of a liaison
    below its own cap refused RESOURCE_EXHAUSTED (streams_total) while unary calls of
    several members at once, and health checks, are served."""
    with watching(net, POLICE, 2), watching(net, POLICE_2, 1):
        for who in (POLICE_2, POLICE_3):
            with net.channel(who, NODE) as channel:
                error = refusal(lambda: next(watch(channel)))
                assert limit_of(error) == "streams_total"
        with net.stub("hotline-fi", NODE) as stub, net.channel(POLICE_3, NODE) as channel:
            roster = [
                stub.GetRoster.future(ROSTER, timeout=DEADLINE) for _ in range(CALLS_IN_FLIGHT)
            ]
            listed = lgrpc.LiaisonServiceStub(channel).ListReferrals.future(
                lpb.ListReferralsRequest(page_size=1), timeout=DEADLINE
            )
            assert all(f.result(timeout=DEADLINE + 5).HasField("roster") for f in roster)
            assert len(listed.result(timeout=DEADLINE + 5).cases) == 1
        assert healthy(net, POLICE_3)
    assert eventually(lambda: first_event(net, POLICE_3))


def _slow_readers(net: Network, events: int) -> None:
    cases = seed(net, events)
    audited = len(audit_rows(net, POLICE_6, "WatchReferrals"))
    with watching(net, POLICE_6, STREAMS_PER_MEMBER, small_window=True) as slow:
        # The slow readers have read one event each and stop: the node fills their
        # flow-control windows and its stream threads wait. Nobody else must.
        fast = eventually(lambda: read_all(net, POLICE_2, cases))
        assert isinstance(fast, list)
        with net.stub("hotline-no", NODE) as stub:
            assert stub.GetRoster(ROSTER, timeout=DEADLINE).HasField("roster")
        assert healthy(net, POLICE_6)
        # Nothing lost: the slow reader, reading at last, gets every event in order.
        late = read_until(slow[0], cases)
    sequences = [r.event.sequence for r in late]
    assert sequences == sorted(set(sequences)), "repeated or out of order"
    # Both streams started at the beginning; the slow one had read its first event.
    assert sequences == [r.event.sequence for r in fast[1:]], "the slow stream lost events"
    # The stream never read again was sent what its window holds, not the whole log:
    # what a slow reader costs the node is bounded by flow control.
    never_read, read_late = sorted(events_sent(net, POLICE_6, audited, 2))
    assert never_read < events <= read_late, (never_read, read_late)


def test_slow_readers_hold_up_no_one_and_lose_nothing(net: Network) -> None:
    """A liaison opens 2 streams over 400 events and stops reading, expect the node
    to stop sending at the flow-control window, another liaison to read all events,
    a hotline and the health check to be served, and the slow stream, read at last,
    to deliver every event in order."""
    _slow_readers(net, 400)


@pytest.mark.long
def test_slow_readers_over_many_events(net: Network) -> None:
    """As the short variant, over 6000 events (several MB per stream)."""
    _slow_readers(net, 6000)


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import grpc
    from hfp.v1 import liaison_service_pb2 as lpb, liaison_service_pb2_grpc as lgrpc
    from peers.channel import ClientIdentity, secure_channel

    ca, cert, key, endpoint = (Path(a) for a in sys.argv[1:5])
    identity = ClientIdentity.from_files(ca, cert, key)
    calls, end = [], time.monotonic() + 20
    while len(calls) < 2:
        stub = lgrpc.LiaisonServiceStub(secure_channel(str(endpoint), identity))
        call = stub.WatchReferrals(lpb.WatchReferralsRequest(), timeout=120)
        try:
            next(call)
            calls.append(call)
        except grpc.RpcError as exc:  # a slot still being given back: retry, bounded
            if exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > end:
                raise
            time.sleep(0.2)
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_a_frozen_liaison_loses_its_streams_to_keepalive(net: Network) -> None:
    """A liaison process opens its 2 streams and freezes (SIGSTOP), expect its slots
    taken meanwhile, then released once keepalive pings go unanswered: the same
    liaison can stream again while the frozen process still exists."""
    entry = net.member(POLICE_3)
    files = (net.manifest.ca_cert, entry.tls_cert, entry.tls_key)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            *(str(net.path(f)) for f in files),
            net.member(NODE).endpoint,
        ],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()  # bounded: the child's calls have deadlines
        assert ready.strip() == b"ready", "the child could not open its streams"
        os.kill(child.pid, signal.SIGSTOP)
        with net.channel(POLICE_3, NODE) as channel:
            assert limit_of(refusal(lambda: next(watch(channel)))) == "streams_per_member"
        assert eventually(lambda: first_event(net, POLICE_3))
        stat = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert stat == "T", "the child must still be frozen"
    finally:
        child.kill()
        child.wait(timeout=10)


# --- many clients -----------------------------------------------------------------------


def _crowd(net: Network, clients: int) -> None:
    members = CROWD
    reports: dict[int, Any] = {}

    def one(i: int) -> tuple[str, grpc.StatusCode]:
        who = members[i % len(members)]
        with net.channel(who, NODE) as channel:
            try:
                if who.startswith("police"):
                    lgrpc.LiaisonServiceStub(channel).ListReferrals(
                        lpb.ListReferralsRequest(page_size=5), timeout=30
                    )
                elif i % 2:
                    fed_grpc.FederationServiceStub(channel).GetRoster(ROSTER, timeout=30)
                else:
                    report = make_report(who, "DK")
                    reports[i] = report
                    deliver(
                        fed_grpc.FederationServiceStub(channel),
                        [item(sign_report(report, keys[who]))],
                        timeout=30,
                    )
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    limit_of(exc)  # an admission refusal, with its details
                return who, exc.code()
        return who, grpc.StatusCode.OK

    keys = {m: net.signing_key(m) for m in members if not m.startswith("police")}
    with futures.ThreadPoolExecutor(max_workers=clients) as pool:
        pending = [pool.submit(one, i) for i in range(clients)]
        assert net.healthy(NODE, timeout=DEADLINE)  # while the crowd is at it
        _, hanging = futures.wait(pending, timeout=120)
    assert not hanging, f"{len(hanging)} calls never answered"
    outcomes = [f.result() for f in pending]
    codes = {code for _, code in outcomes}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    for who in members:
        assert (who, grpc.StatusCode.OK) in outcomes, f"{who} was never served"
    for i, report in reports.items():
        served = outcomes[i][1] is grpc.StatusCode.OK
        stored = count_inbound(net, NODE, report.report_id)
        assert stored == (1 if served else 0), "refused items must not be stored, served ones once"
    assert net.healthy(NODE, timeout=DEADLINE)
    with net.stub("hotline-fi", NODE) as stub:
        assert stub.GetRoster(ROSTER, timeout=DEADLINE).HasField("roster")


def test_a_hundred_concurrent_clients_are_all_answered(net: Network) -> None:
    """100 clients of 4 members call at once (Deliver, GetRoster, ListReferrals),
    expect every call answered OK or RESOURCE_EXHAUSTED, none hanging, every member
    served at least once, refused items never stored, and the node healthy."""
    _crowd(net, 100)


@pytest.mark.long
def test_five_hundred_concurrent_clients_are_all_answered(net: Network) -> None:
    """As the short variant with 500 clients."""
    _crowd(net, 500)


# --- what is never limited, and metadata ----------------------------------------------


def test_health_and_reflection_answer_a_member_being_refused(net: Network) -> None:
    """Member X runs its rate dry until refused, expect its health checks and
    reflection requests still answered, 30 of each."""
    x = "hotline-is"
    with net.stub(x, NODE) as stub:
        for _ in range(10 * BURST):
            try:
                stub.GetRoster(ROSTER, timeout=DEADLINE)
            except grpc.RpcError as exc:
                assert limit_of(exc) == "calls_per_second"
                break
        else:
            pytest.fail("the member was never refused")
    with net.channel(x, NODE) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        for _ in range(30):
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            answers = list(
                reflect.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                    timeout=DEADLINE,
                )
            )
            names = {s.name for s in answers[0].list_services_response.service}
            assert "hfp.v1.FederationService" in names


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((("x-big", "a" * (16 * 1024 + 1)),), id="one-17KiB-header"),
        pytest.param(tuple((f"x-h{i}", "b" * 500) for i in range(40)), id="40-small-headers"),
        pytest.param((("x-huge", "c" * (512 * 1024)),), id="one-512KiB-header"),
    ],
)
def test_oversized_metadata_gets_a_defined_error_and_the_node_keeps_serving(
    net: Network, metadata: Sequence[tuple[str, str]]
) -> None:
    """Send calls with over 16 KiB of metadata, expect RESOURCE_EXHAUSTED every time
    (never served, never a hang), while 8 KiB is served and the same connection
    and the health check keep working."""
    with net.stub("secretariat", NODE) as stub:
        for _ in range(5):
            error = refusal(lambda: stub.GetRoster(ROSTER, timeout=DEADLINE, metadata=metadata))
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "metadata" in (error.details() or "")
        served = stub.GetRoster(ROSTER, timeout=DEADLINE, metadata=(("x-ok", "d" * 8192),))
        assert served.HasField("roster")
        assert stub.GetRoster(ROSTER, timeout=DEADLINE).HasField("roster")
    assert healthy(net, "secretariat")


def test_concurrent_streams_and_calls_leave_no_slot_behind(net: Network) -> None:
    """Liaison A opens and abandons (cancels) 12 streams in a row from 4 threads,
    expect each either served or refused, never hanging, and afterwards both its
    slots free again: no slot leaks when streams are cancelled mid-flight."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def churn() -> None:
        for _ in range(3):
            try:
                with net.channel(POLICE_5, NODE) as channel:
                    call = watch(channel)
                    try:
                        next(call)
                    except grpc.RpcError as exc:
                        assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                        limit_of(exc)
                    finally:
                        call.cancel()
            except BaseException as exc:
                with lock:
                    errors.append(exc)
            time.sleep(4 / RATE)  # 4 threads together stay within the rate

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a stream hung"
    assert not errors, errors
    # Both slots free again (a leaked one would never be: watching waits, bounded).
    with watching(net, POLICE_5, STREAMS_PER_MEMBER) as calls:
        assert len(calls) == STREAMS_PER_MEMBER
