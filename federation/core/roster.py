"""The network roster as a domain value, and the rules for trusting one.

Signature threshold checks live in ``crypto.threshold``; this module holds
the rules that need the parsed roster: structure, version and expiry.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from crypto.keys import key_id_for
from federation.core.errors import (
    INVALID_ROSTER,
    ROSTER_NOT_NEWER,
    ROSTER_OFFER_EXPIRED,
    InvalidArgumentError,
)
from federation.core.ids import UNKNOWN_COUNTRY, KeyId, MemberId, is_country, is_member_id
from federation.core.limits import MAX_STORED_INT


class RosterError(InvalidArgumentError):
    """A roster that must not be installed; the message says why."""

    def __init__(self, public_message: str, reason: str = INVALID_ROSTER) -> None:
        super().__init__(reason, public_message, field="roster")


class Role(enum.IntEnum):
    """A member's role; values equal the wire enum's."""

    HOTLINE = 1
    LIAISON = 2
    SECRETARIAT = 3

    @property
    def runs_node(self) -> bool:
        """Whether members of this role run a node (and may call peers)."""
        return self is not Role.LIAISON


@dataclass(frozen=True, slots=True)
class MemberKey:
    """One signing key of a member, with its validity window."""

    key_id: KeyId
    public_key: bytes
    not_before: datetime | None = None
    not_after: datetime | None = None
    revoked: bool = False

    def __post_init__(self) -> None:
        if key_id_for(self.public_key) != self.key_id:
            raise RosterError(f"key_id {self.key_id[:16]}... does not match its public key")

    def covers(self, moment: datetime) -> bool:
        """True when ``moment`` lies inside the key's validity window."""
        if self.not_before is not None and moment < self.not_before:
            return False
        return self.not_after is None or moment <= self.not_after


@dataclass(frozen=True, slots=True)
class Member:
    """One organisation of the network."""

    member_id: MemberId
    role: Role
    display_name: str = ""
    jurisdictions: frozenset[str] = frozenset()
    endpoint: str = ""
    keys: Mapping[KeyId, MemberKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_member_id(self.member_id):
            raise RosterError(f"invalid member id {self.member_id!r}")
        bad = sorted(c for c in self.jurisdictions if not is_country(c))
        if bad:
            raise RosterError(f"member {self.member_id}: invalid jurisdictions {bad}")
        if self.role.runs_node and not (self.keys and self.endpoint):
            raise RosterError(
                f"member {self.member_id}: a hotline or secretariat needs a key and an endpoint"
            )
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))


def _index_members(members: Iterable[Member]) -> dict[MemberId, Member]:
    index: dict[MemberId, Member] = {}
    for member in members:
        if member.member_id in index:
            raise RosterError(f"member {member.member_id} listed twice")
        index[member.member_id] = member
    return index


def _hotline_countries(members: Iterable[Member]) -> dict[str, MemberId]:
    owners: dict[str, MemberId] = {}
    for member in members:
        if member.role is not Role.HOTLINE:
            continue
        for country in member.jurisdictions:
            if country in owners:
                raise RosterError(
                    f"country {country} claimed by {owners[country]} and {member.member_id}"
                )
            owners[country] = member.member_id
    return owners


@dataclass(frozen=True)
class Roster:
    """A parsed, structurally valid roster. An invalid one cannot be built."""

    version: int
    issued_at: datetime
    expires_at: datetime
    members: Mapping[MemberId, Member]
    fallback_member_id: MemberId
    _country_owner: Mapping[str, MemberId] = field(init=False, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        version: int,
        issued_at: datetime,
        expires_at: datetime,
        members: Iterable[Member],
        fallback_member_id: MemberId,
    ) -> Roster:
        """Build a roster from a member list, refusing duplicate ids."""
        return cls(version, issued_at, expires_at, _index_members(members), fallback_member_id)

    def __post_init__(self) -> None:
        if not 1 <= self.version <= MAX_STORED_INT:
            raise RosterError("roster version must be between 1 and 2^63-1")
        if self.expires_at <= self.issued_at:
            raise RosterError("roster expires before it is issued")
        fallback = self.members.get(self.fallback_member_id)
        if fallback is None or not fallback.role.runs_node:
            raise RosterError("fallback_member_id must name a hotline or secretariat member")
        object.__setattr__(self, "members", MappingProxyType(dict(self.members)))
        object.__setattr__(self, "_country_owner", _hotline_countries(self.members.values()))

    def member(self, member_id: MemberId) -> Member | None:
        """The member with this id, if any."""
        return self.members.get(member_id)

    def is_expired(self, now: datetime) -> bool:
        """True once ``now`` is past the roster's expiry."""
        return now > self.expires_at

    def responsible_for(self, country: str) -> Member:
        """The hotline responsible for ``country``, else the fallback member."""
        owner = None if country == UNKNOWN_COUNTRY else self._country_owner.get(country)
        return self.members[owner or self.fallback_member_id]

    def peers_of(self, member_id: MemberId) -> list[Member]:
        """Every other member that runs a node and has an endpoint."""
        return [
            m
            for m in self.members.values()
            if m.member_id != member_id and m.role.runs_node and m.endpoint
        ]


class RosterUpdate(enum.Enum):
    """What to do with a candidate roster that passed its checks."""

    INSTALL = "install"
    NO_OP = "no-op"


def decide_roster_update(
    current: Roster | None,
    current_bytes: bytes | None,
    candidate: Roster,
    candidate_bytes: bytes,
    now: datetime,
    *,
    allow_stale: bool = False,
) -> RosterUpdate:
    """Apply the rollback and expiry rules to a threshold-verified roster.

    Raises RosterError for an expired roster or a version that is not newer
    than the installed one; the identical roster (same bytes) is a no-op.
    """
    if current_bytes is not None and candidate_bytes == current_bytes:
        return RosterUpdate.NO_OP
    if candidate.is_expired(now):
        raise RosterError(f"roster version {candidate.version} has expired", ROSTER_OFFER_EXPIRED)
    if current is not None and candidate.version <= current.version and not allow_stale:
        raise RosterError(
            f"roster version {candidate.version} is not newer than installed {current.version}",
            ROSTER_NOT_NEWER,
        )
    return RosterUpdate.INSTALL
