"""A retry of an item accepted before a roster change gets the same receipt.

The sender retries until it holds a receipt (the reply may have been lost);
the receiver must answer the same bytes the same way even though the key was
revoked or dropped, or the signer removed, since: the key no longer verifies
new items. Only the exact bytes are answered so: a changed payload or a
signature that never verified stays refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crypto.keys import SigningKey
from federation.core.roster import MemberKey
from hfp.v1 import envelope_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.net import (
    Network,
    deliver,
    item,
    make_report,
    outcome_name,
    publish_next_roster,
    reason_name,
    revoked_and_replaced,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

SENDER, RECEIVER, RELAYED = "hotline-dk", "hotline-nl", "hotline-de"


def _accepted(net: Network, sent: fed_pb.ForwardedItem) -> envelope_pb2.SignedEnvelope:
    """Deliver ``sent`` from hotline-dk to hotline-nl; its receipt, checked ACCEPTED."""
    with net.stub(SENDER, RECEIVER) as stub:
        (receipt,) = deliver(stub, [sent])
    assert outcome_name(verify_receipt(net, receipt)) == "OUTCOME_ACCEPTED"
    return receipt


def test_retry_after_revocation_replays_the_stored_receipt(tmp_path: Path) -> None:
    with running_network(tmp_path / "net", small_members(RECEIVER)) as net:
        original = net.signing_key(SENDER)
        accepted = item(sign_report(make_report(SENDER, "NL"), original))
        first = _accepted(net, accepted)
        roster = publish_next_roster(net, RECEIVER, keys={SENDER: revoked_and_replaced(original)})

        fresh = item(sign_report(make_report(SENDER, "NL"), original))
        with net.stub(SENDER, RECEIVER) as stub:
            again, refused = deliver(stub, [accepted, fresh])
        assert again.SerializeToString() == first.SerializeToString()
        receipt = verify_receipt(net, refused, roster)
        assert reason_name(receipt) == "REJECT_REASON_KEY_NOT_VALID"


def test_retry_after_the_key_is_dropped_replays_only_the_exact_bytes(tmp_path: Path) -> None:
    with running_network(tmp_path / "net", small_members(RECEIVER)) as net:
        original = net.signing_key(SENDER)
        report = make_report(SENDER, "NL")
        accepted = item(sign_report(report, original))
        first = _accepted(net, accepted)
        replacement = SigningKey.generate()
        roster = publish_next_roster(
            net, RECEIVER, keys={SENDER: [MemberKey(replacement.key_id, replacement.public_key)]}
        )

        forged_signature = fed_pb.ForwardedItem()
        forged_signature.CopyFrom(accepted)
        forged_signature.envelope.signature = bytes(64)
        same_id = item(sign_report(dataclasses.replace(report, url=report.url + "x"), original))
        with net.stub(SENDER, RECEIVER) as stub:
            answers = deliver(stub, [accepted, forged_signature, same_id])
        assert answers[0].SerializeToString() == first.SerializeToString()
        reasons = [reason_name(verify_receipt(net, r, roster)) for r in answers[1:]]
        assert reasons == ["REJECT_REASON_KEY_NOT_VALID"] * 2


def test_retry_after_the_signer_is_removed_replays_the_stored_receipt(tmp_path: Path) -> None:
    # hotline-de's report reaches hotline-nl relayed by hotline-dk; then
    # hotline-de leaves the network and hotline-dk retries the relay.
    with running_network(tmp_path / "net", small_members(RECEIVER)) as net:
        relayed = item(sign_report(make_report(RELAYED, "NL"), net.signing_key(RELAYED)), [SENDER])
        first = _accepted(net, relayed)
        roster = publish_next_roster(net, RECEIVER, drop=[RELAYED])

        fresh = item(sign_report(make_report(RELAYED, "NL"), net.signing_key(RELAYED)), [SENDER])
        with net.stub(SENDER, RECEIVER) as stub:
            again, refused = deliver(stub, [relayed, fresh])
        assert again.SerializeToString() == first.SerializeToString()
        assert reason_name(verify_receipt(net, refused, roster)) == "REJECT_REASON_UNKNOWN_SIGNER"
