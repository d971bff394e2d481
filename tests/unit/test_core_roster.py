"""Roster structure, rollback and expiry rules (pure, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crypto.keys import SigningKey
from federation.core.roster import (
    Member,
    MemberKey,
    Role,
    Roster,
    RosterError,
    RosterUpdate,
    decide_roster_update,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _key() -> MemberKey:
    k = SigningKey.generate()
    return MemberKey(k.key_id, k.public_key)


def _member(member_id: str, role: Role = Role.HOTLINE, countries: tuple[str, ...] = ()) -> Member:
    key = _key()
    return Member(
        member_id,
        role,
        jurisdictions=frozenset(countries),
        endpoint="127.0.0.1:1",
        keys={key.key_id: key},
    )


def _roster(version: int = 1, expires: timedelta = timedelta(days=30)) -> Roster:
    return Roster.build(
        version,
        NOW - timedelta(days=1),
        NOW + expires,
        [
            _member("hotline-dk", countries=("DK",)),
            _member("hotline-nl", countries=("NL",)),
            _member("secretariat", Role.SECRETARIAT),
        ],
        "secretariat",
    )


def test_responsible_member_by_country_and_fallback() -> None:
    roster = _roster()
    assert roster.responsible_for("DK").member_id == "hotline-dk"
    assert roster.responsible_for("FR").member_id == "secretariat"
    assert roster.responsible_for("ZZ").member_id == "secretariat"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Roster.build(1, NOW, NOW + timedelta(1), [_member("a1"), _member("a1")], "a1"),
            "listed twice",
        ),
        (
            lambda: Roster.build(
                1,
                NOW,
                NOW + timedelta(1),
                [_member("h1", countries=("DK",)), _member("h2", countries=("DK",))],
                "h1",
            ),
            "claimed by",
        ),
        (lambda: Roster.build(1, NOW, NOW + timedelta(1), [_member("h1")], "nobody"), "fallback"),
        (
            lambda: Roster.build(
                1, NOW, NOW + timedelta(1), [_member("h1"), _member("p1", Role.LIAISON)], "p1"
            ),
            "fallback",
        ),
        (lambda: Roster.build(0, NOW, NOW + timedelta(1), [_member("h1")], "h1"), "version"),
        (lambda: Roster.build(1, NOW, NOW, [_member("h1")], "h1"), "expires"),
        (lambda: Member("Bad_Id", Role.HOTLINE), "invalid member id"),
        (
            lambda: Member("h1", Role.HOTLINE, jurisdictions=frozenset({"dk"}), keys={"x": _key()}),
            "jurisdictions",
        ),
        (lambda: Member("h1", Role.HOTLINE), "needs a key and an endpoint"),
        (lambda: MemberKey("00" * 32, SigningKey.generate().public_key), "does not match"),
    ],
)
def test_invalid_rosters_cannot_be_built(build: object, message: str) -> None:
    with pytest.raises(RosterError, match=message):
        build()  # type: ignore[operator]


def test_newer_roster_installs() -> None:
    assert decide_roster_update(_roster(1), b"a", _roster(2), b"b", NOW) is RosterUpdate.INSTALL


def test_first_roster_installs() -> None:
    assert decide_roster_update(None, None, _roster(1), b"a", NOW) is RosterUpdate.INSTALL


def test_identical_roster_is_a_no_op() -> None:
    current = _roster(3)
    assert decide_roster_update(current, b"same", current, b"same", NOW) is RosterUpdate.NO_OP


@pytest.mark.parametrize("version", [1, 2])
def test_rollback_and_replay_of_other_bytes_refused(version: int) -> None:
    with pytest.raises(RosterError, match="not newer"):
        decide_roster_update(_roster(2), b"current", _roster(version), b"other", NOW)


def test_expired_roster_refused() -> None:
    with pytest.raises(RosterError, match="expired"):
        decide_roster_update(
            _roster(1),
            b"a",
            _roster(2, timedelta(days=-1) + timedelta(hours=1)),
            b"b",
            NOW + timedelta(days=1),
        )


@pytest.mark.parametrize(
    ("not_before", "not_after", "moment", "covered"),
    [
        (None, None, NOW, True),
        (NOW, None, NOW - timedelta(seconds=1), False),
        (NOW, None, NOW, True),
        (None, NOW, NOW, True),
        (None, NOW, NOW + timedelta(seconds=1), False),
        (NOW - timedelta(days=1), NOW + timedelta(days=1), NOW, True),
    ],
)
def test_key_validity_window(
    not_before: datetime | None, not_after: datetime | None, moment: datetime, covered: bool
) -> None:
    k = SigningKey.generate()
    assert MemberKey(k.key_id, k.public_key, not_before, not_after).covers(moment) is covered
