"""How long a peer asked us to wait before calling it again.

A peer that refuses a call for load (RESOURCE_EXHAUSTED) says when to retry
twice over: gRPC's ``grpc-retry-pushback-ms`` trailer (gRFC A6) and a
``google.rpc.RetryInfo`` in the rich status (federation/api/errors.py sends
both). The outbox waits at least that long before its next call to the peer,
whatever its own backoff would allow.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

PUSHBACK_METADATA = "grpc-retry-pushback-ms"
STATUS_DETAILS_METADATA = "grpc-status-details-bin"
#: A peer cannot make us wait longer than this per refusal (a hostile or broken
#: peer would otherwise park our queue for it indefinitely with one answer).
MAX_PUSHBACK = timedelta(minutes=10)


def _from_trailer(value: str | bytes) -> timedelta | None:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return timedelta(milliseconds=int(text)) if text.strip().isdigit() else None


def _from_status(value: str | bytes) -> timedelta | None:
    if not isinstance(value, bytes):
        return None
    try:
        status = status_pb2.Status.FromString(value)
    except DecodeError:
        return None
    info = error_details_pb2.RetryInfo()
    for detail in status.details:
        if detail.Unpack(info):
            wait: timedelta = info.retry_delay.ToTimedelta()
            return wait
    return None


def requested_wait(trailers: Iterable[tuple[str, str | bytes]]) -> timedelta | None:
    """The longest wait the trailing metadata asks for (capped), or None."""
    waits = []
    for key, value in trailers:
        if key == PUSHBACK_METADATA:
            waits.append(_from_trailer(value))
        elif key == STATUS_DETAILS_METADATA:
            waits.append(_from_status(value))
    found = [w for w in waits if w is not None and w > timedelta(0)]
    return min(max(found), MAX_PUSHBACK) if found else None


def retry_pushback(error: grpc.RpcError) -> timedelta | None:
    """How long the peer that refused a call asked us to wait, if it did."""
    trailers = getattr(error, "trailing_metadata", None)
    if not callable(trailers):
        return None
    return requested_wait(trailers() or ())
