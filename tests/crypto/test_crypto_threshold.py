"""Tests for crypto.threshold: k-of-n root signatures over roster bytes."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import pytest

from crypto import (
    ROSTER_PAYLOAD_TYPE,
    RootSignature,
    SigningKey,
    ThresholdError,
    TrustAnchor,
    check_root_signatures,
    key_id_for,
    pae,
    require_threshold,
    sign_roster_bytes,
)

ROOTS = tuple(SigningKey(bytes([i]) * 32) for i in (11, 12, 13))
OUTSIDER = SigningKey(bytes([99]) * 32)
ROSTER = b"\x0a\x07roster-v1 serialized bytes"
ANCHOR = TrustAnchor.from_public_keys([k.public_key for k in ROOTS], threshold=2)


def _sig(
    key: SigningKey, *, claim: SigningKey | None = None, roster: bytes = ROSTER
) -> RootSignature:
    """A root signature by ``key`` over ``roster``, optionally claiming another key's id."""
    (signature,) = sign_roster_bytes(roster, [key])
    return RootSignature(key_id=(claim or key).key_id, signature=signature.signature)


def _raw_sig(key: SigningKey, message: bytes) -> RootSignature:
    return RootSignature(key_id=key.key_id, signature=key.sign(message))


R0, R1, R2 = ROOTS
Case = Callable[[], list[RootSignature]]

CASES: list[object] = [
    pytest.param(lambda: [], 0, id="no-signatures"),
    pytest.param(lambda: [_sig(R0)], 1, id="one-valid"),
    pytest.param(lambda: [_sig(R0), _sig(R2)], 2, id="two-valid"),
    pytest.param(lambda: [_sig(R0), _sig(R1), _sig(R2)], 3, id="three-valid"),
    pytest.param(lambda: [_sig(R0), _sig(R0)], 1, id="duplicated-key-id"),
    pytest.param(lambda: [_sig(R1), _sig(R1), _sig(R1)], 1, id="triplicated-key-id"),
    pytest.param(lambda: [_sig(R0), _sig(OUTSIDER)], 1, id="unknown-key-id"),
    pytest.param(lambda: [_sig(R0), _sig(OUTSIDER, claim=R1)], 1, id="non-root-claims-root-id"),
    pytest.param(lambda: [_sig(R0, claim=R1), _sig(R1, claim=R0)], 0, id="swapped-key-ids"),
    pytest.param(
        lambda: [_sig(R0, roster=b"other"), _sig(R1, roster=b"other")], 0, id="different-bytes"
    ),
    pytest.param(
        lambda: [_raw_sig(R0, pae("hfp.v1.Other", ROSTER)), _raw_sig(R1, pae("x", ROSTER))],
        0,
        id="wrong-payload-type",
    ),
    pytest.param(lambda: [_raw_sig(R0, ROSTER), _raw_sig(R1, ROSTER)], 0, id="raw-bytes-no-pae"),
    pytest.param(
        lambda: [RootSignature(R0.key_id, _sig(R0).signature[:63]), _sig(R1)],
        1,
        id="truncated-signature",
    ),
    pytest.param(
        lambda: [RootSignature(R0.key_id, b"\x00" * 64), _sig(R0), _sig(R1)],
        2,
        id="invalid-then-valid-same-id",
    ),
    pytest.param(
        lambda: [RootSignature(R0.key_id.upper(), _sig(R0).signature), _sig(R1)],
        1,
        id="key-id-case-mismatch",
    ),
]


@pytest.mark.parametrize(("make_signatures", "expected_signed"), CASES)
def test_two_of_three_table(make_signatures: Case, expected_signed: int) -> None:
    result = check_root_signatures(ROSTER, make_signatures(), ANCHOR)
    assert len(result.signed) == expected_signed
    assert result.threshold == 2
    assert result.verified is (expected_signed >= 2)
    assert result.signed | result.unsigned == set(ANCHOR.root_keys)
    assert not result.signed & result.unsigned


def test_duplicate_root_key_id_counts_once() -> None:
    # Regression: one root key signing twice must not satisfy a 2-of-n anchor.
    signatures = list(sign_roster_bytes(ROSTER, [R0, R0]))
    assert len(signatures) == 2
    result = check_root_signatures(ROSTER, signatures, ANCHOR)
    assert result.signed == frozenset({R0.key_id})
    assert not result.verified
    with pytest.raises(ThresholdError):
        require_threshold(ROSTER, signatures, ANCHOR)


