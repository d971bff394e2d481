"""Envelope and report checks in protocol order (pure, no server)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crypto.dsse import Envelope
from crypto.keys import SigningKey
from federation.core import envelope_checks as checks
from federation.core.limits import DEFAULT_LIMITS
from federation.core.reasons import REPORT_TYPE, RejectReason
from federation.core.report import ContentHash, HashAlgorithm, Report, check_report
from federation.core.roster import Member, MemberKey, Role, Roster

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = SigningKey.generate()
REVOKED = SigningKey.generate()
ENV = Envelope(b"x", REPORT_TYPE, "hotline-dk", KEY.key_id, b"s" * 64)


def _roster() -> Roster:
    keys = {
        KEY.key_id: MemberKey(KEY.key_id, KEY.public_key),
        REVOKED.key_id: MemberKey(REVOKED.key_id, REVOKED.public_key, revoked=True),
    }
    members = [
        Member("hotline-dk", Role.HOTLINE, frozenset({"DK"}), endpoint="h:1", keys=keys),
        Member("secretariat", Role.SECRETARIAT, endpoint="h:2", keys=keys),
    ]
    return Roster.build(1, NOW, NOW + timedelta(days=1), members, "secretariat")


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (replace(ENV, payload=b"x" * (64 * 1024 + 1)), RejectReason.LIMIT_EXCEEDED),
        (replace(ENV, payload_type="t" * 65), RejectReason.LIMIT_EXCEEDED),
        (replace(ENV, signature=b"s" * 63), RejectReason.BAD_SIGNATURE),
        (replace(ENV, payload_type="hfp.v1.Roster"), RejectReason.UNSUPPORTED_PAYLOAD_TYPE),
        (ENV, None),
    ],
)
def test_envelope_limits(envelope: Envelope, reason: RejectReason | None) -> None:
    found = checks.check_envelope_limits(envelope, {REPORT_TYPE}, DEFAULT_LIMITS)
    assert (found.reason if found else None) is reason


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (replace(ENV, signer_member_id="nobody"), RejectReason.UNKNOWN_SIGNER),
        (replace(ENV, key_id="ab" * 32), RejectReason.KEY_NOT_VALID),
        (replace(ENV, key_id="not-hex"), RejectReason.KEY_NOT_VALID),
        (replace(ENV, key_id=REVOKED.key_id), RejectReason.KEY_NOT_VALID),
    ],
)
def test_signing_key_lookup_refusals(envelope: Envelope, reason: RejectReason) -> None:
    found = checks.find_signing_key(envelope, _roster())
    assert not isinstance(found, MemberKey) and found.reason is reason


def test_signing_key_lookup_finds_live_key() -> None:
    assert (
        checks.find_signing_key(ENV, _roster()) == _roster().members["hotline-dk"].keys[KEY.key_id]
    )


@pytest.mark.parametrize(
    ("sender", "via", "reason"),
    [
        ("hotline-dk", (), None),
        ("hotline-de", (), RejectReason.SENDER_MISMATCH),
        ("hotline-de", ("hotline-de",), None),
        ("hotline-de", ("hotline-nl",), RejectReason.SENDER_MISMATCH),
        ("me", ("me",), RejectReason.LOOP_DETECTED),
        ("e1", ("a1", "b1", "c1", "d1", "e1"), RejectReason.LOOP_DETECTED),
        ("hotline-de", ("Bad Id!", "hotline-de"), RejectReason.MALFORMED_PAYLOAD),
        ("d1", ("a1", "b1", "c1", "d1"), None),
    ],
)
def test_path_checks(sender: str, via: tuple[str, ...], reason: RejectReason | None) -> None:
    found = checks.check_path(sender, ENV, via, "me", DEFAULT_LIMITS)
    assert (found.reason if found else None) is reason


def test_author_must_be_signer() -> None:
    assert checks.check_author("hotline-dk", ENV) is None
    found = checks.check_author("hotline-nl", ENV)
    assert found is not None and found.reason is RejectReason.AUTHOR_MISMATCH


REPORT = Report(
    report_id="01890a5d-ac96-774b-bcce-b302099a8057",
    origin_member_id="hotline-dk",
    created_at=NOW,
    url="https://example.com/a",
    hashes=(ContentHash(HashAlgorithm.SHA256, b"\x00" * 32),),
    media_type=1,
    classification=1,
    hosting_country="DK",
)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"created_at": NOW + timedelta(minutes=6)}, RejectReason.CLOCK_SKEW),
        ({"created_at": NOW + timedelta(minutes=4)}, None),
        ({"report_id": "not-a-uuid"}, RejectReason.MALFORMED_PAYLOAD),
        ({"report_id": REPORT.report_id.upper()}, RejectReason.MALFORMED_PAYLOAD),
        ({"hosting_country": "dk"}, RejectReason.MALFORMED_PAYLOAD),
        ({"hosting_country": "ZZ"}, None),
        ({"hosting_ip": "300.1.1.1"}, RejectReason.MALFORMED_PAYLOAD),
        ({"hosting_ip": "2001:db8::1"}, None),
        ({"site_type": "s" * 65}, RejectReason.LIMIT_EXCEEDED),
        ({"analyst_note": "n" * 2001}, RejectReason.LIMIT_EXCEEDED),
        ({"url": "https://example.com/" + "a" * 4096}, RejectReason.LIMIT_EXCEEDED),
        ({"url": "data:image/png;base64,AAAA"}, RejectReason.MEDIA_NOT_ALLOWED),
        ({"url": "DATA:image/png;base64,AAAA"}, RejectReason.MEDIA_NOT_ALLOWED),
        ({"url": "javascript:alert(1)"}, RejectReason.MALFORMED_PAYLOAD),
        ({"url": "/relative/path"}, RejectReason.MALFORMED_PAYLOAD),
        ({"url": "https://exa mple.com/"}, RejectReason.MALFORMED_PAYLOAD),
        ({"url": "https://example.com:99999/"}, RejectReason.MALFORMED_PAYLOAD),
        ({"url": "ftp://example.net/file"}, None),
        ({"url": "https://bücher.example/ä?q=1"}, None),
        ({"hashes": (ContentHash(HashAlgorithm.MD5, b"1" * 15),)}, RejectReason.MALFORMED_PAYLOAD),
        ({"hashes": (ContentHash(HashAlgorithm.PHOTODNA, b"1" * 144),)}, None),
        ({"hashes": (ContentHash(HashAlgorithm.PDQ, b"1" * 145),)}, RejectReason.MEDIA_NOT_ALLOWED),
        (
            {"hashes": (ContentHash(HashAlgorithm.SHA1, b"1" * 20),) * 33},
            RejectReason.LIMIT_EXCEEDED,
        ),
    ],
)
def test_report_checks(changes: dict[str, object], reason: RejectReason | None) -> None:
    found = check_report(replace(REPORT, **changes), NOW, DEFAULT_LIMITS)  # type: ignore[arg-type]
    assert (found.reason if found else None) is reason
