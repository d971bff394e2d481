"""Client resilience: the pushback a refusing peer asks for, and the retry
service config of the CLI's and liaison client's channels."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from peers.channel import IDEMPOTENT_CALLS, client_options, insecure_channel
from peers.outbox import KEEP_CHANNEL
from peers.pushback import MAX_PUSHBACK, requested_wait


def _status_with_retry_info(millis: int) -> bytes:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(millis)
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down")
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status.SerializeToString()


def test_pushback_is_read_from_the_trailer_and_from_retry_info() -> None:
    assert requested_wait([("grpc-retry-pushback-ms", "1500")]) == timedelta(milliseconds=1500)
    details = ("grpc-status-details-bin", _status_with_retry_info(2500))
    assert requested_wait([details]) == timedelta(milliseconds=2500)
    # Both present: the longer wait; nothing usable: no wait asked for.
    both = [("grpc-retry-pushback-ms", "1000"), details]
    assert requested_wait(both) == timedelta(milliseconds=2500)
    assert requested_wait([("grpc-retry-pushback-ms", "soon"), ("x", "1")]) is None
    assert requested_wait([("grpc-status-details-bin", b"\xff\xfe garbage")]) is None


def test_a_peer_cannot_park_the_queue_for_ever() -> None:
    assert requested_wait([("grpc-retry-pushback-ms", str(10**9))]) == MAX_PUSHBACK


def test_the_outbox_keeps_its_channel_only_on_a_load_refusal() -> None:
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in KEEP_CHANNEL
    assert grpc.StatusCode.UNAVAILABLE not in KEEP_CHANNEL


def test_every_idempotent_call_named_exists() -> None:
    for service, methods in IDEMPOTENT_CALLS.items():
        for method in methods:
            assert method in service.methods_by_name, f"{service.full_name}/{method}"
    assert "SubmitReport" not in IDEMPOTENT_CALLS[pb.DESCRIPTOR.services_by_name["HotlineService"]]


class _FlakyHotline(pb_grpc.HotlineServiceServicer):
    """Answers every method UNAVAILABLE on its first call, then OK."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def _first_fails(self, name: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            first = self.calls[name] == 1
        if first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

    def GetStats(
        self, request: pb.GetStatsRequest, context: grpc.ServicerContext
    ) -> pb.GetStatsResponse:
        self._first_fails("GetStats", context)
        return pb.GetStatsResponse()

    def SubmitReport(
        self, request: pb.SubmitReportRequest, context: grpc.ServicerContext
    ) -> pb.SubmitReportResponse:
        self._first_fails("SubmitReport", context)
        return pb.SubmitReportResponse()


@pytest.fixture
def flaky() -> Iterator[tuple[str, _FlakyHotline]]:
    servicer = _FlakyHotline()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_HotlineServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_a_read_is_retried_after_unavailable(flaky: tuple[str, _FlakyHotline]) -> None:
    endpoint, servicer = flaky
    with insecure_channel(endpoint, client_options()) as channel:
        pb_grpc.HotlineServiceStub(channel).GetStats(pb.GetStatsRequest(), timeout=10)
    assert servicer.calls["GetStats"] == 2


def test_a_write_is_not_retried(flaky: tuple[str, _FlakyHotline]) -> None:
    endpoint, servicer = flaky
    stub_call = pb_grpc.HotlineServiceStub
    with (
        insecure_channel(endpoint, client_options()) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        stub_call(channel).SubmitReport(pb.SubmitReportRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert servicer.calls["SubmitReport"] == 1


def test_without_the_client_options_nothing_is_retried(flaky: tuple[str, _FlakyHotline]) -> None:
    endpoint, servicer = flaky
    with insecure_channel(endpoint) as channel, pytest.raises(grpc.RpcError):
        pb_grpc.HotlineServiceStub(channel).GetStats(pb.GetStatsRequest(), timeout=10)
    assert servicer.calls["GetStats"] == 1
