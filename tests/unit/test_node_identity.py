"""Which key the node signs with: the newest held key its roster lists as usable now."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crypto.keys import SigningKey
from federation.core.ids import KeyId, MemberId
from federation.core.roster import Member, MemberKey, Role, Roster
from federation.intake import NodeIdentity, NoSigningKeyError
from federation.runtime.clock import utc_now

ME = MemberId("hotline-nl")
NOW = utc_now()


def _roster(*keys: MemberKey) -> Roster:
    member = Member(
        ME, Role.HOTLINE, "NL", frozenset({"NL"}), "127.0.0.1:7102", {k.key_id: k for k in keys}
    )
    return Roster.build(1, NOW - timedelta(days=1), NOW + timedelta(days=30), [member], ME)


def _listed(key: SigningKey, **window: object) -> MemberKey:
    return MemberKey(KeyId(key.key_id), key.public_key, **window)  # type: ignore[arg-type]


def _identity(keys: list[SigningKey], roster: Roster) -> NodeIdentity:
    return NodeIdentity(ME, keys, lambda: roster, clock=lambda: NOW)


def test_the_newest_listed_key_signs() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    roster = _roster(_listed(old), _listed(new, not_before=NOW - timedelta(hours=1)))
    assert _identity([new, old], roster).signing_key is new
    assert _identity([old], roster).signing_key is old


def test_revoked_unlisted_and_not_yet_valid_keys_never_sign() -> None:
    old, revoked, future, unlisted = (SigningKey.generate() for _ in range(4))
    roster = _roster(
        _listed(old),
        _listed(revoked, not_before=NOW - timedelta(hours=1), revoked=True),
        _listed(future, not_before=NOW + timedelta(hours=1)),
    )
    assert _identity([old, revoked, future, unlisted], roster).signing_key is old


def test_no_usable_key_refuses_to_sign_and_says_why() -> None:
    key = SigningKey.generate()
    identity = _identity([key], _roster(_listed(key, revoked=True)))
    assert identity.current_key() is None
    assert "signing key" in (identity.why_not_signing() or "")
    with pytest.raises(NoSigningKeyError):
        identity.sign("application/test", b"x")


def test_replaced_keys_take_effect_for_the_next_signature() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    roster = _roster(_listed(old), _listed(new, not_before=NOW - timedelta(hours=1)))
    identity = _identity([old], roster)
    identity.replace_keys([old, new])
    assert identity.sign("application/test", b"x").key_id == new.key_id
