"""Timestamp conversion with range checks (hostile input can carry any value)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from federation.core.errors import INVALID_TIMESTAMP, REQUIRED_FIELD
from federation.wire.errors import MalformedMessageError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Inclusive bounds of google.protobuf.Timestamp (0001-01-01 .. 9999-12-31).
_MIN_SECONDS = -62135596800
_MAX_SECONDS = 253402300799
#: The range every Timestamp field of HFP v1 must keep, in words.
RANGE = "0001-01-01 to 9999-12-31 UTC, nanos 0 to 999999999"


def to_datetime(ts: Timestamp, field: str) -> datetime:
    """Convert a wire timestamp to an aware UTC datetime, refusing bad values."""
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        raise MalformedMessageError(
            f"{field} is out of range ({RANGE})", field=field, reason=INVALID_TIMESTAMP
        )
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def optional_datetime(holder: object, field: str) -> datetime | None:
    """The datetime of an optional Timestamp field, or None when unset."""
    if not holder.HasField(field):  # type: ignore[attr-defined]
        return None
    return to_datetime(getattr(holder, field), field)


def set_optional_time(holder: object, field: str, moment: datetime | None) -> None:
    """Set an optional Timestamp field, or leave it unset for None (the
    counterpart of optional_datetime)."""
    if moment is not None:
        getattr(holder, field).CopyFrom(to_timestamp(moment))


def required_datetime(holder: object, field: str) -> datetime:
    """The datetime of a Timestamp field that must be set."""
    value = optional_datetime(holder, field)
    if value is None:
        raise MalformedMessageError(f"{field} is required", field=field, reason=REQUIRED_FIELD)
    return value


def to_timestamp(moment: datetime) -> Timestamp:
    """Convert an aware datetime to a wire timestamp (microsecond precision)."""
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)
