"""Graceful shutdown (SIGTERM) of hotline-nl's node with 200 Deliver calls in flight.

What a sender may rely on, and this test checks:

* health turns NOT_SERVING as the drain starts (a health Watch stream opened
  before sees it while calls are still being answered);
* a call the node took in is answered: OK with its receipts, or, if the grace
  period runs out first, UNAVAILABLE; a call whose items were committed is
  never left without them being stored, so its retry after the restart gets
  the very receipts stored then;
* calls made after the drain started are refused with UNAVAILABLE and store
  nothing;
* after the restart every item is stored exactly once.

One deviation from "UNAVAILABLE" is tolerated, because it comes from gRPC
itself and is just as safe to retry: calls that reached gRPC but had not yet
been handed to the node's code when shutdown began are failed by gRPC with
CANCELLED at once. Such a call must have stored nothing.

The node serves 16 calls at a time (worker_threads); the other calls queue,
which is part of what is tested. Its per-member admission limits are raised
so that one member may have all 200 calls in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.devnet import processes
from federation.node.config import NodeConfig
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from tests.support.crashes import (
    id_counts,
    log_text,
    set_check,
    start_node,
    stored_receipts_of,
    wait_until,
)
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    create_network,
    item,
    make_report,
    outcome_name,
    sign_report,
    small_members,
    stop,
    terminate,
    verify_receipt,
    wait_exited,
)

NODE, SENDER = "hotline-nl", "hotline-dk"
CALLS = 200
LATE_CALLS = 5
#: How a call in flight at shutdown may end, and how a call made after it may.
ANSWERS = frozenset({grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
REFUSALS = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
#: Deadline of every in-flight call: the node's grace period (10 s) plus ample time.
CALL_DEADLINE = 60.0


def node_env(grace: float) -> dict[str, str]:
    """The node's grace period, and admission limits that let one member have
    every call in flight at once."""
    env = {"HFED_GRACE_SECONDS": str(grace)}
    if "admission" in NodeConfig.model_fields:
        env |= {
            "HFED_ADMISSION__CALLS_IN_FLIGHT_PER_MEMBER": "256",
            "HFED_ADMISSION__CALLS_PER_SECOND": "10000",
            "HFED_ADMISSION__BURST": "10000",
        }
    return env


@contextmanager
def shutdown_network(directory: Path, env: dict[str, str]) -> Iterator[Network]:
    """A network where only the node under test runs, started with ``env``."""
    network = create_network(directory, small_members(NODE))
    try:
        start_node(network, NODE, env)
        yield network
    finally:
        stop(network.directory)


@dataclass
class Call:
    """One Deliver call and how it ended."""

    request: fed_pb.DeliverRequest
    ids: list[str]
    code: grpc.StatusCode | None = None
    receipts: list[bytes] = field(default_factory=list)
    ended: float = 0.0


def _calls(net: Network, count: int, size: int) -> list[Call]:
    key = net.signing_key(SENDER)
    calls = []
    for _ in range(count):
        reports = [make_report(SENDER, "NL") for _ in range(size)]
        request = fed_pb.DeliverRequest(items=[item(sign_report(r, key)) for r in reports])
        calls.append(Call(request, [r.report_id for r in reports]))
    return calls


Pending = Any  # grpc.Future of a DeliverResponse (also a grpc.Call)


def _start(stub: fed_grpc.FederationServiceStub, call: Call) -> Pending:
    future = stub.Deliver.future(call.request, timeout=CALL_DEADLINE)

    def done(finished: Pending) -> None:
        call.ended = time.monotonic()
        error = finished.exception()
        if error is None:
            call.code = grpc.StatusCode.OK
            call.receipts = [r.SerializeToString() for r in finished.result().receipts]
        else:
            call.code = error.code()

    future.add_done_callback(done)
    return future


class HealthWatch:
    """A health Watch stream, opened before the shutdown, recording every status."""

    def __init__(self, net: Network) -> None:
        self.seen: list[tuple[float, int]] = []
        self.not_serving = threading.Event()
        self.error: grpc.RpcError | None = None
        self._context = net.channel(SENDER, NODE)
        channel = self._context.__enter__()
        stub = health_pb2_grpc.HealthStub(channel)
        self._stream = stub.Watch(health_pb2.HealthCheckRequest(), timeout=CALL_DEADLINE)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for reply in self._stream:
                self.seen.append((time.monotonic(), reply.status))
                if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    self.not_serving.set()
        except grpc.RpcError as exc:  # the stream ends with the server
            self.error = exc

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(DEADLINE)
        self._context.__exit__(None, None, None)


@pytest.mark.timeout(300)
def test_sigterm_with_200_calls_in_flight_answers_or_refuses_cleanly(tmp_path: Path) -> None:
    """Start 200 Deliver calls of 10 items, SIGTERM the node while they run, then make
    5 more calls: expect health NOT_SERVING while calls still complete, each in-flight
    call OK with receipts or UNAVAILABLE, the late calls UNAVAILABLE, and after
    a restart every item stored once with the receipts already given, nothing lost."""
    env = node_env(grace=10.0)
    with shutdown_network(tmp_path / "net", env) as snet:
        _shutdown_with_calls_in_flight(snet, env, items_per_call=10, drains=True)


@pytest.mark.timeout(300)
def test_grace_running_out_refuses_retryably_and_keeps_commits(tmp_path: Path) -> None:
    """Start 200 Deliver calls of 20 items, SIGTERM a node whose grace period (0.3 s)
    ends long before they can all be served: expect the cut-off calls to fail with a
    retryable code, any items they committed stored and answered on retry with the
    same receipts, every item stored once after the restart, nothing lost."""
    env = node_env(grace=0.3)
    with shutdown_network(tmp_path / "net", env) as snet:
        codes = _shutdown_with_calls_in_flight(snet, env, items_per_call=20, drains=False)
    assert sum(n for code, n in codes.items() if code != "OK") > 0, "the grace never ran out"


def _shutdown_with_calls_in_flight(
    snet: Network, env: dict[str, str], items_per_call: int, drains: bool
) -> dict[str, int]:
    """The scenario of both tests; how the in-flight calls ended (code name: count).

    ``drains``: the grace period is long enough for calls to complete after
    health turned NOT_SERVING, and at least one must.
    """
    calls = _calls(snet, CALLS, items_per_call)
    late = _calls(snet, LATE_CALLS, items_per_call)
    pid = snet.pid(NODE)
    watch = HealthWatch(snet)
    try:
        assert wait_until(lambda: bool(watch.seen), DEADLINE, 0.05), "no health status"
        with snet.stub(SENDER, NODE) as stub:
            futures = [_start(stub, call) for call in calls]
            # Shut down once the node has committed the first of them.
            assert wait_until(
                lambda: any(stored_receipts_of(snet, NODE, c.ids[:1]) for c in calls[:20]),
                BULK_DEADLINE,
                0.01,
            ), "no call was ever committed"
            terminate(pid)
            assert watch.not_serving.wait(BULK_DEADLINE), (
                f"health never turned NOT_SERVING: {watch.seen}, {watch.error}\n"
                + log_text(snet, NODE)[-3000:]
            )
            draining = time.monotonic()
            with snet.stub(SENDER, NODE) as late_stub:
                late_futures = [_start(late_stub, call) for call in late]
                for future in late_futures:
                    future.exception(timeout=CALL_DEADLINE)
            for future in futures:
                future.exception(timeout=CALL_DEADLINE)
    finally:
        watch.close()
    assert wait_exited(pid, processes.STOP_GRACE + 10), "node did not exit after SIGTERM"
    assert '"node stopped"' in log_text(snet, NODE).rsplit('"node serving"', 1)[-1]

    codes: dict[str, int] = {}
    for call in calls:
        name = call.code.name if call.code else "NONE"
        codes[name] = codes.get(name, 0) + 1
    print(f"\nin-flight calls: {codes}; late calls: {[c.code for c in late]}")
    assert all(c.code in ANSWERS for c in calls), codes
    assert all(c.code in REFUSALS for c in late), [c.code for c in late]
    assert watch.seen[0][1] == health_pb2.HealthCheckResponse.SERVING
    if drains:
        # The node said NOT_SERVING while it was still answering calls it had taken in.
        assert any(c.code == grpc.StatusCode.OK and c.ended > draining for c in calls), (
            "no call completed after health turned NOT_SERVING"
        )

    # Before the restart: late calls stored nothing; a failed call's items are
    # either not stored or stored with the receipt its retry must get.
    late_ids = [i for c in late for i in c.ids]
    assert stored_receipts_of(snet, NODE, late_ids) == {}
    stored_before = stored_receipts_of(snet, NODE, [i for c in calls for i in c.ids])
    for call in calls:
        if call.code == grpc.StatusCode.OK:
            assert [stored_before.get(i) for i in call.ids] == call.receipts
    unanswered = [c for c in calls if c.code != grpc.StatusCode.OK]
    committed = sum(1 for c in unanswered if c.ids[0] in stored_before)
    print(f"failed calls: {len(unanswered)}, of which committed before the exit: {committed}")
    for call in unanswered:
        # A batch commits in one transaction: all of its items or none.
        assert len([i for i in call.ids if i in stored_before]) in (0, len(call.ids))
        if call.code == grpc.StatusCode.CANCELLED:
            assert call.ids[0] not in stored_before, "a CANCELLED call had been taken in"

    start_node(snet, NODE, env)
    roster = snet.bootstrap_roster().roster
    with snet.stub(SENDER, NODE) as stub:
        for call in [*calls, *late]:
            reply = stub.Deliver(call.request, timeout=BULK_DEADLINE)
            receipts = [r.SerializeToString() for r in reply.receipts]
            if call.code == grpc.StatusCode.OK:
                assert receipts == call.receipts, "a redelivery got different receipts"
            for item_id, data in zip(call.ids, receipts, strict=True):
                if item_id in stored_before:
                    assert data == stored_before[item_id], "a retry got a new receipt"
            for signed in reply.receipts:
                assert outcome_name(verify_receipt(snet, signed, roster)) == "OUTCOME_ACCEPTED"

    everything = [i for c in [*calls, *late] for i in c.ids]
    check = set_check(
        everything,
        id_counts(snet, NODE, "inbound_items", "item_id"),
        id_counts(snet, NODE, "case_reports", "report_id"),
    )
    print(check.summary())
    assert check.ok, check.summary()
    return codes
