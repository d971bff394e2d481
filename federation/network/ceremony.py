"""The signing ceremony: build the unsigned roster, sign it offline, assemble it.

``build`` turns the roster source into ``roster.unsigned`` (the serialized
roster the roots sign), each root key holder makes one detached ``.sig``,
and ``assemble`` checks that enough distinct root keys signed these very
bytes before writing ``roster.bin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crypto.keys import SigningKey
from crypto.threshold import RootSignature, TrustAnchor, check_root_signatures, sign_roster_bytes
from federation.core.roster import Roster
from federation.network.errors import OperationsError
from federation.network.source import RosterSource
from federation.wire.convert import (
    decode_root_signature,
    decode_roster,
    decode_signed_roster,
    encode_root_signature,
    encode_roster,
    encode_signed_roster,
)
from federation.wire.errors import MalformedMessageError


@dataclass(frozen=True)
class Built:
    """A roster ready to be signed, and what it is worth warning about."""

    roster: Roster
    unsigned: bytes
    warnings: tuple[str, ...]


def build(source: RosterSource, now: datetime, previous: Roster | None = None) -> Built:
    """The unsigned roster of ``source``; its version must exceed ``previous``'s."""
    if previous is not None and source.version <= previous.version:
        raise OperationsError(
            f"version {source.version} does not exceed the previous roster's {previous.version}:"
            " raise `version` in the roster source"
        )
    roster = source.to_roster(now)
    return Built(roster, encode_roster(roster), tuple(warnings_for(roster)))


def warnings_for(roster: Roster) -> list[str]:
    """Members that run a node but could not sign or be reached under ``roster``."""
    found = []
    for member in roster.members.values():
        if not member.role.runs_node:
            continue
        if not any(not k.revoked for k in member.keys.values()):
            found.append(f"{member.member_id} has no signing key that is not revoked")
        if not member.endpoint:
            found.append(f"{member.member_id} has no endpoint")
    return found


def read_unsigned(data: bytes) -> Roster:
    """Parse ``roster.unsigned``, refusing anything that is not a valid roster."""
    try:
        return decode_roster(data)
    except MalformedMessageError as exc:
        raise OperationsError(f"not an unsigned roster: {exc}") from exc


def read_signed(data: bytes) -> tuple[Roster, bytes, tuple[RootSignature, ...]]:
    """Parse a ``roster.bin`` without checking its signatures (see :func:`assemble`)."""
    try:
        roster_bytes, signatures = decode_signed_roster(data)
        return decode_roster(roster_bytes), roster_bytes, signatures
    except MalformedMessageError as exc:
        raise OperationsError(f"not a signed roster: {exc}") from exc


def read_any(data: bytes) -> Roster:
    """A roster from either file: ``roster.bin`` or ``roster.unsigned``."""
    try:
        return read_signed(data)[0]
    except OperationsError:
        pass
    try:
        return read_unsigned(data)
    except OperationsError as exc:
        raise OperationsError("neither a signed roster (roster.bin) nor an unsigned one") from exc


def sign(unsigned: bytes, root_key: SigningKey) -> bytes:
    """One root's detached signature over ``unsigned`` (a ``.sig`` file's bytes)."""
    read_unsigned(unsigned)
    (signature,) = sign_roster_bytes(unsigned, [root_key])
    return encode_root_signature(signature)


def read_signature(data: bytes, name: str) -> RootSignature:
    """Parse one ``.sig`` file."""
    try:
        return decode_root_signature(data)
    except MalformedMessageError as exc:
        raise OperationsError(f"{name}: not a root signature: {exc}") from exc


def assemble(
    unsigned: bytes, signatures: Sequence[tuple[str, RootSignature]], anchor: TrustAnchor
) -> bytes:
    """``roster.bin`` from the unsigned roster and named signatures.

    Refuses a signature that is not a pinned root's valid signature over these
    bytes, a second signature by the same root, and fewer than K of them.
    """
    read_unsigned(unsigned)
    seen: dict[str, str] = {}
    for name, signature in signatures:
        _check_one(unsigned, name, signature, anchor, seen)
    if len(seen) < anchor.threshold:
        raise OperationsError(
            f"{len(seen)} of the {anchor.threshold} root signatures needed: ask another root"
            " key holder to sign"
        )
    return encode_signed_roster(unsigned, [s for _, s in signatures])


def _check_one(
    unsigned: bytes,
    name: str,
    signature: RootSignature,
    anchor: TrustAnchor,
    seen: dict[str, str],
) -> None:
    if signature.key_id not in anchor.root_keys:
        raise OperationsError(f"{name} is signed by key {signature.key_id[:16]}, not a root key")
    if signature.key_id in seen:
        raise OperationsError(
            f"{name} and {seen[signature.key_id]} are by the same root key {signature.key_id[:16]}"
        )
    if not check_root_signatures(unsigned, [signature], anchor).signed:
        raise OperationsError(f"{name} does not verify over this roster (signed another one?)")
    seen[signature.key_id] = name
