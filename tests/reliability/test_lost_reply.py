"""Lost replies and cut requests between a sender and hotline-nl's node.

A test client acting as hotline-dk's node talks to hotline-nl through a
loopback TCP proxy (tests/support/proxy.py). TLS passes through the proxy
unchanged: the client still verifies the node's certificate (127.0.0.1 SAN)
and presents hotline-dk's. The proxy loses traffic the way a network does:

* the node commits a batch and replies, but the reply never arrives and the
  connection drops: the sender's retry must get the same receipt bytes and
  the node must hold one record per item;
* the connection drops halfway through the request: the node stores nothing
  and the retry stores each item once.

Related duplicate deliveries without a proxy: two members (the signer and a
forwarder) deliver the same items at the same moment; one record per item,
and every answer is the one stored receipt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
import pytest

from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from peers.channel import secure_channel
from tests.support.crashes import id_counts, receipt_envelope, stored_receipts_of, wait_until
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    item,
    make_report,
    outcome_name,
    rpc_code,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)
from tests.support.proxy import Proxy, tcp_proxy

SENDER, RECEIVER, FORWARDER = "hotline-dk", "hotline-nl", "hotline-de"
#: A signed receipt is well over this many bytes: a node that sent fewer
#: bytes than items * this after committing has not sent its reply yet.
MIN_RECEIPT_BYTES = 100
#: Attempts of a call made right after the proxy cut a connection.
RETRIES = 5

T = TypeVar("T")


@pytest.fixture(scope="module")
def lnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("lost-reply") / "net"
    with running_network(directory, small_members(RECEIVER)) as network:
        yield network


@pytest.fixture
def proxied(lnet: Network) -> Iterator[tuple[Proxy, fed_grpc.FederationServiceStub]]:
    """A proxy to the receiver and a FederationService stub (as hotline-dk) through it."""
    with (
        tcp_proxy(lnet.member(RECEIVER).endpoint) as proxy,
        secure_channel(proxy.address, lnet.identity(SENDER)) as channel,
    ):
        stub = fed_grpc.FederationServiceStub(channel)
        _connect(stub)
        yield proxy, stub


def _connect(stub: fed_grpc.FederationServiceStub) -> None:
    """(Re)connect the stub's channel: TLS and HTTP/2 set-up must not be lost."""
    _retrying(
        lambda: stub.GetRoster(
            fed_pb.GetRosterRequest(known_version=1 << 62), timeout=DEADLINE, wait_for_ready=True
        )
    )


def _retrying(call: Callable[[], T]) -> T:
    """Call until it does not fail with UNAVAILABLE, as a sender does (bounded).

    Right after the proxy cut a connection, the channel may still try to use
    it for the next call, which then fails with UNAVAILABLE.
    """
    for _ in range(RETRIES - 1):
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        time.sleep(0.2)
    return call()


def _request(net: Network, count: int) -> tuple[fed_pb.DeliverRequest, list[str]]:
    key = net.signing_key(SENDER)
    reports = [make_report(SENDER, "NL") for _ in range(count)]
    request = fed_pb.DeliverRequest(items=[item(sign_report(r, key)) for r in reports])
    return request, [r.report_id for r in reports]


def _replied(net: Network, proxy: Proxy, ids: list[str], before: int) -> Callable[[], bool]:
    """A predicate: the node stored every item and has sent (into the proxy) a reply
    large enough to hold their receipts since ``before`` bytes were swallowed."""

    def replied() -> bool:
        stored = len(stored_receipts_of(net, RECEIVER, ids)) == len(ids)
        return stored and proxy.swallowed - before >= MIN_RECEIPT_BYTES * len(ids)

    return replied


def _stored_once(net: Network, ids: list[str]) -> bool:
    inbound = id_counts(net, RECEIVER, "inbound_items", "item_id")
    reports = id_counts(net, RECEIVER, "case_reports", "report_id")
    return all(inbound[i] == 1 and reports[i] == 1 for i in ids)


