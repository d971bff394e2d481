"""A server span per served unary call, continuing the caller's trace.

The one place where the node reads a trace context from a call: the W3C
``traceparent`` metadata the caller's gRPC client
instrumentation sent (peers/channel.py). Written here rather than taken from
opentelemetry-instrumentation-grpc's server interceptor because that one
records the caller's address and user agent, puts the status details in the
span, and replaces the method handler without the thread pool the client
lane gives it; this one names the span by method, records the status code
only, and keeps the pool. Baggage from a caller is ignored.

Streams (WatchReferrals) get no span of their own: one could last for days;
each event they send is a span of the trace that logged it (api/liaison.py).
Installed only with tracing on, so with it off a call pays nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import grpc
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from federation.api.call_metrics import method_label
from federation.api.interceptors import Behavior, Handler, HandlerWrapper, ended, keep_pool
from federation.runtime.tracing import TRACEPARENT, Tracing


def _traceparent(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == TRACEPARENT and isinstance(value, str):
            return value
    return None


class CallSpans(HandlerWrapper):
    """Wraps the unary methods of ``services`` (full names) in server spans."""

    def __init__(self, tracing: Tracing, services: Collection[str]) -> None:
        super().__init__(services)
        self._tracing = tracing

    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler in a span (its thread pool kept); streams pass unchanged."""
        if handler.unary_unary is None:
            return handler
        behavior = self._unary(handler.unary_unary, method)
        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, behavior: Behavior, method: str) -> Behavior:
        name = method_label(method)
        service, _, rpc = method[1:].partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}
        tracing = self._tracing

        def traced(request: Any, context: grpc.ServicerContext) -> Any:
            with tracing.span(
                name, attributes, parent=_traceparent(context), kind=SpanKind.SERVER
            ) as span:
                code = grpc.StatusCode.UNKNOWN
                try:
                    response = behavior(request, context)
                    code = ended(context, grpc.StatusCode.OK)
                except BaseException:
                    code = ended(context, grpc.StatusCode.UNKNOWN)
                    raise
                finally:
                    _finish(span, code)
                return response

        return keep_pool(behavior, traced)


def _finish(span: Span | None, code: grpc.StatusCode) -> None:
    """The call's status code on its span (the code's name only, never details)."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, code.name))
