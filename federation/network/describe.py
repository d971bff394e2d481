"""What a roster says, and what changed between two: for people to check
before they sign, publish or install one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from federation.core.roster import Member, MemberKey, Roster
from federation.network.source import source_table


def key_state(key: MemberKey, now: datetime) -> str:
    """``valid``, ``revoked``, ``not yet valid`` or ``expired`` at ``now``."""
    if key.revoked:
        return "revoked"
    if key.not_before is not None and now < key.not_before:
        return "not yet valid"
    return "valid" if key.covers(now) else "expired"


def headline(roster: Roster, now: datetime) -> str:
    """One line: version, lifetime, members, fallback."""
    days = (roster.expires_at - now).total_seconds() / 86400
    return (
        f"roster version {roster.version}: issued {roster.issued_at:%Y-%m-%d %H:%M}Z, "
        f"expires {roster.expires_at:%Y-%m-%d %H:%M}Z (in {days:.0f} days), "
        f"{len(roster.members)} members, fallback {roster.fallback_member_id}"
    )


def member_rows(roster: Roster, now: datetime) -> list[dict[str, Any]]:
    """One row per member: id, role, jurisdictions, endpoint, keys and their states."""
    return [
        {
            "member": m.member_id,
            "role": m.role.name.lower(),
            "jurisdictions": " ".join(sorted(m.jurisdictions)),
            "endpoint": m.endpoint,
            "keys": " ".join(f"{k.key_id[:12]}({key_state(k, now)})" for k in m.keys.values()),
            "name": m.display_name,
        }
        for m in sorted(roster.members.values(), key=lambda m: m.member_id)
    ]


def as_json(roster: Roster, now: datetime) -> dict[str, Any]:
    """The roster as plain data: the roster source's fields, times and each key's state."""
    lifetime = (roster.expires_at - roster.issued_at).days
    table = source_table(roster, lifetime)
    for entry in table["members"]:
        listed = roster.members[entry["member_id"]].keys
        for key in entry["keys"]:
            key["state"] = key_state(listed[key["key_id"]], now)
    return {"issued_at": roster.issued_at, "expires_at": roster.expires_at, **table}


def diff(old: Roster, new: Roster) -> list[str]:
    """Every change from ``old`` to ``new``, one line each (empty: same members)."""
    lines = []
    if old.version != new.version:
        lines.append(f"version {old.version} -> {new.version}")
    if old.fallback_member_id != new.fallback_member_id:
        lines.append(f"fallback {old.fallback_member_id} -> {new.fallback_member_id}")
    for member_id in sorted(old.members.keys() - new.members.keys()):
        lines.append(f"- member {member_id} removed")
    for member_id in sorted(new.members.keys() - old.members.keys()):
        member = new.members[member_id]
        lines.append(f"+ member {member_id} ({member.role.name.lower()}) added")
    for member_id in sorted(old.members.keys() & new.members.keys()):
        lines += _member_changes(old.members[member_id], new.members[member_id])
    return lines


def _member_changes(old: Member, new: Member) -> list[str]:
    who = old.member_id
    lines = []
    for what in ("role", "display_name", "endpoint"):
        before, after = getattr(old, what), getattr(new, what)
        if before != after:
            lines.append(f"~ {who}: {what} {_plain(before)} -> {_plain(after)}")
    if old.jurisdictions != new.jurisdictions:
        lines.append(
            f"~ {who}: jurisdictions {sorted(old.jurisdictions)} -> {sorted(new.jurisdictions)}"
        )
    for key_id in sorted(old.keys.keys() - new.keys.keys()):
        lines.append(f"~ {who}: key {key_id[:16]} removed")
    for key_id in sorted(new.keys.keys() - old.keys.keys()):
        lines.append(f"~ {who}: key {key_id[:16]} added")
    for key_id in sorted(old.keys.keys() & new.keys.keys()):
        if new.keys[key_id].revoked and not old.keys[key_id].revoked:
            lines.append(f"~ {who}: key {key_id[:16]} revoked")
        elif new.keys[key_id] != old.keys[key_id]:
            lines.append(f"~ {who}: key {key_id[:16]} validity changed")
    return lines


def _plain(value: object) -> str:
    return value.name.lower() if hasattr(value, "name") else repr(value)
