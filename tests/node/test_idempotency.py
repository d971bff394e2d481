"""Redelivery: the same envelope is answered with the same receipt, stored once."""

from __future__ import annotations

import dataclasses
import threading

from hfp.v1 import envelope_pb2
from tests.support.net import (
    BULK_DEADLINE,
    Network,
    count_inbound,
    deliver,
    item,
    make_report,
    outcome_name,
    reason_name,
    sign_report,
    verify_receipt,
)

SENDER = "hotline-dk"
RECEIVER = "hotline-nl"


def test_redelivery_in_a_second_call_returns_the_same_receipt(net: Network) -> None:
    report = make_report(SENDER, "NL")
    forwarded = item(sign_report(report, net.signing_key(SENDER)))

    with net.stub(SENDER, RECEIVER) as stub:
        (first,) = deliver(stub, [forwarded])
        (second,) = deliver(stub, [forwarded])

    assert first.SerializeToString() == second.SerializeToString()
    assert outcome_name(verify_receipt(net, first)) == "OUTCOME_ACCEPTED"
    assert count_inbound(net, RECEIVER, report.report_id) == 1


def test_redelivery_on_a_new_connection_returns_the_same_receipt(net: Network) -> None:
    report = make_report(SENDER, "NL")
    forwarded = item(sign_report(report, net.signing_key(SENDER)))
    receipts = []
    for _ in range(2):
        with net.stub(SENDER, RECEIVER) as stub:
            receipts.extend(deliver(stub, [forwarded]))
    assert receipts[0].SerializeToString() == receipts[1].SerializeToString()
    assert count_inbound(net, RECEIVER, report.report_id) == 1


def test_twice_in_one_batch_gets_the_same_receipt_twice(net: Network) -> None:
    report = make_report(SENDER, "NL")
    forwarded = item(sign_report(report, net.signing_key(SENDER)))

    with net.stub(SENDER, RECEIVER) as stub:
        first, second = deliver(stub, [forwarded, forwarded])
        (later,) = deliver(stub, [forwarded])

    assert first.SerializeToString() == second.SerializeToString() == later.SerializeToString()
    receipt = verify_receipt(net, first)
    assert (outcome_name(receipt), receipt.item_id) == ("OUTCOME_ACCEPTED", report.report_id)
    assert count_inbound(net, RECEIVER, report.report_id) == 1


def test_same_report_id_with_a_different_payload_is_refused(net: Network) -> None:
    key = net.signing_key(SENDER)
    original = make_report(SENDER, "NL")
    impostor = dataclasses.replace(original, url="https://other.example.net/x")

    with net.stub(SENDER, RECEIVER) as stub:
        (accepted,) = deliver(stub, [item(sign_report(original, key))])
        (refused,) = deliver(stub, [item(sign_report(impostor, key))])
        (again,) = deliver(stub, [item(sign_report(original, key))])

    assert outcome_name(verify_receipt(net, accepted)) == "OUTCOME_ACCEPTED"
    receipt = verify_receipt(net, refused)
    assert (outcome_name(receipt), reason_name(receipt)) == (
        "OUTCOME_REJECTED",
        "REJECT_REASON_MALFORMED_PAYLOAD",
    )
    assert receipt.item_id == original.report_id
    assert again.SerializeToString() == accepted.SerializeToString()
    assert count_inbound(net, RECEIVER, original.report_id) == 1


def test_same_report_id_with_a_different_payload_in_one_batch(net: Network) -> None:
    key = net.signing_key(SENDER)
    original = make_report(SENDER, "NL")
    impostor = dataclasses.replace(original, url="https://other.example.net/y")

    with net.stub(SENDER, RECEIVER) as stub:
        first, second = deliver(
            stub, [item(sign_report(original, key)), item(sign_report(impostor, key))]
        )

    assert outcome_name(verify_receipt(net, first)) == "OUTCOME_ACCEPTED"
    receipt = verify_receipt(net, second)
    assert (outcome_name(receipt), reason_name(receipt)) == (
        "OUTCOME_REJECTED",
        "REJECT_REASON_MALFORMED_PAYLOAD",
    )
    assert count_inbound(net, RECEIVER, original.report_id) == 1


def test_redelivery_by_a_forwarder_returns_the_stored_receipt(net: Network) -> None:
    """The idempotency key is the report id, whoever hands the item over."""
    report = make_report("hotline-de", "NL")
    envelope = sign_report(report, net.signing_key("hotline-de"))

    with net.stub("hotline-de", RECEIVER) as stub:
        (direct,) = deliver(stub, [item(envelope)])
    with net.stub(SENDER, RECEIVER) as stub:
        (relayed,) = deliver(stub, [item(envelope, via=[SENDER])])

    assert relayed.SerializeToString() == direct.SerializeToString()
    assert count_inbound(net, RECEIVER, report.report_id) == 1


def test_concurrent_redeliveries_store_once_and_agree(net: Network) -> None:
    """Racing batches carrying the same items: one row each, one receipt each."""
    key = net.signing_key(SENDER)
    reports = [make_report(SENDER, "NL") for _ in range(100)]
    items = [item(sign_report(r, key)) for r in reports]
    answers: list[list[bytes]] = []
    lock = threading.Lock()

    def run() -> None:
        with net.stub(SENDER, RECEIVER) as stub:
            receipts = deliver(stub, items, timeout=BULK_DEADLINE)
        with lock:
            answers.append([r.SerializeToString() for r in receipts])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BULK_DEADLINE + 5)
        assert not thread.is_alive()

    assert len(answers) == 4
    assert all(answer == answers[0] for answer in answers)
    assert (
        outcome_name(verify_receipt(net, envelope_pb2.SignedEnvelope.FromString(answers[0][0])))
        == "OUTCOME_ACCEPTED"
    )
    for report in (reports[0], reports[-1]):
        assert count_inbound(net, RECEIVER, report.report_id) == 1
