"""From the node's errors to gRPC status, in one place, for every RPC.

Domain code raises the errors of ``federation.core.errors``; this module alone
decides the gRPC code (from the error's class, ``CATALOG``) and what the
caller reads: the error's public message and, in ``grpc-status-details-bin``,

* an ``ErrorInfo`` (domain ``hfp.v1``) whose ``reason`` says why, with
  metadata where the error has some (the admission limit's setting name);
* a ``BadRequest`` with one field violation (field path and description) for
  an INVALID_ARGUMENT whose field is known;
* a ``RetryInfo`` (and gRPC's ``grpc-retry-pushback-ms`` trailer) when the
  node knows when the same call would succeed.

``translate_errors`` applies this to unary and server-streaming methods alike;
the interceptors that refuse a call before its method runs (admission,
undecodable requests) use ``abort``. Anything else a method raises becomes
UNAVAILABLE for a storage failure and otherwise INTERNAL with a fixed
message: the exception itself goes to the log, never to the caller.

The reasons and the codes they go out with:

=========================  ===================  ==================================================
reason                     code                 when
=========================  ===================  ==================================================
NO_MEMBER_IDENTITY         UNAUTHENTICATED      no client certificate member (or dev metadata)
UNKNOWN_MEMBER             UNAUTHENTICATED      the certificate's member is not in the roster
ROLE_NOT_ALLOWED           PERMISSION_DENIED    the member's role may not call this service
NOT_OPERATOR               PERMISSION_DENIED    HotlineService called by another member
OUTSIDE_JURISDICTION       PERMISSION_DENIED    this node serves none of the liaison's countries
UNDECODABLE_REQUEST        INVALID_ARGUMENT     the request bytes do not decode
MALFORMED_MESSAGE          INVALID_ARGUMENT     a message that decodes but is not valid
EMBEDDED_MEDIA             INVALID_ARGUMENT     a message carries bytes that can only be media
REQUIRED_FIELD             INVALID_ARGUMENT     a required field is unset
INVALID_TIMESTAMP          INVALID_ARGUMENT     a Timestamp out of range
UNKNOWN_ENUM_VALUE         INVALID_ARGUMENT     an enum field with a value this node does not know
BAD_PAGE_TOKEN             INVALID_ARGUMENT     a page_token this node did not make for this list
BAD_PAGE_SIZE              INVALID_ARGUMENT     a negative page_size
BAD_CURSOR                 INVALID_ARGUMENT     a WatchReferrals cursor this node did not make
INVALID_URL                INVALID_ARGUMENT     a report URL that cannot be canonicalised
INVALID_COUNTRY            INVALID_ARGUMENT     not ISO 3166-1 alpha-2 (or ZZ)
INVALID_REPORT             INVALID_ARGUMENT     a submitted report breaks a rule of the protocol
FOREIGN_ORIGIN             INVALID_ARGUMENT     a submitted report names another origin member
BAD_ANALYST_NAME           INVALID_ARGUMENT     the x-hfed-analyst name is not 1-64 of A-Za-z0-9._@-
TEXT_LENGTH                INVALID_ARGUMENT     a note, reference or hold reason empty or too long
BAD_HOLD_UNTIL             INVALID_ARGUMENT     a hold's end in the past or over 90 days ahead
MOVED_NEEDS_COUNTRY        INVALID_ARGUMENT     new_hosting_country given without MOVED or missing
INVALID_ROSTER             INVALID_ARGUMENT     a roster that breaks the roster rules
ROSTER_NOT_TRUSTED         INVALID_ARGUMENT     a roster without the root signature threshold
ROSTER_OFFER_EXPIRED       INVALID_ARGUMENT     a newer roster that has already expired
UNKNOWN_CASE               NOT_FOUND            no such case, or none the caller may see
ILLEGAL_TRANSITION         FAILED_PRECONDITION  the status may not follow the case's status
HOLD_ACTIVE                FAILED_PRECONDITION  NOTICE_SENT while a police hold is active
NO_ACTIVE_HOLD             FAILED_PRECONDITION  ReleaseHold without an active hold
TOO_LATE_FOR_HOLD          FAILED_PRECONDITION  RequestHold after the notice was sent
NOTHING_TO_MOVE            FAILED_PRECONDITION  MOVED to a country this node also serves
CURSOR_AHEAD               FAILED_PRECONDITION  a cursor past this node's event log
ROSTER_EXPIRED             FAILED_PRECONDITION  this node's roster has expired
ROSTER_NOT_NEWER           FAILED_PRECONDITION  a roster not newer than the installed one
BATCH_TOO_MANY_ITEMS       RESOURCE_EXHAUSTED   a Deliver batch over max_batch_items
BATCH_TOO_LARGE            RESOURCE_EXHAUSTED   a Deliver batch over max_batch_bytes
ADMISSION_RATE             RESOURCE_EXHAUSTED   over calls_per_second (RetryInfo)
ADMISSION_CALLS_IN_FLIGHT  RESOURCE_EXHAUSTED   over calls_in_flight_per_member
ADMISSION_STREAMS          RESOURCE_EXHAUSTED   over streams_per_member
ADMISSION_STREAMS_TOTAL    RESOURCE_EXHAUSTED   over streams_total
ADMISSION_CLIENT_CALLS     RESOURCE_EXHAUSTED   over client_calls_total (RetryInfo)
ADMISSION_HEAVY_READS      RESOURCE_EXHAUSTED   over heavy_reads_total (RetryInfo)
SHUTTING_DOWN              UNAVAILABLE          the node is stopping; retry elsewhere or later
STORAGE_UNAVAILABLE        UNAVAILABLE          the database failed or is busy; retry later
NO_SIGNING_KEY             UNAVAILABLE          the roster lists no live key this node holds
INTERNAL                   INTERNAL             a bug; the message is always "internal error"
=========================  ===================  ==================================================
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import OperationalError

from federation.core import errors
from federation.core.errors import HfedError

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "hfp.v1"
#: Trailing metadata gRPC clients with a retry policy honour as "wait this
#: long before retrying" (server pushback, gRFC A6).
PUSHBACK_METADATA = "grpc-retry-pushback-ms"
#: The only message a caller gets for an unexpected exception.
INTERNAL_MESSAGE = "internal error"

#: The catalog: each kind of error and the gRPC code it goes out with
#: (the nearest listed class of an error's ancestry decides).
CATALOG: dict[type[HfedError], grpc.StatusCode] = {
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
}


def code_of(error: HfedError) -> grpc.StatusCode:
    """The gRPC code an error goes out with (INTERNAL for the bare root)."""
    for kind in type(error).__mro__:
        code = CATALOG.get(kind)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def code_name(error: HfedError) -> str:
    """The gRPC status code name an error maps to (for audit records)."""
    return code_of(error).name


def refusal_of(exc: Exception) -> HfedError:
    """What the caller is told for ``exc``: a domain error as it is, a storage
    failure as UNAVAILABLE, anything else as INTERNAL with a fixed message."""
    if isinstance(exc, HfedError):
        return exc
    if isinstance(exc, OperationalError):
        return errors.UnavailableError(
            errors.STORAGE_UNAVAILABLE, "storage is unavailable; retry later"
        )
    return HfedError(errors.INTERNAL, INTERNAL_MESSAGE)


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _field_violation(error: HfedError) -> list[any_pb2.Any]:
    if not isinstance(error, errors.InvalidArgumentError) or not error.field:
        return []
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=error.field, description=error.public_message
    )
    return [_packed(error_details_pb2.BadRequest(field_violations=[violation]))]


def _retry_delay(error: HfedError) -> duration_pb2.Duration | None:
    if error.retry_after is None:
        return None
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, math.ceil(error.retry_after * 1000)))
    return delay


def status_of(error: HfedError) -> grpc.Status:
    """The status a call refused with ``error`` ends with (see the module docstring)."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata()
    )
    details = [_packed(info), *_field_violation(error)]
    pushback: tuple[tuple[str, str | bytes], ...] = ()
    delay = _retry_delay(error)
    if delay is not None:
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
        pushback = ((PUSHBACK_METADATA, str(delay.ToMilliseconds())),)
    code = code_of(error)
    status = rpc_status.to_status(
        status_pb2.Status(
            code=getattr(code_pb2, code.name), message=error.public_message, details=details
        )
    )
    return _Status(status.code, status.details, (*status.trailing_metadata, *pushback))


