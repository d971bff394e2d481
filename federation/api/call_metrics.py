"""Per-method metrics of served calls: how many, with which status, how long.

The outermost wrapper of the node's services, so that calls refused by
admission or decoding are counted too. A unary call is counted when its
method returns or raises; a streaming call when the RPC ends, however it
ends (gRPC leaves a cancelled stream's generator suspended, so the end of the
generator would miss it). Per call: two clock reads, one dictionary lookup
and prometheus_client's own locked increments; nothing per item.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from federation.api.interceptors import Behavior, Handler, HandlerWrapper, ended, keep_pool
from federation.runtime.metrics import NodeMetrics


class _Method:
    """The metric children of one method, so a call does not look labels up."""

    __slots__ = ("_by_code", "_calls", "_duration", "_name")

    def __init__(self, metrics: NodeMetrics, name: str) -> None:
        self._name = name
        self._calls: Counter = metrics.rpc_calls
        self._duration: Histogram = metrics.rpc_duration.labels(name)
        self._by_code: dict[grpc.StatusCode, Counter] = {}

    def record(self, code: grpc.StatusCode, started: float) -> None:
        """One call of this method ended with ``code``, ``started`` by perf_counter."""
        self._duration.observe(time.perf_counter() - started)
        child = self._by_code.get(code)
        if child is None:  # first call with this code; a racing twin finds the same child
            child = self._by_code[code] = self._calls.labels(self._name, code.name)
        child.inc()


def method_label(method: str) -> str:
    """``/hfp.v1.FederationService/Deliver`` -> ``FederationService/Deliver``."""
    service, _, name = method[1:].partition("/")
    return f"{service.rpartition('.')[2]}/{name}"


class CallMetrics(HandlerWrapper):
    """Counts and times the calls of ``services`` (full names) into ``metrics``."""

    def __init__(self, metrics: NodeMetrics, services: Collection[str]) -> None:
        super().__init__(services)
        self._metrics = metrics

    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler, counted (its thread pool kept)."""
        counted = _Method(self._metrics, method_label(method))
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            behavior = _unary(handler.unary_unary, counted)
            return grpc.unary_unary_rpc_method_handler(behavior, **codec)
        if handler.unary_stream is not None:
            behavior = _stream(handler.unary_stream, counted)
            return grpc.unary_stream_rpc_method_handler(behavior, **codec)
        return handler  # client-streaming methods: none in HFP v1


def _unary(behavior: Behavior, counted: _Method) -> Behavior:
    def timed(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            response = behavior(request, context)
        except BaseException:
            counted.record(ended(context, grpc.StatusCode.UNKNOWN), started)
            raise
        counted.record(ended(context, grpc.StatusCode.OK), started)
        return response

    return keep_pool(behavior, timed)


def _stream(behavior: Behavior, counted: _Method) -> Behavior:
    def timed(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        # The code a stream that set none ends with: CANCELLED unless its
        # responses ran out (OK) or its generator raised (UNKNOWN).
        ending = [grpc.StatusCode.CANCELLED]

        def at_end() -> None:
            counted.record(ended(context, ending[0]), started)

        if not context.add_callback(at_end):
            at_end()  # the call is already over
        return _watched(behavior(request, context), ending)

    return keep_pool(behavior, timed)


def _watched(responses: Iterable[Any], ending: list[grpc.StatusCode]) -> Iterator[Any]:
    try:
        yield from responses
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            ending[0] = grpc.StatusCode.UNKNOWN
        raise
    ending[0] = grpc.StatusCode.OK
