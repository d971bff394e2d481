"""``roster.toml``: the secretariat's source of the roster.

Edited by hand or by ``hfed roster add`` / ``hfed roster revoke``; ``hfed
roster build`` turns it into the exact bytes the root key holders sign.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crypto.errors import KeyFormatError
from crypto.keys import public_key_from_hex
from federation.core.ids import KeyId, MemberId
from federation.core.roster import Member, MemberKey, Role, Roster, RosterError
from federation.network.errors import OperationsError
from federation.network.request import MembershipRequest, RoleName
from federation.network.tomlfile import dumps, read_toml, validate

SOURCE_HEADER = """Roster source, kept by the secretariat. Edit it, then `hfed roster build`.
Raise `version` for every roster you publish."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceKey(_Model):
    """One signing key of a member."""

    key_id: str
    public_key: str
    not_before: datetime | None = None
    not_after: datetime | None = None
    revoked: bool = False


class SourceMember(_Model):
    """One member, as the roster will list it."""

    member_id: str
    display_name: str = ""
    role: RoleName
    jurisdictions: list[str] = []
    endpoint: str = ""
    keys: list[SourceKey] = []


class RosterSource(_Model):
    """The whole roster source."""

    version: int = Field(ge=1)
    lifetime_days: int = Field(default=365, ge=1, le=3650)
    fallback_member_id: str
    members: list[SourceMember] = []

    @classmethod
    def load(cls, path: Path) -> RosterSource:
        """Read and check the shape of a roster source (its rules: :meth:`to_roster`)."""
        return validate(cls, read_toml(path), path)

    def save(self, path: Path) -> None:
        """Write the source back (a hand-made file loses its comments)."""
        path.write_text(dumps(self.model_dump(), SOURCE_HEADER))

    def member(self, member_id: str) -> SourceMember | None:
        """The member with this id, if listed."""
        return next((m for m in self.members if m.member_id == member_id), None)

    def to_roster(self, issued_at: datetime) -> Roster:
        """The roster this source describes, issued at ``issued_at``; refuses a broken one."""
        expires_at = issued_at + timedelta(days=self.lifetime_days)
        try:
            members = [_member(m) for m in self.members]
            return Roster.build(
                self.version, issued_at, expires_at, members, MemberId(self.fallback_member_id)
            )
        except RosterError as exc:
            raise OperationsError(f"roster source: {exc.public_message}") from exc

    def add(self, request: MembershipRequest) -> str:
        """Add the requested member, or its new key; returns what was done."""
        existing = self.member(request.member_id)
        if existing is None:
            self.members.append(_from_request(request))
            return f"added member {request.member_id} ({request.role})"
        if existing.role != request.role:
            raise OperationsError(
                f"{request.member_id} is a {existing.role}, the request says {request.role}"
            )
        if not request.key_id:
            raise OperationsError(f"{request.member_id} is already listed and asks for no new key")
        if any(k.key_id == request.key_id for k in existing.keys):
            raise OperationsError(f"{request.member_id} already has key {request.key_id[:16]}")
        existing.keys.append(
            SourceKey(key_id=request.key_id, public_key=request.signing_public_key)
        )
        return f"added key {request.key_id[:16]} to {request.member_id}"

    def revoke(self, member_id: str, key_id: str | None) -> str:
        """Mark a key revoked, or (no key) remove the member; returns what was done."""
        existing = self.member(member_id)
        if existing is None:
            raise OperationsError(f"{member_id} is not in the roster source")
        if key_id is None:
            if member_id == self.fallback_member_id:
                raise OperationsError(f"{member_id} is the fallback member; name another first")
            self.members.remove(existing)
            return f"removed member {member_id}"
        matches = [k for k in existing.keys if k.key_id.startswith(key_id)]
        if len(matches) != 1:
            raise OperationsError(f"{member_id} has {len(matches)} keys matching {key_id!r}")
        if matches[0].revoked:
            raise OperationsError(f"key {matches[0].key_id[:16]} is already revoked")
        matches[0].revoked = True
        return f"revoked key {matches[0].key_id[:16]} of {member_id}"


def new_source(first: MembershipRequest, fallback: str | None) -> RosterSource:
    """An empty roster source (version 1), its fallback named or the secretariat being added."""
    if fallback is None:
        if first.role != "secretariat":
            raise OperationsError(
                "a new roster source needs --fallback (or add the secretariat first)"
            )
        fallback = first.member_id
    return RosterSource(version=1, fallback_member_id=fallback)


def _from_request(request: MembershipRequest) -> SourceMember:
    keys = []
    if request.key_id:
        keys.append(SourceKey(key_id=request.key_id, public_key=request.signing_public_key))
    return SourceMember(
        member_id=request.member_id,
        display_name=request.display_name,
        role=request.role,
        jurisdictions=list(request.jurisdictions),
        endpoint=request.endpoint,
        keys=keys,
    )


def _member(source: SourceMember) -> Member:
    return Member(
        member_id=MemberId(source.member_id),
        role=Role[source.role.upper()],
        display_name=source.display_name,
        jurisdictions=frozenset(source.jurisdictions),
        endpoint=source.endpoint,
        keys={KeyId(k.key_id): _key(source.member_id, k) for k in source.keys},
    )


def _key(member_id: str, key: SourceKey) -> MemberKey:
    try:
        public_key = public_key_from_hex(key.public_key)
    except KeyFormatError as exc:
        raise OperationsError(f"roster source: {member_id}: {exc}") from exc
    return MemberKey(KeyId(key.key_id), public_key, key.not_before, key.not_after, key.revoked)


def source_table(roster: Roster, lifetime_days: int) -> dict[str, Any]:
    """A roster source describing ``roster`` (how the test network writes one)."""
    return {
        "version": roster.version,
        "lifetime_days": lifetime_days,
        "fallback_member_id": roster.fallback_member_id,
        "members": [
            {
                "member_id": m.member_id,
                "display_name": m.display_name,
                "role": m.role.name.lower(),
                "jurisdictions": sorted(m.jurisdictions),
                "endpoint": m.endpoint,
                "keys": [
                    {
                        "key_id": k.key_id,
                        "public_key": k.public_key.hex(),
                        "not_before": k.not_before,
                        "not_after": k.not_after,
                        "revoked": k.revoked,
                    }
                    for k in m.keys.values()
                ],
            }
            for m in roster.members.values()
        ],
    }