def test_reply_lost_after_commit_retry_gets_same_receipts(
    lnet: Network, proxied: tuple[Proxy, fed_grpc.FederationServiceStub]
) -> None:
    """Deliver 20 items; the node commits and replies, but the reply is lost and the
    connection reset, three times in a row: expect UNAVAILABLE each time, then a retry
    answered with the receipts stored at the first commit, byte for byte, and one
    record per item, nothing lost."""
    proxy, stub = proxied
    request, ids = _request(lnet, 20)
    first: dict[str, bytes] = {}
    for loss in range(3):
        _connect(stub)
        proxy.swallow_replies()
        swallowed = proxy.swallowed
        future = stub.Deliver.future(request, timeout=BULK_DEADLINE, wait_for_ready=True)
        replied = wait_until(_replied(lnet, proxy, ids, swallowed), timeout=BULK_DEADLINE)
        assert replied, f"loss {loss}: the node did not commit and reply"
        proxy.cut()
        error = future.exception(timeout=DEADLINE)  # type: ignore[call-arg]  # stub lacks timeout
        assert isinstance(error, grpc.RpcError), f"loss {loss}: the call did not fail"
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        stored = stored_receipts_of(lnet, RECEIVER, ids)
        first = first or stored
        assert stored == first, "a redelivery changed the stored receipts"
        proxy.pass_through()

    accepted = proxy.accepted
    reply = _retrying(lambda: stub.Deliver(request, timeout=BULK_DEADLINE, wait_for_ready=True))
    assert proxy.accepted > accepted, "the retry did not go through the proxy"
    assert [r.SerializeToString() for r in reply.receipts] == [first[i] for i in ids]
    for item_id, signed in zip(ids, reply.receipts, strict=True):
        receipt = verify_receipt(lnet, signed)
        assert (receipt.item_id, outcome_name(receipt)) == (item_id, "OUTCOME_ACCEPTED")
    assert _stored_once(lnet, ids)


def test_request_cut_midway_nothing_stored_retry_stores_once(
    lnet: Network, proxied: tuple[Proxy, fed_grpc.FederationServiceStub]
) -> None:
    """Deliver 50 items over a connection that drops after half the request's bytes:
    expect UNAVAILABLE and nothing stored; the retry stores each item once and a
    third delivery gets the same receipt bytes, nothing lost."""
    proxy, stub = proxied
    request, ids = _request(lnet, 50)
    _connect(stub)
    proxy.cut_requests_after(request.ByteSize() // 2)
    code = rpc_code(lambda: stub.Deliver(request, timeout=BULK_DEADLINE))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert stored_receipts_of(lnet, RECEIVER, ids) == {}, "half a request stored items"

    proxy.pass_through()
    reply = _retrying(lambda: stub.Deliver(request, timeout=BULK_DEADLINE, wait_for_ready=True))
    receipts = [r.SerializeToString() for r in reply.receipts]
    for item_id, signed in zip(ids, reply.receipts, strict=True):
        receipt = verify_receipt(lnet, signed)
        assert (receipt.item_id, outcome_name(receipt)) == (item_id, "OUTCOME_ACCEPTED")
    again = stub.Deliver(request, timeout=BULK_DEADLINE)
    assert [r.SerializeToString() for r in again.receipts] == receipts
    assert _stored_once(lnet, ids)


def test_two_senders_deliver_same_items_concurrently_one_record(lnet: Network) -> None:
    """Have hotline-dk (the signer) and hotline-de (forwarding, via hotline-de) deliver
    the same 100 signed items at the same moment, eight rounds each: expect every call
    accepted, every answer byte-identical to the one receipt stored per item, and one
    record per item, nothing lost or doubled."""
    key = lnet.signing_key(SENDER)
    reports = [make_report(SENDER, "NL") for _ in range(100)]
    ids = [r.report_id for r in reports]
    envelopes = [sign_report(r, key) for r in reports]
    requests = {
        SENDER: fed_pb.DeliverRequest(items=[item(e) for e in envelopes]),
        FORWARDER: fed_pb.DeliverRequest(items=[item(e, via=[FORWARDER]) for e in envelopes]),
    }
    rounds = 8
    start = threading.Barrier(2 * rounds, timeout=BULK_DEADLINE)
    answers: list[list[bytes]] = []
    failures: list[BaseException] = []

    def deliver_as(caller: str) -> None:
        try:
            with lnet.stub(caller, RECEIVER) as stub:
                start.wait()
                reply = stub.Deliver(requests[caller], timeout=BULK_DEADLINE)
            answers.append([r.SerializeToString() for r in reply.receipts])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=deliver_as, args=(caller,), daemon=True)
        for caller in (SENDER, FORWARDER)
        for _ in range(rounds)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * BULK_DEADLINE)
    assert not any(t.is_alive() for t in threads), "a delivery hung"
    assert not failures, failures
    stored = stored_receipts_of(lnet, RECEIVER, ids)
    expected = [stored[i] for i in ids]
    assert len(answers) == 2 * rounds
    assert all(answer == expected for answer in answers), "duplicates got different receipts"
    for item_id, data in zip(ids, expected, strict=True):
        receipt = verify_receipt(lnet, receipt_envelope(data))
        assert (receipt.item_id, outcome_name(receipt)) == (item_id, "OUTCOME_ACCEPTED")
    assert _stored_once(lnet, ids)
