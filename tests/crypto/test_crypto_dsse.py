"""Tests for crypto.dsse: PAE, envelopes and batch verification."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from crypto import Envelope, SigningKey, pae, sign_envelope, verify_envelope_signature
from crypto.dsse import verify_many
from crypto.keys import verify_signature

KEY = SigningKey(bytes(range(32)))


@pytest.mark.parametrize(
    ("payload_type", "payload", "expected"),
    [
        pytest.param(
            "http://example.com/HelloWorld",
            b"hello world",
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world",
            id="dsse-spec-example",
        ),
        pytest.param("", b"", b"DSSEv1 0  0 ", id="empty"),
        pytest.param("t\u00e9", b"\x00 \xff", b"DSSEv1 3 t\xc3\xa9 3 \x00 \xff", id="utf8-bytes"),
        pytest.param("hfp.v1.Roster", b"x" * 100, b"DSSEv1 13 hfp.v1.Roster 100 " + b"x" * 100),
    ],
)
def test_pae_known_answers(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected


def test_pae_is_unambiguous_across_boundary() -> None:
    # Moving bytes between type and payload must change the encoding.
    assert pae("ab", b"c") != pae("a", b"bc")


def test_sign_envelope_round_trip() -> None:
    envelope = sign_envelope(KEY, "hotline-a", "hfp.v1.Report", b"payload")
    assert envelope.key_id == KEY.key_id
    assert envelope.signer_member_id == "hotline-a"
    assert envelope.payload == b"payload"
    assert envelope.payload_type == "hfp.v1.Report"
    assert len(envelope.signature) == 64
    assert verify_envelope_signature(envelope, KEY.public_key)


def test_signature_covers_pae_not_raw_payload() -> None:
    envelope = sign_envelope(KEY, "hotline-a", "hfp.v1.Report", b"payload")
    message = pae("hfp.v1.Report", b"payload")
    assert verify_signature(KEY.public_key, message, envelope.signature)
    assert not verify_signature(KEY.public_key, b"payload", envelope.signature)


def _flip_bit(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: dataclasses.replace(e, payload=_flip_bit(e.payload)), id="payload"),
        pytest.param(
            lambda e: dataclasses.replace(e, payload=_flip_bit(e.payload, len(e.payload) - 1)),
            id="payload-last-byte",
        ),
        pytest.param(lambda e: dataclasses.replace(e, payload=e.payload + b"\x00"), id="appended"),
        pytest.param(lambda e: dataclasses.replace(e, payload_type="hfp.v1.Reporu"), id="type"),
        pytest.param(
            lambda e: dataclasses.replace(e, signature=_flip_bit(e.signature)), id="signature-r"
        ),
        pytest.param(
            lambda e: dataclasses.replace(e, signature=_flip_bit(e.signature, 63)),
            id="signature-s",
        ),
        pytest.param(lambda e: dataclasses.replace(e, signature=e.signature[:63]), id="truncated"),
    ],
)
def test_tampered_envelope_fails(tamper: object) -> None:
    assert callable(tamper)
    envelope = sign_envelope(KEY, "hotline-a", "hfp.v1.Report", b"payload")
    tampered = tamper(envelope)
    assert isinstance(tampered, Envelope)
    assert tampered != envelope
    assert not verify_envelope_signature(tampered, KEY.public_key)


def test_wrong_public_key_fails() -> None:
    envelope = sign_envelope(KEY, "hotline-a", "hfp.v1.Report", b"payload")
    assert not verify_envelope_signature(envelope, SigningKey.generate().public_key)
    assert not verify_envelope_signature(envelope, b"short")


def test_envelope_is_frozen_and_slotted() -> None:
    envelope = sign_envelope(KEY, "hotline-a", "t", b"p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        envelope.payload = b"q"  # type: ignore[misc]
    assert not hasattr(envelope, "__dict__")


def _jobs(count: int) -> tuple[list[tuple[bytes, bytes, bytes]], list[bool]]:
    """Mixed valid/invalid jobs with a known expected answer per position."""
    keys = [SigningKey(bytes([i]) * 32) for i in range(1, 4)]
    jobs: list[tuple[bytes, bytes, bytes]] = []
    expected: list[bool] = []
    for index in range(count):
        key = keys[index % len(keys)]
        message = index.to_bytes(4, "big")
        signature = key.sign(message)
        valid = index % 3 != 1 and index % 7 != 0
        if not valid:
            signature = _flip_bit(signature, index % 64)
        jobs.append((key.public_key, message, signature))
        expected.append(valid)
    return jobs, expected


@pytest.mark.parametrize("count", [0, 1, 31, 33, 257, 1000])
def test_verify_many_preserves_order_with_executor(count: int) -> None:
    jobs, expected = _jobs(count)
    with ThreadPoolExecutor(max_workers=4) as executor:
        assert verify_many(jobs, executor) == expected


@pytest.mark.parametrize("count", [0, 1, 100])
def test_verify_many_serial(count: int) -> None:
    jobs, expected = _jobs(count)
    assert verify_many(jobs) == expected
