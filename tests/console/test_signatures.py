"""The case page's signature verdicts: real history from a real node, checked
against the node's roster verified with the network's root keys; each kind of
tampering is named, and a roster that does not verify marks everything."""

from __future__ import annotations

import os

from crypto.keys import SigningKey
from crypto.threshold import TrustAnchor
from federation.cli.connect import target_of
from federation.console.node_client import NodeClient
from federation.console.signatures import HistoryChecker
from federation.node.config import load_config
from hfp.v1 import envelope_pb2, status_pb2
from tests.console.conftest import DK
from tests.support.hotline import get_case, record, submit_url
from tests.support.net import Network


def _history(
    net: Network,
) -> tuple[list[status_pb2.StatusUpdate], list[envelope_pb2.SignedEnvelope]]:
    receipt = submit_url(net, DK, f"https://sig-{os.urandom(4).hex()}.example.com/", "DK")
    record(net, DK, receipt.case_id, status_pb2.CASE_STATUS_ASSESSED_ILLEGAL)
    case = get_case(net, DK, case_id=receipt.case_id)
    return list(case.history), list(case.history_envelopes)


def _client(net: Network) -> NodeClient:
    client = NodeClient(target_of(load_config(net.directory / net.member(DK).config)))
    client.open()
    return client


def test_a_genuine_history_verifies_and_each_tampering_is_named(console_net: Network) -> None:
    updates, envelopes = _history(console_net)
    assert len(updates) == len(envelopes) == 2
    client = _client(console_net)
    try:
        checker = HistoryChecker(console_net.manifest.trust_anchor(), client.signed_roster)
        assert [v.verified for v in checker.check(updates, envelopes)] == [True, True]
        assert checker.check(updates, envelopes)[0].text.startswith(f"verified: {DK}, key ")

        shown = status_pb2.StatusUpdate()
        shown.CopyFrom(updates[1])
        shown.note = "edited after signing"
        assert "differs from the entry shown" in checker.check([shown], envelopes[1:])[0].text

        forged = envelope_pb2.SignedEnvelope()
        forged.CopyFrom(envelopes[1])
        forged.signature = bytes(64)
        assert "does not verify" in checker.check(updates[1:], [forged])[0].text

        other = envelope_pb2.SignedEnvelope()
        other.CopyFrom(envelopes[1])
        other.signer_member_id = "hotline-nl"
        assert "not its author" in checker.check(updates[1:], [other])[0].text

        assert "no signed form" in checker.check(updates, envelopes[:1])[1].text

        stranger = TrustAnchor.from_public_keys([SigningKey.generate().public_key], 1)
        untrusted = HistoryChecker(stranger, client.signed_roster).check(updates, envelopes)
        assert not any(v.verified for v in untrusted)
        assert "roster does not verify" in untrusted[0].text
    finally:
        client.close()
