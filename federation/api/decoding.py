"""Requests that do not decode get INVALID_ARGUMENT, not INTERNAL.

gRPC decodes a request with the method's deserializer before any of our code
runs, and answers a decoding failure (truncated bytes, invalid UTF-8 in a
string field, nesting deeper than the parser allows) with a bare INTERNAL
"Exception deserializing request!". That is our error class for bugs, and the
protocol has no INTERNAL for malformed input. This interceptor swaps in a
deserializer that returns a marker instead of raising, and the method then
answers INVALID_ARGUMENT with the usual catalog details.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError

from federation.api.errors import abort
from federation.api.interceptors import Behavior, Handler, HandlerWrapper
from federation.errors import InvalidArgumentError
from federation.wire.errors import MalformedMessageError

log = structlog.get_logger(__name__)

Deserializer = Callable[[bytes], Any]
T = TypeVar("T")


def from_request(convert: Callable[[], T]) -> T:
    """``convert()`` of fields of a request that decoded but holds a value out of
    range (a Timestamp past year 9999, negative nanos): INVALID_ARGUMENT naming
    the field, never the INTERNAL an escaped conversion error would become."""
    try:
        return convert()
    except MalformedMessageError as exc:
        raise InvalidArgumentError(str(exc)) from exc


class Undecodable:
    """Stands for a request whose bytes did not decode."""

    __slots__ = ()


UNDECODABLE = Undecodable()


def tolerant(deserialize: Deserializer) -> Deserializer:
    """``deserialize``, returning UNDECODABLE instead of raising on bad bytes."""

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, RecursionError, ValueError, UnicodeDecodeError):
            return UNDECODABLE

    return decode


def _refuse(method: str, context: grpc.ServicerContext) -> None:
    log.info("call refused", rpc=method, error="InvalidArgumentError", detail="undecodable")
    abort(context, InvalidArgumentError("the request does not decode as this method's message"))


class DecodeGuard(HandlerWrapper):
    """Applies the tolerant decoding to every method of ``services`` (full names)."""

    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler with a deserializer that cannot raise."""
        return _guarded(handler, method)


def _guarded(handler: Handler, method: str) -> Handler:
    codec = {
        "request_deserializer": tolerant(handler.request_deserializer)
        if handler.request_deserializer
        else None,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, method), **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_stream(handler.unary_stream, method), **codec)
    return handler  # client-streaming methods: none in HFP v1


def _unary(behavior: Behavior, method: str) -> Behavior:
    def checked(request: Any, context: grpc.ServicerContext) -> Any:
        if request is UNDECODABLE:
            _refuse(method, context)
        return behavior(request, context)

    return checked


def _stream(behavior: Behavior, method: str) -> Behavior:
    def checked(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if request is UNDECODABLE:
            _refuse(method, context)
        return behavior(request, context)  # type: ignore[no-any-return]

    return checked
