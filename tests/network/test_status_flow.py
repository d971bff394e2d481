"""Status tracking across a real network.

A = hotline-dk and C = hotline-de report the same URL hosted in NL; B =
hotline-nl is responsible and records the takedown; the reporters must hold
the complete, signature-verified history in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import grpc
import pytest

from crypto.dsse import verify_envelope_signature
from federation.core.ids import new_uuid7
from federation.core.reasons import STATUS_UPDATE_TYPE
from federation.wire.convert import envelope_from_proto
from hfp.v1 import case_pb2, receipt_pb2, status_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import hotline_service_pb2 as pb
from tests.support.hotline import get_case, hotline, submit_url, wait_history
from tests.support.hotline import record as record_at
from tests.support.net import DEADLINE, Network, envelope_to_proto, running_network, sign

A, B, C = "hotline-dk", "hotline-nl", "hotline-de"
S = status_pb2
TAKEDOWN = [
    S.CASE_STATUS_ASSESSED_ILLEGAL,
    S.CASE_STATUS_LEA_NOTIFIED,
    S.CASE_STATUS_NOTICE_SENT,
    S.CASE_STATUS_CONTENT_REMOVED,
]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("status") / "net") as network:
        yield network


def submit(net: Network, at: str, url: str, country: str = "NL") -> receipt_pb2.Receipt:
    return submit_url(net, at, url, country)


def record(net: Network, case_id: str, status: int, **extra: str) -> None:
    """RecordStatus of one of B's cases."""
    record_at(net, B, case_id, status, **extra)


def assert_verified_history(net: Network, case: case_pb2.Case, expected: list[int]) -> None:
    roster = net.bootstrap_roster().roster
    assert [u.status for u in case.history] == expected
    assert [u.sequence for u in case.history] == list(range(1, len(expected) + 1))
    for update, signed in zip(case.history, case.history_envelopes, strict=True):
        envelope = envelope_from_proto(signed)
        member = roster.member(envelope.signer_member_id)
        assert member is not None and envelope.payload_type == STATUS_UPDATE_TYPE
        assert verify_envelope_signature(envelope, member.keys[envelope.key_id].public_key)
        assert status_pb2.StatusUpdate.FromString(envelope.payload) == update
        assert update.member_id == B


def test_takedown_history_reaches_both_reporters(net: Network) -> None:
    url = f"https://takedown.example.com/{os.urandom(4).hex()}"
    from_a = submit(net, A, url)
    time.sleep(0.5)
    from_c = submit(net, C, url.replace("https://takedown.", "HTTPS://TakeDown.") + "#frag")
    case_id = wait_history(net, B, from_a.item_id, 1).case_id
    assert wait_history(net, B, from_c.item_id, 1).case_id == case_id
    for status in TAKEDOWN:
        record(net, case_id, status, note=f"synthetic step {status}")
    expected = [S.CASE_STATUS_RECEIVED, *TAKEDOWN]
    for reporter, receipt in ((A, from_a), (C, from_c)):
        case = wait_history(net, reporter, receipt.item_id, len(expected))
        assert case.case_id == case_id and case.status == S.CASE_STATUS_CONTENT_REMOVED
        assert_verified_history(net, case, expected)
    with hotline(net, B) as stub:
        stats = stub.GetStats(pb.GetStatsRequest(), timeout=DEADLINE)
    assert stats.removed_count >= 1 and stats.removed_within_72h_share > 0
    assert stats.takedown_median.ToTimedelta().total_seconds() > 0


def test_illegal_transition_and_unknown_case(net: Network) -> None:
    receipt = submit(net, B, f"https://illegal.example.com/{os.urandom(4).hex()}")
    for illegal in (S.CASE_STATUS_LEA_NOTIFIED, S.CASE_STATUS_NOTICE_SENT, S.CASE_STATUS_RECEIVED):
        with pytest.raises(grpc.RpcError) as caught:
            record(net, receipt.case_id, illegal)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        record(net, new_uuid7(), S.CASE_STATUS_ASSESSED_ILLEGAL)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def _signed_updates(
    net: Network, case_id: str, report_ids: list[str], signer: str = B
) -> list[fed_pb.ForwardedItem]:
    """``signer``'s updates for a case, signed with its key, as it would deliver them."""
    key = net.signing_key(signer)
    items = []
    for sequence, status in enumerate([S.CASE_STATUS_RECEIVED, *TAKEDOWN], start=1):
        update = status_pb2.StatusUpdate(
            update_id=new_uuid7(),
            case_id=case_id,
            report_ids=report_ids,
            member_id=signer,
            status=status,
            sequence=sequence,  # type: ignore[arg-type]
        )
        update.observed_at.GetCurrentTime()
        envelope = sign(update.SerializeToString(), key, signer, STATUS_UPDATE_TYPE)
        items.append(fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope)))
    return items


