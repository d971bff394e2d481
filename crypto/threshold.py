"""k-of-n root signatures over a roster's serialized bytes.

The network's root keys sign the exact roster bytes (through DSSE PAE with
:data:`ROSTER_PAYLOAD_TYPE`); every node pins the root public keys and a
threshold, and accepts a roster only when enough distinct pinned keys signed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from crypto.dsse import pae
from crypto.errors import ThresholdError
from crypto.keys import PUBLIC_KEY_SIZE, SigningKey, key_id_for, verify_signature

__all__ = [
    "ROSTER_PAYLOAD_TYPE",
    "RootSignature",
    "ThresholdResult",
    "TrustAnchor",
    "check_root_signatures",
    "require_threshold",
    "sign_roster_bytes",
]

ROSTER_PAYLOAD_TYPE: Final = "hfp.v1.Roster"


@dataclass(frozen=True)
class RootSignature:
    """One root signature; ``key_id`` is only a hint for which pinned key to try."""

    key_id: str
    signature: bytes


@dataclass(frozen=True)
class TrustAnchor:
    """The pinned root public keys (key_id -> 32-byte key) and the threshold k.

    Validated on construction, and the mapping is copied into a read-only
    view, so an invalid anchor cannot exist nor become invalid later.
    """

    root_keys: Mapping[str, bytes]
    threshold: int

    def __post_init__(self) -> None:
        """Validate and freeze the anchor; raises ThresholdError if invalid."""
        frozen = MappingProxyType(dict(self.root_keys))
        for key_id, public_key in frozen.items():
            _check_root_key(key_id, public_key)
        _check_threshold(self.threshold, len(frozen))
        # object.__setattr__ is the sanctioned way to set fields of a frozen
        # dataclass during initialisation.
        object.__setattr__(self, "root_keys", frozen)

    @classmethod
    def from_public_keys(cls, public_keys: Iterable[bytes], threshold: int) -> TrustAnchor:
        """Build an anchor from raw public keys, computing their key ids.

        Duplicate keys collapse into one, so they cannot inflate the count the
        threshold is checked against.
        """
        root_keys: dict[str, bytes] = {}
        for public_key in public_keys:
            root_keys[_key_id_or_threshold_error(public_key)] = public_key
        return cls(root_keys=root_keys, threshold=threshold)


def _key_id_or_threshold_error(public_key: bytes) -> str:
    """key_id_for, but reported as a ThresholdError (an invalid anchor)."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
        raise ThresholdError(f"root public keys must be {PUBLIC_KEY_SIZE} raw bytes")
    return key_id_for(public_key)


def _check_root_key(key_id: str, public_key: bytes) -> None:
    """A pinned key id must be the real id of its key, or lookups could lie."""
    if key_id != _key_id_or_threshold_error(public_key):
        raise ThresholdError(f"root key id {key_id!r} does not match its public key")


def _check_threshold(threshold: int, key_count: int) -> None:
    """Require 1 <= threshold <= number of distinct root keys."""
    # bool is an int subclass; True as a threshold is certainly a bug.
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ThresholdError("threshold must be an integer")
    if threshold < 1:
        raise ThresholdError("threshold must be at least 1")
    if threshold > key_count:
        raise ThresholdError(f"threshold {threshold} exceeds the {key_count} distinct root keys")


@dataclass(frozen=True)
class ThresholdResult:
    """Which pinned root keys signed, which did not, and the threshold."""

    signed: frozenset[str]
    unsigned: frozenset[str]
    threshold: int

    @property
    def verified(self) -> bool:
        """True when at least ``threshold`` distinct root keys signed."""
        return len(self.signed) >= self.threshold


def sign_roster_bytes(roster: bytes, root_keys: Sequence[SigningKey]) -> tuple[RootSignature, ...]:
    """Sign the roster bytes (via PAE with ROSTER_PAYLOAD_TYPE) with each root key."""
    message = pae(ROSTER_PAYLOAD_TYPE, roster)
    return tuple(RootSignature(key_id=key.key_id, signature=key.sign(message)) for key in root_keys)


def check_root_signatures(
    roster: bytes, signatures: Sequence[RootSignature], anchor: TrustAnchor
) -> ThresholdResult:
    """Count the distinct pinned root keys with a valid signature over ``roster``.

    A signature's key id only selects which pinned key to try: it counts only
    if it verifies against that pinned key. Unknown ids are ignored and each
    root key counts at most once however often it appears.
    """
    message = pae(ROSTER_PAYLOAD_TYPE, roster)
    signed: set[str] = set()
    for root_signature in signatures:
        key_id = root_signature.key_id
        if key_id in signed:
            continue
        pinned = anchor.root_keys.get(key_id)
        if pinned is not None and verify_signature(pinned, message, root_signature.signature):
            signed.add(key_id)
    return ThresholdResult(
        signed=frozenset(signed),
        unsigned=frozenset(anchor.root_keys.keys() - signed),
        threshold=anchor.threshold,
    )


def require_threshold(
    roster: bytes, signatures: Sequence[RootSignature], anchor: TrustAnchor
) -> ThresholdResult:
    """Like :func:`check_root_signatures` but raise unless the threshold is met.

    Raises:
        ThresholdError: "roster has N of M required root signatures".
    """
    result = check_root_signatures(roster, signatures, anchor)
    if not result.verified:
        raise ThresholdError(
            f"roster has {len(result.signed)} of {result.threshold} required root signatures"
        )
    return result