def abort(context: grpc.ServicerContext, error: HfedError) -> NoReturn:
    """End the call with ``error``'s status."""
    context.abort_with_status(status_of(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def refuse(context: grpc.ServicerContext, rpc: str, exc: Exception) -> NoReturn:
    """Log ``exc`` as what it is and end the call with what the caller may see.

    An exception raised by the call's own ``context.abort`` passes unchanged.
    """
    if not isinstance(exc, HfedError) and context.code() is not None:  # type: ignore[attr-defined]
        raise exc
    error = refusal_of(exc)
    if error is exc:
        log.info("call refused", rpc=rpc, reason=error.reason, detail=error.public_message)
    elif isinstance(exc, OperationalError):
        log.exception("storage unavailable", rpc=rpc, exc_info=exc)
    else:
        log.exception("internal error", rpc=rpc, exc_info=exc)
    abort(context, error)


F = TypeVar("F", bound=Callable[..., Any])


def _begin(rpc: str) -> None:
    # Worker threads are reused: start each call with only its own context.
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(rpc=rpc)


def bind_caller(member_id: str) -> None:
    """Name the calling member (``caller``) on every log line of this call."""
    structlog.contextvars.bind_contextvars(caller=member_id)


def translate_errors(method: F) -> F:
    """Map what ``method`` raises to gRPC status (``refuse``); for a method that
    streams its responses (a generator) also what it raises between them."""
    rpc = method.__name__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def streaming(
            self: object, request: object, context: grpc.ServicerContext
        ) -> Iterator[Any]:
            _begin(rpc)
            try:
                yield from method(self, request, context)
            except Exception as exc:
                refuse(context, rpc, exc)

        return streaming  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: object, request: object, context: grpc.ServicerContext) -> Any:
        _begin(rpc)
        try:
            return method(self, request, context)
        except Exception as exc:
            refuse(context, rpc, exc)

    return unary  # type: ignore[return-value]