def test_out_of_order_and_repeated_delivery_gives_the_same_history(net: Network) -> None:
    receipt = submit(net, A, f"https://order.example.com/{os.urandom(4).hex()}", country="FR")
    # A case of the secretariat's (FR has no hotline) that A learns about
    # only from the secretariat's updates about A's report.
    case_id = new_uuid7()
    items = _signed_updates(net, case_id, [receipt.item_id], signer="secretariat")
    with net.stub("secretariat", A) as stub:
        for batch in ([items[3], items[1]], [items[4], items[0], items[0]], [items[2], items[3]]):
            reply = stub.Deliver(fed_pb.DeliverRequest(items=batch), timeout=DEADLINE)
            for signed in reply.receipts:
                answer = receipt_pb2.Receipt.FromString(signed.payload)
                assert answer.outcome == receipt_pb2.OUTCOME_ACCEPTED, answer.detail
    case = get_case(net, A, case_id=case_id)
    assert [u.sequence for u in case.history] == [1, 2, 3, 4, 5]
    assert case.status == S.CASE_STATUS_CONTENT_REMOVED


def test_updates_from_a_non_responsible_member_are_refused(net: Network) -> None:
    receipt = submit(net, B, f"https://owned.example.com/{os.urandom(4).hex()}")
    forged = _signed_updates(net, receipt.case_id, [receipt.item_id])[1]
    # C signs an update about B's case and hands it to B itself.
    update = status_pb2.StatusUpdate.FromString(forged.envelope.payload)
    update.member_id = C
    envelope = sign(update.SerializeToString(), net.signing_key(C), C, STATUS_UPDATE_TYPE)
    with net.stub(C, B) as stub:
        reply = stub.Deliver(
            fed_pb.DeliverRequest(
                items=[fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope))]
            ),
            timeout=DEADLINE,
        )
    answer = receipt_pb2.Receipt.FromString(reply.receipts[0].payload)
    assert answer.reject_reason == receipt_pb2.REJECT_REASON_NOT_RESPONSIBLE


def test_late_reporter_receives_the_current_status(net: Network) -> None:
    url = f"https://late.example.com/{os.urandom(4).hex()}"
    first = submit(net, A, url)
    case_id = wait_history(net, B, first.item_id, 1).case_id
    record(net, case_id, S.CASE_STATUS_ASSESSED_ILLEGAL)
    record(net, case_id, S.CASE_STATUS_NOTICE_SENT)
    late = submit(net, C, url)
    case = wait_history(net, C, late.item_id, 3)
    assert case.case_id == case_id and case.status == S.CASE_STATUS_NOTICE_SENT


def test_moved_case_is_rerouted_and_reporters_see_the_chain(net: Network) -> None:
    url = f"https://moved.example.com/{os.urandom(4).hex()}"
    from_a = submit(net, A, url)
    case_id = wait_history(net, B, from_a.item_id, 1).case_id
    record(net, case_id, S.CASE_STATUS_MOVED, new_hosting_country="DE")
    at_c = wait_history(net, C, from_a.item_id, 1)
    assert at_c.responsible_member_id == C and at_c.hosting_country == "DE"
    assert at_c.case_id != case_id
    seen = wait_history(net, A, from_a.item_id, 3)
    chain = [(u.member_id, u.status) for u in seen.history]
    assert chain == [
        (B, S.CASE_STATUS_RECEIVED),
        (B, S.CASE_STATUS_MOVED),
        (C, S.CASE_STATUS_RECEIVED),
    ]
    assert seen.history[1].new_hosting_country == "DE"
    # The reporter's view names the new owner and, with it, the new country.
    assert seen.responsible_member_id == C and seen.hosting_country == "DE"
