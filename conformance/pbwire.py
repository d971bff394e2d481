"""A few lines of raw protobuf wire format.

Needed for two things the generated ``hfp`` code cannot do: appending an
unknown field to a payload (to build an oversized but well-formed report),
and talking to gRPC server reflection, whose generated code lives in a
package the harness may not import.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5


class WireFormatError(ValueError):
    """Bytes that are not protobuf wire format."""


def varint(value: int) -> bytes:
    """The base-128 varint encoding of a non-negative integer."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    """Field ``number`` with wire type 2 carrying ``data``."""
    return varint(number << 3 | LENGTH_DELIMITED) + varint(len(data)) + data


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)`` for each field in ``data``."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == FIXED64:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire_type == FIXED32:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        elif wire_type == LENGTH_DELIMITED:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise WireFormatError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise WireFormatError("truncated field")
        yield number, wire_type, value


def bytes_fields(data: bytes, number: int) -> list[bytes]:
    """Every length-delimited value of field ``number``."""
    return [
        value
        for num, wire_type, value in fields(data)
        if num == number and wire_type == LENGTH_DELIMITED and isinstance(value, bytes)
    ]
