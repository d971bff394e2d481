"""A retry of an item accepted before its key was revoked gets the same receipt.

The sender retries until it holds a receipt (the reply may have been lost);
the receiver must answer the same bytes the same way even though the key no
longer verifies new items.
"""

from __future__ import annotations

from pathlib import Path

from crypto.keys import SigningKey
from federation.core.roster import MemberKey
from tests.support.net import (
    deliver,
    fetch_roster,
    item,
    make_report,
    new_roster,
    outcome_name,
    publish_roster,
    reason_name,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

SENDER, RECEIVER = "hotline-dk", "hotline-nl"


def test_retry_after_revocation_replays_the_stored_receipt(tmp_path: Path) -> None:
    with running_network(tmp_path / "net", small_members(RECEIVER)) as net:
        original = net.signing_key(SENDER)
        accepted = item(sign_report(make_report(SENDER, "NL"), original))
        with net.stub(SENDER, RECEIVER) as stub:
            (first,) = deliver(stub, [accepted])
        assert outcome_name(verify_receipt(net, first)) == "OUTCOME_ACCEPTED"

        replacement = SigningKey.generate()
        installed = fetch_roster(net, SENDER, RECEIVER).roster
        roster = new_roster(
            installed,
            installed.version + 1,
            keys={
                SENDER: [
                    MemberKey(original.key_id, original.public_key, revoked=True),
                    MemberKey(replacement.key_id, replacement.public_key),
                ]
            },
        )
        publish_roster(net, RECEIVER, roster)

        fresh = item(sign_report(make_report(SENDER, "NL"), original))
        with net.stub(SENDER, RECEIVER) as stub:
            again, refused = deliver(stub, [accepted, fresh])
        assert again.SerializeToString() == first.SerializeToString()
        receipt = verify_receipt(net, refused, roster)
        assert reason_name(receipt) == "REJECT_REASON_KEY_NOT_VALID"
