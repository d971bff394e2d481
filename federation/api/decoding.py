"""Requests that do not decode get INVALID_ARGUMENT, not INTERNAL.

gRPC decodes a request with the method's deserializer before any of our code
runs, and answers a decoding failure (truncated bytes, invalid UTF-8 in a
string field, nesting deeper than the parser allows) with a bare INTERNAL
"Exception deserializing request!". That is our error class for bugs, and the
protocol has no INTERNAL for malformed input. This interceptor swaps in a
deserializer that returns a marker instead of raising, and the method then
answers INVALID_ARGUMENT (reason UNDECODABLE_REQUEST) through the one error
path of ``federation.api.errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from federation.api.errors import refuse
from federation.api.interceptors import Behavior, Handler, HandlerWrapper
from federation.core.errors import UNDECODABLE_REQUEST, InvalidArgumentError
from federation.wire.errors import MalformedMessageError

Deserializer = Callable[[bytes], Any]
T = TypeVar("T")


def from_request(convert: Callable[[], T], within: str = "") -> T:
    """``convert()`` of fields of a request that decoded but holds a value out of
    range (a Timestamp past year 9999, negative nanos): INVALID_ARGUMENT naming
    the field, its path starting at the request field ``within`` when given."""
    try:
        return convert()
    except MalformedMessageError as exc:
        path = field_path(within, exc.field)
        raise InvalidArgumentError(exc.reason, str(exc), field=path) from exc


def field_path(within: str, field: str) -> str:
    """``within.field``, or whichever of the two is given."""
    return ".".join(part for part in (within, field) if part)


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
    undecodable = "the request does not decode as this method's message"
    refuse(context, method, InvalidArgumentError(UNDECODABLE_REQUEST, undecodable))


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
