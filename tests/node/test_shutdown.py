"""Health and graceful shutdown of a node process, on a network of its own.

SIGTERM while Deliver calls are in flight: calls the node accepted complete
OK (their items durable), calls that arrive after shutdown began fail with
UNAVAILABLE (safe to retry), and nothing else happens. ``devnet up`` brings
the node back with its data.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.devnet import processes
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    count_inbound,
    deliver,
    item,
    make_report,
    outcome_name,
    running_network,
    sign_report,
    small_members,
    start,
    terminate,
    verify_receipt,
    wait_exited,
)

NODE = "hotline-nl"
SENDER = "hotline-dk"
BATCH = 500
#: Linux x86-64 system call number of tgkill(2).
TGKILL_SYSCALL = 234
#: Attempts at catching calls in flight (a busy machine may delay the client).
ATTEMPTS = 3


@pytest.fixture(scope="module")
def snet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("shutdown") / "net"
    with running_network(directory, small_members(NODE)) as network:
        yield network


@dataclass
class Call:
    """One Deliver call made during shutdown and how it ended."""

    request: fed_pb.DeliverRequest
    report_ids: list[str]
    code: grpc.StatusCode | None = None
    receipts: list[bytes] = field(default_factory=list)
    ended: float = 0.0


def _batch(net: Network) -> Call:
    key = net.signing_key(SENDER)
    reports = [make_report(SENDER, "NL") for _ in range(BATCH)]
    request = fed_pb.DeliverRequest(items=[item(sign_report(r, key)) for r in reports])
    return Call(request, [r.report_id for r in reports])


def _run(stub: fed_grpc.FederationServiceStub, call: Call) -> None:
    try:
        reply = stub.Deliver(call.request, timeout=BULK_DEADLINE)
        call.code = grpc.StatusCode.OK
        call.receipts = [r.SerializeToString() for r in reply.receipts]
    except grpc.RpcError as exc:
        call.code = exc.code()
    call.ended = time.monotonic()


def _shutdown_during(net: Network, calls: list[Call], late: Call) -> float:
    """Start ``calls``, SIGTERM the node, then start ``late``; returns the kill time."""
    pid = net.pid(NODE)
    with net.stub(SENDER, NODE) as stub:
        stub.GetRoster(fed_pb.GetRosterRequest(known_version=1 << 62), timeout=DEADLINE)  # warm
        threads = [threading.Thread(target=_run, args=(stub, c)) for c in calls]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
        killed = time.monotonic()
        terminate(pid)
        time.sleep(0.05)
        late_thread = threading.Thread(target=_run, args=(stub, late))
        late_thread.start()
        for thread in [*threads, late_thread]:
            thread.join(BULK_DEADLINE + 5)
            assert not thread.is_alive()
    assert wait_exited(pid, processes.STOP_GRACE + 5), "node did not exit after SIGTERM"
    return killed


def _health(net: Network) -> object:
    with net.channel(SENDER, NODE) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            return stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0).status
        except grpc.RpcError as exc:
            return exc.code()


def _stopped_cleanly(net: Network) -> bool:
    """The node's log shows "node stopped" after its last "node serving"."""
    lines = (net.directory / "members" / NODE / "node.log").read_text().splitlines()
    served = max(i for i, line in enumerate(lines) if '"node serving"' in line)
    return any('"node stopped"' in line for line in lines[served:])


def test_health_reports_serving(snet: Network) -> None:
    assert _health(snet) == health_pb2.HealthCheckResponse.SERVING
    with snet.channel(SENDER, NODE) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(
            health_pb2.HealthCheckRequest(service="hfp.v1.FederationService"), timeout=DEADLINE
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_in_flight_calls_and_keeps_data(snet: Network) -> None:
    key = snet.signing_key(SENDER)
    stored = make_report(SENDER, "NL")
    with snet.stub(SENDER, NODE) as stub:
        (stored_receipt,) = deliver(stub, [item(sign_report(stored, key))])

    everything: list[Call] = []
    drained = False
    for _ in range(ATTEMPTS):
        calls, late = [_batch(snet) for _ in range(3)], _batch(snet)
        everything += [*calls, late]
        killed = _shutdown_during(snet, calls, late)

        for call in [*calls, late]:
            assert call.code in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE), call.code
        drained = any(c.code == grpc.StatusCode.OK and c.ended > killed for c in calls)
        assert _health(snet) != health_pb2.HealthCheckResponse.SERVING
        assert _stopped_cleanly(snet), "the node's last run did not log a clean stop"

        start(snet.directory)
        assert _health(snet) == health_pb2.HealthCheckResponse.SERVING
        if drained:
            break
    assert drained, "no Deliver call was in flight when SIGTERM arrived, in any attempt"

    with snet.stub(SENDER, NODE) as stub:
        (again,) = deliver(stub, [item(sign_report(stored, key))])
        assert again.SerializeToString() == stored_receipt.SerializeToString()
        for call in everything:
            receipts = deliver(stub, list(call.request.items), timeout=BULK_DEADLINE)
            if call.code == grpc.StatusCode.OK:
                # Acknowledged during shutdown: stored, answered byte for byte.
                assert [r.SerializeToString() for r in receipts] == call.receipts
                assert outcome_name(verify_receipt(snet, receipts[-1])) == "OUTCOME_ACCEPTED"
            else:
                # Refused with UNAVAILABLE: safe to retry, accepted now.
                verified = verify_receipt(snet, receipts[0])
                assert outcome_name(verified) == "OUTCOME_ACCEPTED"
    for call in everything:
        assert count_inbound(snet, NODE, call.report_ids[0]) == 1
        assert count_inbound(snet, NODE, call.report_ids[-1]) == 1


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send a signal to one thread of a process (Linux tgkill)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL_SYSCALL, pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="tgkill syscall number is x86-64's")
def test_sigterm_delivered_to_a_grpc_thread_still_stops_the_node(snet: Network) -> None:
    """The kernel may hand a process-wide SIGTERM to any thread; sent to a
    thread other than the main one, the node must still stop cleanly (it
    once slept through it forever in an untimed wait)."""
    pid = snet.pid(NODE)
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    assert threads, "the node runs no thread besides its main one"
    _tgkill(pid, threads[-1], signal.SIGTERM)
    assert wait_exited(pid, processes.STOP_GRACE + 5), "node slept through SIGTERM"
    assert _stopped_cleanly(snet)
    start(snet.directory)
    assert _health(snet) == health_pb2.HealthCheckResponse.SERVING
