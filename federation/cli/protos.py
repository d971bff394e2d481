"""Protobuf values for and from the CLI's node calls: Timestamps, and JSON
with numbers as numbers. Imported when a command runs (protobuf is slow to load)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp of an aware datetime; None stays None (field unset)."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def message_json(message: Message) -> str:
    """A message as JSON text, with 64-bit integers as numbers (proto3's JSON
    mapping writes them as strings, which programs then have to convert)."""
    as_dict = MessageToDict(message, preserving_proto_field_name=True)
    return json.dumps(_numbers(message, as_dict), indent=2)


def _numbers(message: Message, as_dict: dict[str, Any]) -> dict[str, Any]:
    """``as_dict`` (MessageToDict of ``message``) with 64-bit integers made ints."""
    for field in message.DESCRIPTOR.fields:
        if field.name not in as_dict:
            continue
        value = getattr(message, field.name)
        repeated = _repeated(field)
        if field.type in _INT64:
            as_dict[field.name] = [int(v) for v in value] if repeated else int(value)
        elif _plain_message(field):
            items = zip(value, as_dict[field.name], strict=True) if repeated else []
            for inner, inner_dict in items:
                _numbers(inner, inner_dict)
            if not repeated:
                _numbers(value, as_dict[field.name])
    return as_dict


def _repeated(field: Any) -> bool:
    """Whether a field is repeated (protobuf 6 says ``is_repeated``, older ones ``label``)."""
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _plain_message(field: Any) -> bool:
    """A message field MessageToDict writes as an object (not a well-known type
    such as Timestamp, written as a string, nor a map)."""
    kind = field.message_type
    return (
        kind is not None
        and not kind.full_name.startswith("google.protobuf.")
        and not kind.GetOptions().map_entry
    )
