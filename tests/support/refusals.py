"""Reading a refused call's rich status: its code, ErrorInfo reason and BadRequest."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

DOMAIN = "hfp.v1"


def refused(call: Callable[[], object]) -> grpc.RpcError:
    """Run ``call`` (it must fail) and return its error; a stream is read to its end."""
    try:
        result = call()
        if isinstance(result, Iterable) and not isinstance(result, (bytes, str)):
            for _ in result:
                pass
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call was not refused")


def reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """(code, ErrorInfo reason) of a refusal; its ErrorInfo must be in domain hfp.v1."""
    info = error_details_pb2.ErrorInfo()
    found = [d for d in _details(error) if d.Is(info.DESCRIPTOR)]
    assert len(found) == 1, f"one ErrorInfo expected: {error.code()} {error.details()}"
    found[0].Unpack(info)
    assert info.domain == DOMAIN
    return error.code(), info.reason


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of every BadRequest field violation of a refusal."""
    bad = error_details_pb2.BadRequest()
    violations: list[tuple[str, str]] = []
    for detail in _details(error):
        if detail.Unpack(bad):
            violations += [(v.field, v.description) for v in bad.field_violations]
    return violations


def refusal_reason(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """(code, ErrorInfo reason) of the refusal of ``call``."""
    return reason(refused(call))


def _details(error: grpc.RpcError) -> list[any_pb2.Any]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status: {error.code()} {error.details()}"
    return list(status.details)
