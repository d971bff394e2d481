"""Rosters from the harness's side: threshold checks, lookups, root signing.

A ``SignedRoster`` carries the serialized ``hfp.v1.Roster`` and root
signatures, each over the DSSE encoding of those bytes with type
``hfp.v1.Roster`` (HFP v1 sections 1 and 4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from conformance.dsse import ROSTER_TYPE, pae
from conformance.keys import Ed25519Key, verify
from hfp.v1 import roster_pb2


def root_key_id(public_key: bytes) -> str:
    """A root key id: hex SHA-256 of the raw root public key."""
    return hashlib.sha256(public_key).hexdigest()


def sign_roster(
    roster_bytes: bytes, roots: Iterable[Ed25519Key], *, signed_type: str = ROSTER_TYPE
) -> roster_pb2.SignedRoster:
    """A SignedRoster signed by each of ``roots`` (``signed_type`` only for bad cases)."""
    message = pae(signed_type, roster_bytes)
    return roster_pb2.SignedRoster(
        roster=roster_bytes,
        signatures=[
            roster_pb2.RootSignature(key_id=root.key_id, signature=root.sign(message))
            for root in roots
        ],
    )


def valid_root_signers(signed: roster_pb2.SignedRoster, roots: Sequence[bytes]) -> set[str]:
    """Key ids of the distinct pinned roots whose signature verifies."""
    by_id = {root_key_id(k): k for k in roots}
    message = pae(ROSTER_TYPE, signed.roster)
    good = set()
    for signature in signed.signatures:
        public = by_id.get(signature.key_id)
        if public is not None and verify(public, message, signature.signature):
            good.add(signature.key_id)
    return good


def timestamp_datetime(seconds: int, nanos: int) -> datetime:
    """An aware UTC datetime from Timestamp fields."""
    return datetime.fromtimestamp(seconds + nanos / 1e9, UTC)


@dataclass(frozen=True)
class RosterView:
    """A parsed roster with the signed form it came in."""

    signed: roster_pb2.SignedRoster
    roster: roster_pb2.Roster

    @classmethod
    def parse(cls, signed: roster_pb2.SignedRoster) -> RosterView:
        """Parse the inner roster bytes (DecodeError-like ValueError when they do not)."""
        roster = roster_pb2.Roster()
        roster.ParseFromString(signed.roster)
        return cls(signed, roster)

    @property
    def version(self) -> int:
        """The roster's version."""
        return int(self.roster.version)

    def member(self, member_id: str) -> roster_pb2.Member | None:
        """The member with this id, if listed."""
        for member in self.roster.members:
            if member.member_id == member_id:
                return member
        return None

    def keys_of(self, member_id: str) -> dict[str, roster_pb2.PublicKey]:
        """The member's signing keys by key id (empty when not a member)."""
        member = self.member(member_id)
        return {k.key_id: k for k in member.signing_keys} if member else {}

    def expires_at(self) -> datetime:
        """When the roster expires."""
        stamp = self.roster.expires_at
        return timestamp_datetime(stamp.seconds, stamp.nanos)

    def responsible_for(self, country: str) -> str:
        """The hotline whose jurisdictions hold ``country``, else the fallback (section 6)."""
        if country != "ZZ":
            for member in self.roster.members:
                if member.role == roster_pb2.ROLE_HOTLINE and country in member.jurisdictions:
                    return member.member_id
        return self.roster.fallback_member_id

    def claimed_countries(self) -> set[str]:
        """Every country some hotline is responsible for."""
        return {
            country
            for member in self.roster.members
            if member.role == roster_pb2.ROLE_HOTLINE
            for country in member.jurisdictions
        }


def key_covers(key: roster_pb2.PublicKey, moment: datetime) -> bool:
    """True when ``moment`` lies in the key's [not_before, not_after] window."""
    start, end = key.not_before, key.not_after
    if key.HasField("not_before") and moment < timestamp_datetime(start.seconds, start.nanos):
        return False
    return not (key.HasField("not_after") and moment > timestamp_datetime(end.seconds, end.nanos))
