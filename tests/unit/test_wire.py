"""Wire conversion: round trips and refusal of hostile encodings."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.core.report import MAX_HASH_BYTES, ContentHash, HashAlgorithm, Report
from federation.wire.convert import decode_report, encode_report
from federation.wire.errors import EmbeddedMediaError, MalformedMessageError
from hfp.v1 import report_pb2

REPORT = Report(
    report_id="01890a5d-ac96-774b-bcce-b302099a8057",
    origin_member_id="hotline-dk",
    created_at=datetime(2026, 6, 1, 12, 30, 1, 123456, tzinfo=UTC),
    url="https://example.com/a?b=1&a=2",
    hashes=(ContentHash(HashAlgorithm.PDQ, os.urandom(32)),),
    media_type=1,
    classification=2,
    hosting_country="DK",
    hosting_ip="192.0.2.1",
    hosting_asn=64500,
    site_type="image host",
    victim_age_group=2,
    analyst_note="synthetic",
)


def test_report_round_trip() -> None:
    assert decode_report(encode_report(REPORT)) == REPORT


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff",
        report_pb2.Report(report_id="x").SerializeToString(),  # no created_at
        b"\x22\x02\xc3\x28",  # field 4 (url) holding invalid UTF-8
    ],
)
def test_malformed_reports_refused(payload: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode_report(payload)


def test_unknown_hash_algorithm_refused() -> None:
    message = report_pb2.Report.FromString(encode_report(REPORT))
    message.hashes[0].algorithm = 99  # type: ignore[assignment]
    with pytest.raises(MalformedMessageError, match="unknown value"):
        decode_report(message.SerializeToString())


def test_unknown_blob_field_refused_as_media() -> None:
    # Field 1000, wire type 2 (tag varint C2 3E), length 4096 (varint 80 20):
    # a blob that no HFP field can hold.
    blob = bytes([0xC2, 0x3E]) + bytes([0x80, 0x20]) + b"\0" * 4096
    with pytest.raises(EmbeddedMediaError):
        decode_report(encode_report(REPORT) + blob)


def test_small_unknown_fields_are_tolerated() -> None:
    blob = bytes([0xC2, 0x3E, 0x03]) + b"abc"
    assert decode_report(encode_report(REPORT) + blob) == REPORT


def test_out_of_range_timestamp_refused() -> None:
    message = report_pb2.Report.FromString(encode_report(REPORT))
    message.created_at.seconds = 10**15
    with pytest.raises(MalformedMessageError, match="out of range"):
        decode_report(message.SerializeToString())


def _field(number: int, data: bytes) -> bytes:
    """One length-delimited field (wire type 2) with a short tag and length."""
    assert number < 16 and len(data) < 1 << 14
    length = (
        bytes([len(data)]) if len(data) < 128 else bytes([0x80 | len(data) & 0x7F, len(data) >> 7])
    )
    return bytes([number << 3 | 2]) + length + data


@settings(max_examples=300, deadline=None)
@given(
    where=st.sampled_from(["top", "hash", "timestamp"]),
    sizes=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=4),
)
def test_blob_check_fast_path_agrees_with_the_walk(where: str, sizes: list[int]) -> None:
    """Unknown fields of every size at every depth: refused exactly when one is
    longer than any hash, whatever the total (the fast path must never skip one)."""
    unknown = b"".join(_field(15, b"\0" * size) for size in sizes)
    message = report_pb2.Report()
    message.ParseFromString(encode_report(REPORT))
    if where == "top":
        payload = message.SerializeToString() + unknown
    else:
        inner = (
            message.hashes[0].SerializeToString()
            if where == "hash"
            else message.created_at.SerializeToString()
        )
        number = 5 if where == "hash" else 3
        if where == "hash":
            del message.hashes[:]
        else:
            message.ClearField("created_at")
        payload = message.SerializeToString() + _field(number, inner + unknown)
    if max(sizes) > MAX_HASH_BYTES:
        with pytest.raises(EmbeddedMediaError):
            decode_report(payload)
    else:
        assert decode_report(payload) == REPORT


def test_many_small_unknown_fields_refused_as_media() -> None:
    """Media cut into pieces no longer than a hash is still media."""
    pieces = b"".join(_field(15, b"\0" * 100) for _ in range(11))  # 1,122 bytes
    with pytest.raises(EmbeddedMediaError):
        decode_report(encode_report(REPORT) + pieces)
    assert decode_report(encode_report(REPORT) + pieces[: 102 * 9]) == REPORT
