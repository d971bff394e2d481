"""Signing keys over time: rotation, retirement, revocation, on a live node.

One real node (hotline-nl) in a module-scoped network. Before the fixture
rotates anything, hotline-dk and the secretariat deliver a few items and
sign a few more that stay "in their outbox". Then one roster is published:

- hotline-dk's original key K0 is retired (``not_after`` = the rotation
  moment) and K1 takes over (``not_before`` a minute before); a third key,
  FUTURE, becomes valid only in an hour;
- the secretariat's original key S0 is revoked (a compromise), S1 replaces it.

Spec §2: the key window is checked against the item's own timestamp, so an
item made while its key was valid keeps verifying after the rotation; a
revoked key verifies nothing new. Accepted items keep their answer forever
(senders retry until they hold a receipt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

import pytest

from crypto.dsse import Envelope
from crypto.keys import SigningKey
from federation.core.report import Report
from federation.core.roster import MemberKey, Roster
from federation.wire.convert import decode_report
from hfp.v1 import envelope_pb2, receipt_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.hostile import deliver_many, watch
from tests.support.net import (
    DEADLINE,
    Network,
    count_inbound,
    fetch_roster,
    item,
    make_report,
    new_roster,
    now,
    outcome_name,
    publish_roster,
    reason_name,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

RECEIVER = "hotline-nl"
DK = "hotline-dk"
SEC = "secretariat"

ACCEPTED = ("OUTCOME_ACCEPTED", "REJECT_REASON_UNSPECIFIED")
DUPLICATE = ("OUTCOME_DUPLICATE", "REJECT_REASON_UNSPECIFIED")
KEY_NOT_VALID = ("OUTCOME_REJECTED", "REJECT_REASON_KEY_NOT_VALID")
BAD_SIGNATURE = ("OUTCOME_REJECTED", "REJECT_REASON_BAD_SIGNATURE")


class Sent(NamedTuple):
    """An item delivered before the rotation, and the receipt it got."""

    envelope: Envelope
    report: Report
    receipt: envelope_pb2.SignedEnvelope


class Rotation(NamedTuple):
    net: Network
    roster: Roster
    retired_at: datetime
    k0: SigningKey
    k1: SigningKey
    future: SigningKey
    s0: SigningKey
    s1: SigningKey
    #: Delivered and accepted before the rotation.
    dk_early: Sent
    sec_early: Sent
    #: Signed with K0 before the rotation, delivered only after it.
    dk_delayed: Envelope
    #: Signed with K0 before the rotation, same URL as dk_early: joins its case.
    dk_delayed_dup: Envelope


def _key(key: SigningKey, **window: object) -> MemberKey:
    return MemberKey(key.key_id, key.public_key, **window)  # type: ignore[arg-type]


def _send(net: Network, sender: str, envelope: Envelope) -> envelope_pb2.SignedEnvelope:
    with net.stub(sender, RECEIVER) as stub:
        reply = stub.Deliver(fed_pb.DeliverRequest(items=[item(envelope)]), timeout=DEADLINE)
    (receipt,) = reply.receipts
    return receipt


def _sent(net: Network, sender: str, key: SigningKey) -> Sent:
    report = make_report(sender, "NL")
    envelope = sign_report(report, key)
    receipt = _send(net, sender, envelope)
    decoded = verify_receipt(net, receipt)
    assert outcome_name(decoded) == "OUTCOME_ACCEPTED", decoded.detail
    return Sent(envelope, report, receipt)


@pytest.fixture(scope="module")
def rot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotation]:
    directory = tmp_path_factory.mktemp("rotation") / "net"
    with running_network(directory, small_members(RECEIVER)) as net:
        k0, s0 = net.signing_key(DK), net.signing_key(SEC)
        k1, future, s1 = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
        dk_early = _sent(net, DK, k0)
        sec_early = _sent(net, SEC, s0)
        retired_at = now()
        made_before = retired_at - timedelta(minutes=5)
        dk_delayed = sign_report(make_report(DK, "NL", created_at=made_before), k0)
        dk_delayed_dup = sign_report(
            make_report(DK, "NL", created_at=made_before, url=dk_early.report.url), k0
        )
        installed = fetch_roster(net, DK, RECEIVER).roster
        roster = new_roster(
            installed,
            installed.version + 1,
            keys={
                DK: [
                    _key(k0, not_after=retired_at),
                    _key(k1, not_before=retired_at - timedelta(minutes=1)),
                    _key(future, not_before=retired_at + timedelta(hours=1)),
                ],
                SEC: [_key(s0, revoked=True), _key(s1)],
            },
        )
        assert publish_roster(net, RECEIVER, roster) == roster.version
        yield Rotation(
            net,
            roster,
            retired_at,
            k0,
            k1,
            future,
            s0,
            s1,
            dk_early,
            sec_early,
            dk_delayed,
            dk_delayed_dup,
        )


def _one(rot: Rotation, sender: str, envelope: Envelope) -> receipt_pb2.Receipt:
    (receipt,) = deliver_many(rot.net, sender, RECEIVER, [item(envelope)])
    return receipt


def _report_id(envelope: Envelope) -> str:
    return decode_report(envelope.payload).report_id


def _pair(receipt: receipt_pb2.Receipt) -> tuple[str, str]:
    return outcome_name(receipt), reason_name(receipt)


# --- what keeps working after the rotation -----------------------------------------


def test_item_signed_before_retirement_is_accepted_after_it(rot: Rotation) -> None:
    """Deliver, after the rotation, a report signed with K0 while K0 was valid
    (it sat in an outbox), expect ACCEPTED and stored once; delivered again,
    the same answer and still one row."""
    report_id = _report_id(rot.dk_delayed)
    receipt = _one(rot, DK, rot.dk_delayed)
    assert _pair(receipt) == ACCEPTED, receipt.detail
    assert _pair(_one(rot, DK, rot.dk_delayed)) == ACCEPTED
    assert count_inbound(rot.net, RECEIVER, report_id) == 1


def test_duplicate_signed_before_retirement_joins_the_case(rot: Rotation) -> None:
    """Deliver, after the rotation, a K0-signed report made before it for a URL
    already reported, expect DUPLICATE into the earlier report's case."""
    first = receipt_pb2.Receipt.FromString(rot.dk_early.receipt.payload)
    receipt = _one(rot, DK, rot.dk_delayed_dup)
    assert _pair(receipt) == DUPLICATE, receipt.detail
    assert receipt.case_id == first.case_id
    assert count_inbound(rot.net, RECEIVER, _report_id(rot.dk_delayed_dup)) == 1


