"""One catalog from the node's errors to gRPC status, applied in one place."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import OperationalError

from federation import errors

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "hfp.v1"

#: The catalog: each error type, its gRPC code and its ErrorInfo reason.
CATALOG: dict[type[errors.HfedError], tuple[grpc.StatusCode, str]] = {
    errors.UnauthenticatedError: (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    errors.PermissionDeniedError: (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
    errors.InvalidArgumentError: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    errors.NotFoundError: (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    errors.RosterExpiredError: (grpc.StatusCode.FAILED_PRECONDITION, "ROSTER_EXPIRED"),
    errors.FailedPreconditionError: (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
    errors.ResourceExhaustedError: (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"),
    errors.UnavailableError: (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
}


def _lookup(error: errors.HfedError) -> tuple[grpc.StatusCode, str]:
    for kind in type(error).__mro__:
        if kind in CATALOG:
            return CATALOG[kind]
    return grpc.StatusCode.INTERNAL, "INTERNAL"


def code_name(error: errors.HfedError) -> str:
    """The gRPC status code name an error maps to (for audit records)."""
    return _lookup(error)[0].name


def abort(context: grpc.ServicerContext, error: errors.HfedError) -> NoReturn:
    """End the call with the error's code, public message and an ErrorInfo
    (and, for a refusal at a limit, the limit's name and when to retry)."""
    # Imported here: admission builds on this module (its catalog).
    from federation.api.admission import AdmissionRefusedError, refusal_status  # noqa: PLC0415

    if isinstance(error, AdmissionRefusedError):
        context.abort_with_status(refusal_status(error))
        raise AssertionError("abort_with_status returned")  # pragma: no cover
    code, reason = _lookup(error)
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.public_message, details=[info]
    )
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(method: F) -> F:
    """Map raised errors to gRPC status; unexpected ones become a bare INTERNAL.

    Details of unexpected errors go to the log, never to the caller.
    """

    @functools.wraps(method)
    def wrapper(self: object, request: object, context: grpc.ServicerContext) -> Any:
        # Worker threads are reused: start each call with only its own context.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(rpc=method.__name__)
        try:
            return method(self, request, context)
        except errors.HfedError as exc:
            log.info(
                "call refused",
                rpc=method.__name__,
                error=type(exc).__name__,
                detail=exc.public_message,
            )
            abort(context, exc)
        except OperationalError:
            log.exception("storage unavailable", rpc=method.__name__)
            abort(context, errors.UnavailableError("storage is unavailable; retry later"))
        except Exception:
            if context.code() is not None:  # type: ignore[attr-defined]  # abort already raised
                raise
            log.exception("internal error", rpc=method.__name__)
            abort(context, errors.HfedError("internal error"))

    return wrapper  # type: ignore[return-value]
