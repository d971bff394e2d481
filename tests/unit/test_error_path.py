"""The one error path (federation.api.errors) without a server: what a caller
reads for a domain error, a storage failure and a bug, in unary and streaming
methods; and the table of reasons agrees with the reasons the code names."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy.exc import OperationalError

from federation.api import errors as api_errors
from federation.api.admission import Limit
from federation.api.errors import translate_errors
from federation.core import errors
from federation.core.errors import InvalidArgumentError, NotFoundError

SECRET = "/srv/hfed/secret-path: password=hunter2"


class Aborted(Exception):
    """What a real context's abort raises: the call is over."""


class FakeContext:
    """The part of grpc.ServicerContext the error path uses."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted

    def code(self) -> grpc.StatusCode | None:
        return self.status.code if self.status is not None else None


class Servicer:
    """Fake servicer methods that fail in the ways a real one can."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    @translate_errors
    def Unary(self, request: object, context: grpc.ServicerContext) -> str:
        raise self.failure

    @translate_errors
    def Stream(self, request: object, context: grpc.ServicerContext) -> Iterator[str]:
        yield "first"
        raise self.failure


def _unary(failure: Exception) -> grpc.Status:
    context = FakeContext()
    with pytest.raises(Aborted):
        Servicer(failure).Unary(None, context)  # type: ignore[arg-type]
    assert context.status is not None
    return context.status


def _stream(failure: Exception) -> tuple[list[str], grpc.Status]:
    context = FakeContext()
    sent: list[str] = []
    with pytest.raises(Aborted):
        for response in Servicer(failure).Stream(None, context):  # type: ignore[arg-type]
            sent.append(response)
    assert context.status is not None
    return sent, context.status


def _rich(status: grpc.Status) -> status_pb2.Status:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def _reason(status: grpc.Status) -> str:
    info = error_details_pb2.ErrorInfo()
    assert _rich(status).details[0].Unpack(info)
    assert info.domain == "hfp.v1"
    return info.reason


def _leaks(status: grpc.Status) -> bool:
    everything = status.details.encode() + b"".join(
        v if isinstance(v, bytes) else v.encode() for _, v in status.trailing_metadata
    )
    return b"hunter2" in everything or b"secret-path" in everything


def test_a_bug_in_a_unary_method_is_internal_without_its_text() -> None:
    """A method raises RuntimeError carrying a secret, expect INTERNAL with the
    fixed message and reason INTERNAL, and the secret nowhere in the status."""
    status = _unary(RuntimeError(SECRET))
    assert (status.code, status.details) == (grpc.StatusCode.INTERNAL, "internal error")
    assert _reason(status) == "INTERNAL"
    assert not _leaks(status)


def test_a_bug_in_a_stream_is_internal_without_its_text() -> None:
    """A streaming method sends one response, then raises KeyError carrying a
    secret, expect the response delivered, then INTERNAL without the secret
    (gRPC itself would end the call with the exception's text)."""
    sent, status = _stream(KeyError(SECRET))
    assert sent == ["first"]
    assert (status.code, status.details) == (grpc.StatusCode.INTERNAL, "internal error")
    assert not _leaks(status)


def test_a_storage_failure_is_unavailable_in_both_kinds_of_method() -> None:
    """OperationalError (its text names the database), expect UNAVAILABLE with
    reason STORAGE_UNAVAILABLE and not a word of the driver's message."""
    failure = OperationalError("SELECT 1", {}, Exception(SECRET))
    for status in (_unary(failure), _stream(failure)[1]):
        assert status.code is grpc.StatusCode.UNAVAILABLE
        assert _reason(status) == "STORAGE_UNAVAILABLE"
        assert not _leaks(status)


def test_a_domain_error_in_a_stream_carries_its_reason_and_field() -> None:
    """A stream refuses with an InvalidArgumentError on a field, expect its code,
    reason, message, and a BadRequest violation naming the field."""
    refusal = InvalidArgumentError(errors.BAD_CURSOR, "cursor is not valid", field="cursor")
    _, status = _stream(refusal)
    assert (status.code, status.details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "cursor is not valid",
    )
    assert _reason(status) == "BAD_CURSOR"
    bad = error_details_pb2.BadRequest()
    assert _rich(status).details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("cursor", "cursor is not valid")
    ]


def test_an_error_without_a_field_has_no_bad_request() -> None:
    """NOT_FOUND for an unknown case, expect only the ErrorInfo."""
    status = _unary(NotFoundError(errors.UNKNOWN_CASE, "no such case"))
    assert status.code is grpc.StatusCode.NOT_FOUND
    assert len(_rich(status).details) == 1 and _reason(status) == "UNKNOWN_CASE"


# --- the table of reasons -------------------------------------------------------------


def _table() -> dict[str, str]:
    doc = api_errors.__doc__ or ""
    rows = re.findall(r"^([A-Z][A-Z_]+[A-Z])\s{2,}([A-Z_]+)\s{2,}\S", doc, re.MULTILINE)
    return dict(rows)


def _named() -> set[str]:
    constants = {
        value
        for name, value in vars(errors).items()
        if name.isupper() and isinstance(value, str) and value == name
    }
    return constants | {limit.reason for limit in Limit}


def test_the_table_lists_every_reason_the_code_names() -> None:
    """Read the table in federation.api.errors, expect exactly the reasons of
    core/errors.py and of the admission limits, each with a gRPC code."""
    table = _table()
    assert set(table) == _named()
    assert set(table.values()) <= {code.name for code in grpc.StatusCode}
    assert {table[limit.reason] for limit in Limit} == {"RESOURCE_EXHAUSTED"}