@pytest.mark.parametrize("sender", [DK, SEC], ids=["retired-key", "revoked-key"])
def test_item_accepted_before_the_rotation_keeps_its_receipt(rot: Rotation, sender: str) -> None:
    """Retry, after K0 was retired / S0 was revoked, an item accepted before,
    expect the very receipt it got the first time and still one row: a sender
    retrying until it holds a receipt never loses an accepted item."""
    sent = rot.dk_early if sender == DK else rot.sec_early
    assert _send(rot.net, sender, sent.envelope) == sent.receipt
    assert count_inbound(rot.net, RECEIVER, sent.report.report_id) == 1


def test_new_keys_sign_side_by_side(rot: Rotation) -> None:
    """Deliver new reports signed with K1 and S1, expect both ACCEPTED."""
    for sender, key in ((DK, rot.k1), (SEC, rot.s1)):
        report = make_report(sender, "NL")
        receipt = _one(rot, sender, sign_report(report, key))
        assert _pair(receipt) == ACCEPTED, receipt.detail
        assert count_inbound(rot.net, RECEIVER, report.report_id) == 1


# --- what is refused, stored nowhere, and blocks nothing ---------------------------


class Misuse(NamedTuple):
    sender: str
    #: Signs the report; the receiver must refuse the result.
    forge: Callable[[Rotation, Report], Envelope]
    #: The key the genuine item is then signed with.
    genuine: Callable[[Rotation], SigningKey]
    #: created_at of the report, relative to the rotation moment.
    made: timedelta | None
    expected: tuple[str, str]


def _wrong_key_id(rot: Rotation, report: Report) -> Envelope:
    # K1 signs, but the envelope names K0 (a valid key of the same signer).
    return dataclasses.replace(sign_report(report, rot.k1), key_id=rot.k0.key_id)


MISUSES: dict[str, Misuse] = {
    "retired-key-signs-new-item": Misuse(
        DK, lambda r, rep: sign_report(rep, r.k0), lambda r: r.k1, None, KEY_NOT_VALID
    ),
    "revoked-key-signs-item-made-before-revocation": Misuse(
        SEC,
        lambda r, rep: sign_report(rep, r.s0),
        lambda r: r.s1,
        -timedelta(hours=1),
        KEY_NOT_VALID,
    ),
    "key-not-valid-yet": Misuse(
        DK, lambda r, rep: sign_report(rep, r.future), lambda r: r.k1, None, KEY_NOT_VALID
    ),
    "new-key-backdates-an-item": Misuse(
        DK, lambda r, rep: sign_report(rep, r.k1), lambda r: r.k0, -timedelta(days=1), KEY_NOT_VALID
    ),
    "key-id-of-one-key-signature-of-another": Misuse(
        DK, _wrong_key_id, lambda r: r.k1, None, BAD_SIGNATURE
    ),
}


@pytest.mark.parametrize("misuse", MISUSES.values(), ids=MISUSES.keys())
def test_key_misuse_is_refused_not_stored_and_blocks_nothing(rot: Rotation, misuse: Misuse) -> None:
    """Deliver a report signed with a key that may not sign it, expect the
    prescribed refusal and nothing stored; then the same report signed with a
    key valid for it is ACCEPTED (the forgery did not occupy its id)."""
    made = rot.retired_at + misuse.made if misuse.made is not None else now()
    report = make_report(misuse.sender, "NL", created_at=made)
    before = watch(rot.net, RECEIVER)

    refused = _one(rot, misuse.sender, misuse.forge(rot, report))

    assert _pair(refused) == misuse.expected, refused.detail
    assert before.let_in() == 0
    genuine = _one(rot, misuse.sender, sign_report(report, misuse.genuine(rot)))
    assert _pair(genuine) == ACCEPTED, genuine.detail
    assert count_inbound(rot.net, RECEIVER, report.report_id) == 1
