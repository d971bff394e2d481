"""Signing keys from the roster: revocation, rotation, validity windows, removal.

A module-scoped network with one node (hotline-nl) gets a roster in which
hotline-dk's original key is revoked, several new keys with different
validity windows are listed, and hotline-de is no longer a member.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest

from crypto.keys import SigningKey
from federation.core.roster import MemberKey, Roster
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import hotline_service_pb2 as hotline_pb
from hfp.v1 import hotline_service_pb2_grpc as hotline_grpc
from hfp.v1 import report_pb2
from tests.support.net import (
    DEADLINE,
    Network,
    deliver,
    fetch_roster,
    item,
    make_report,
    new_roster,
    now,
    outcome_name,
    publish_next_roster,
    publish_roster,
    reason_name,
    revoked_and_replaced,
    rpc_code,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

SENDER = "hotline-dk"
RECEIVER = "hotline-nl"
REMOVED = "hotline-de"


class Keys(NamedTuple):
    net: Network
    roster: Roster
    revoked: SigningKey
    current: SigningKey
    #: Valid only from one day ago.
    recent: SigningKey
    #: Valid only from one hour in the future.
    future: SigningKey
    #: Valid only until one day ago.
    retired: SigningKey


def _key(key: SigningKey, **window: object) -> MemberKey:
    return MemberKey(key.key_id, key.public_key, **window)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    directory = tmp_path_factory.mktemp("keys") / "net"
    with running_network(directory, small_members(RECEIVER)) as net:
        original = net.signing_key(SENDER)
        current, recent, future, retired = (SigningKey.generate() for _ in range(4))
        t = now()
        installed = fetch_roster(net, SENDER, RECEIVER).roster
        roster = new_roster(
            installed,
            installed.version + 1,
            keys={
                SENDER: [
                    _key(original, revoked=True),
                    _key(current),
                    _key(recent, not_before=t - timedelta(days=1)),
                    _key(future, not_before=t + timedelta(hours=1)),
                    _key(retired, not_after=t - timedelta(days=1)),
                ]
            },
            drop=[REMOVED],
        )
        assert publish_roster(net, RECEIVER, roster) == roster.version
        yield Keys(net, roster, original, current, recent, future, retired)


def _deliver_one(keys: Keys, key: SigningKey, **changes: object) -> tuple[str, str, str]:
    report = make_report(SENDER, "NL", **changes)
    with keys.net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, key))])
    receipt = verify_receipt(keys.net, signed, keys.roster)
    assert receipt.item_id in ("", report.report_id)
    return outcome_name(receipt), reason_name(receipt), receipt.detail


ACCEPTED = ("OUTCOME_ACCEPTED", "REJECT_REASON_UNSPECIFIED")
KEY_NOT_VALID = ("OUTCOME_REJECTED", "REJECT_REASON_KEY_NOT_VALID")

CASES = {
    # name: (key attribute, item created this long before now, expected)
    "revoked-key": ("revoked", timedelta(0), KEY_NOT_VALID),
    "revoked-key-item-created-before-revocation": ("revoked", timedelta(days=2), KEY_NOT_VALID),
    "new-key": ("current", timedelta(0), ACCEPTED),
    "inside-not-before": ("recent", timedelta(hours=1), ACCEPTED),
    "before-not-before": ("recent", timedelta(days=2), KEY_NOT_VALID),
    "key-not-yet-valid": ("future", timedelta(0), KEY_NOT_VALID),
    "after-not-after": ("retired", timedelta(0), KEY_NOT_VALID),
    # The item's own timestamp decides (spec §2): made while the key was valid.
    "made-before-not-after": ("retired", timedelta(days=2), ACCEPTED),
}


@pytest.mark.parametrize(("key_name", "age", "expected"), CASES.values(), ids=CASES.keys())
def test_signing_key_validity(
    keys: Keys, key_name: str, age: timedelta, expected: tuple[str, str]
) -> None:
    key = getattr(keys, key_name)
    outcome, reason, detail = _deliver_one(keys, key, created_at=now() - age)
    assert (outcome, reason) == expected, detail


def test_node_serves_the_new_roster(keys: Keys) -> None:
    served = fetch_roster(keys.net, SENDER, RECEIVER).roster
    assert served.version == keys.roster.version
    dk = served.member(SENDER)
    assert dk is not None
    assert dk.keys[keys.revoked.key_id].revoked
    assert set(dk.keys) == {k.key_id for k in keys[2:]}


def test_rotated_keys_work_side_by_side_in_one_batch(keys: Keys) -> None:
    reports = [make_report(SENDER, "NL") for _ in range(3)]
    signers = [keys.current, keys.revoked, keys.recent]
    with keys.net.stub(SENDER, RECEIVER) as stub:
        receipts = deliver(
            stub, [item(sign_report(r, k)) for r, k in zip(reports, signers, strict=True)]
        )
    got = [
        (outcome_name(x), reason_name(x))
        for x in (verify_receipt(keys.net, r, keys.roster) for r in receipts)
    ]
    assert got == [ACCEPTED, KEY_NOT_VALID, ACCEPTED]


def test_removed_member_can_no_longer_call(keys: Keys) -> None:
    with keys.net.stub(REMOVED, RECEIVER) as stub:
        code = rpc_code(lambda: stub.GetRoster(fed_pb.GetRosterRequest(), timeout=DEADLINE))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_items_signed_by_a_removed_member_are_unknown_signer(keys: Keys) -> None:
    report = make_report(REMOVED, "NL")
    envelope = sign_report(report, keys.net.signing_key(REMOVED))
    with keys.net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(envelope, via=[SENDER])])
    receipt = verify_receipt(keys.net, signed, keys.roster)
    assert (outcome_name(receipt), reason_name(receipt)) == (
        "OUTCOME_REJECTED",
        "REJECT_REASON_UNKNOWN_SIGNER",
    )


def test_own_intake_is_refused_once_the_nodes_key_is_revoked(tmp_path: Path) -> None:
    # With its only key revoked the node signs nothing: not the report, and
    # not a receipt rejecting it either (signed with the revoked key, such a
    # receipt would be worthless). The call fails as UNAVAILABLE instead.
    with running_network(tmp_path / "net", small_members(RECEIVER)) as net:
        keys = revoked_and_replaced(net.signing_key(RECEIVER))
        publish_next_roster(net, RECEIVER, keys={RECEIVER: keys})
        report = report_pb2.Report(
            url="https://own-intake.example.test/a",
            hosting_country="NL",
            hashes=[
                report_pb2.ContentHash(algorithm=report_pb2.HASH_ALGORITHM_SHA256, value=bytes(32))
            ],
        )
        with net.channel(RECEIVER, RECEIVER) as channel:
            stub = hotline_grpc.HotlineServiceStub(channel)
            code = rpc_code(
                lambda: stub.SubmitReport(
                    hotline_pb.SubmitReportRequest(report=report), timeout=DEADLINE
                )
            )
        assert code == grpc.StatusCode.UNAVAILABLE