def test_sign_roster_bytes_signs_pae() -> None:
    signatures = sign_roster_bytes(ROSTER, ROOTS)
    assert [s.key_id for s in signatures] == [k.key_id for k in ROOTS]
    message = pae(ROSTER_PAYLOAD_TYPE, ROSTER)
    for key, signature in zip(ROOTS, signatures, strict=True):
        assert signature.signature == key.sign(message)
    assert ROSTER_PAYLOAD_TYPE == "hfp.v1.Roster"


def test_result_names_signed_and_unsigned_keys() -> None:
    result = check_root_signatures(ROSTER, [_sig(R2)], ANCHOR)
    assert result.signed == frozenset({R2.key_id})
    assert result.unsigned == frozenset({R0.key_id, R1.key_id})


def test_require_threshold_passes_and_returns_result() -> None:
    result = require_threshold(ROSTER, sign_roster_bytes(ROSTER, [R0, R1]), ANCHOR)
    assert result.verified
    assert result.unsigned == frozenset({R2.key_id})


def test_require_threshold_error_message() -> None:
    with pytest.raises(ThresholdError, match=r"^roster has 1 of 2 required root signatures$"):
        require_threshold(ROSTER, [_sig(R0)], ANCHOR)


def test_one_of_one_anchor() -> None:
    anchor = TrustAnchor.from_public_keys([R0.public_key], threshold=1)
    assert require_threshold(ROSTER, [_sig(R0)], anchor).verified
    assert not check_root_signatures(ROSTER, [_sig(R1)], anchor).verified


def test_anchor_from_public_keys_computes_ids() -> None:
    assert set(ANCHOR.root_keys) == {key_id_for(k.public_key) for k in ROOTS}
    for key_id, public_key in ANCHOR.root_keys.items():
        assert key_id == key_id_for(public_key)


@pytest.mark.parametrize("threshold", [0, -1, 4, 100])
def test_anchor_rejects_threshold_out_of_range(threshold: int) -> None:
    with pytest.raises(ThresholdError):
        TrustAnchor.from_public_keys([k.public_key for k in ROOTS], threshold=threshold)


def test_anchor_rejects_bool_threshold() -> None:
    with pytest.raises(ThresholdError):
        TrustAnchor.from_public_keys([R0.public_key], threshold=True)


def test_anchor_threshold_counts_distinct_keys() -> None:
    # Listing one key three times does not make a 3-of-3 anchor.
    with pytest.raises(ThresholdError):
        TrustAnchor.from_public_keys([R0.public_key] * 3, threshold=2)
    anchor = TrustAnchor.from_public_keys([R0.public_key] * 3, threshold=1)
    assert len(anchor.root_keys) == 1


def test_anchor_rejects_empty() -> None:
    with pytest.raises(ThresholdError):
        TrustAnchor.from_public_keys([], threshold=1)


@pytest.mark.parametrize("public_key", [b"", b"\x00" * 31, b"\x00" * 33])
def test_anchor_rejects_wrong_length_key(public_key: bytes) -> None:
    with pytest.raises(ThresholdError):
        TrustAnchor.from_public_keys([R0.public_key, public_key], threshold=1)


def test_anchor_rejects_mismatched_key_id() -> None:
    with pytest.raises(ThresholdError):
        TrustAnchor(root_keys={R0.key_id: R1.public_key}, threshold=1)
    with pytest.raises(ThresholdError):
        TrustAnchor(root_keys={"not-an-id": R0.public_key}, threshold=1)


def test_anchor_direct_construction_when_valid() -> None:
    anchor = TrustAnchor(root_keys={R0.key_id: R0.public_key}, threshold=1)
    assert anchor.root_keys[R0.key_id] == R0.public_key


def test_anchor_is_immune_to_later_mutation() -> None:
    source = {R0.key_id: R0.public_key, R1.key_id: R1.public_key}
    anchor = TrustAnchor(root_keys=source, threshold=2)
    source.clear()
    assert len(anchor.root_keys) == 2
    assert isinstance(anchor.root_keys, MappingProxyType)
    with pytest.raises(TypeError):
        anchor.root_keys[R2.key_id] = R2.public_key  # type: ignore[index]
