"""Per-RPC metrics: every call counted once with its status code, streams when they end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from federation.api.call_metrics import CallMetrics, method_label
from federation.runtime.metrics import NodeMetrics

SERVICE = "test.v1.Probe"


def _ok(request: bytes, _context: grpc.ServicerContext) -> bytes:
    return request


def _refused(_request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort returned")


def _three(_request: bytes, _context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from (b"1", b"2", b"3")


def _endless(_request: bytes, _context: grpc.ServicerContext) -> Iterator[bytes]:
    while True:
        yield b"x"
        time.sleep(0.01)


@pytest.fixture
def probe() -> Iterator[tuple[grpc.Channel, NodeMetrics]]:
    """A server with one probe service behind CallMetrics, and a channel to it."""
    metrics = NodeMetrics()
    handlers = {
        "Ok": grpc.unary_unary_rpc_method_handler(_ok),
        "Refused": grpc.unary_unary_rpc_method_handler(_refused),
        "Three": grpc.unary_stream_rpc_method_handler(_three),
        "Endless": grpc.unary_stream_rpc_method_handler(_endless),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(4), interceptors=[CallMetrics(metrics, [SERVICE])]
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, metrics
    finally:
        server.stop(None)


def calls(metrics: NodeMetrics, method: str, code: str) -> float:
    """The calls counter of one method and code."""
    labels = {"method": f"Probe/{method}", "code": code}
    return metrics.registry.get_sample_value("hfed_rpc_calls_total", labels) or 0.0


def eventually(check: Any, timeout: float = 5.0) -> bool:
    """``check()`` became true within ``timeout`` (stream ends are counted from gRPC's thread)."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(check())


def test_unary_calls_counted_with_their_code(probe: tuple[grpc.Channel, NodeMetrics]) -> None:
    channel, metrics = probe
    ok = channel.unary_unary(f"/{SERVICE}/Ok")
    refused = channel.unary_unary(f"/{SERVICE}/Refused")
    for _ in range(3):
        assert ok(b"hi", timeout=5) == b"hi"
    with pytest.raises(grpc.RpcError):
        refused(b"", timeout=5)
    assert calls(metrics, "Ok", "OK") == 3
    assert calls(metrics, "Refused", "NOT_FOUND") == 1
    count = metrics.registry.get_sample_value(
        "hfed_rpc_duration_seconds_count", {"method": "Probe/Ok"}
    )
    assert count == 3


def test_streams_counted_when_they_end(probe: tuple[grpc.Channel, NodeMetrics]) -> None:
    channel, metrics = probe
    assert list(channel.unary_stream(f"/{SERVICE}/Three")(b"", timeout=5)) == [b"1", b"2", b"3"]
    assert eventually(lambda: calls(metrics, "Three", "OK") == 1)
    stream = channel.unary_stream(f"/{SERVICE}/Endless")(b"", timeout=5)
    next(stream)
    assert calls(metrics, "Endless", "CANCELLED") == 0
    stream.cancel()
    assert eventually(lambda: calls(metrics, "Endless", "CANCELLED") == 1)
    assert calls(metrics, "Endless", "OK") == 0


def test_method_label_drops_the_package() -> None:
    assert method_label("/hfp.v1.FederationService/Deliver") == "FederationService/Deliver"
