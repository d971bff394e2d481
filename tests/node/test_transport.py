"""Transport-level refusals of FederationService: identity, role and size.

These fail the whole call with a gRPC status (never a receipt). After each
refusal the node must still serve a valid delivery.
"""

from __future__ import annotations

import os

import grpc
import pytest

from crypto.keys import SigningKey
from crypto.x509ca import create_ca, issue_member_cert
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from tests.support.net import (
    BULK_DEADLINE,
    DEADLINE,
    Network,
    deliver,
    item,
    make_report,
    outcome_name,
    rpc_code,
    sign,
    sign_report,
    verify_receipt,
)

SENDER = "hotline-dk"
RECEIVER = "hotline-nl"
MIB = 1024 * 1024


def _assert_still_serving(net: Network) -> None:
    report = make_report(SENDER, "NL")
    with net.stub(SENDER, RECEIVER) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, net.signing_key(SENDER)))])
    assert outcome_name(verify_receipt(net, signed)) == "OUTCOME_ACCEPTED"


def _calls(channel: grpc.Channel) -> dict[str, object]:
    stub = fed_grpc.FederationServiceStub(channel)
    return {
        "Deliver": lambda: stub.Deliver(fed_pb.DeliverRequest(), timeout=DEADLINE),
        "GetRoster": lambda: stub.GetRoster(fed_pb.GetRosterRequest(), timeout=DEADLINE),
        "PublishRoster": lambda: stub.PublishRoster(
            fed_pb.PublishRosterRequest(), timeout=DEADLINE
        ),
    }


def _code_with(net: Network, credentials: grpc.ChannelCredentials, rpc: str) -> grpc.StatusCode:
    with grpc.secure_channel(net.member(RECEIVER).endpoint, credentials) as channel:
        return rpc_code(_calls(channel)[rpc])


RPCS = ["Deliver", "GetRoster", "PublishRoster"]


# --- identity and role ---------------------------------------------------------


@pytest.mark.parametrize("rpc", RPCS)
def test_client_without_certificate_cannot_call(net: Network, rpc: str) -> None:
    # The node requires a client certificate at the TLS handshake, so the
    # call cannot even start; gRPC reports the failed connection as UNAVAILABLE.
    credentials = grpc.ssl_channel_credentials(root_certificates=net.identity(SENDER).ca_cert)
    code = _code_with(net, credentials, rpc)
    assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("rpc", RPCS)
def test_certificate_from_another_ca_cannot_call(net: Network, rpc: str) -> None:
    rogue_ca = create_ca("Rogue CA")
    rogue = issue_member_cert(rogue_ca, SENDER, ["127.0.0.1", "localhost"])
    credentials = grpc.ssl_channel_credentials(
        root_certificates=net.identity(SENDER).ca_cert,
        private_key=rogue.key_pem,
        certificate_chain=rogue.cert_pem,
    )
    assert _code_with(net, credentials, rpc) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("rpc", RPCS)
def test_liaison_may_not_call_federation_service(net: Network, rpc: str) -> None:
    with net.channel("police-dk", RECEIVER) as channel:
        assert rpc_code(_calls(channel)[rpc]) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("rpc", RPCS)
def test_network_certificate_for_a_non_member_is_unauthenticated(net: Network, rpc: str) -> None:
    stranger = issue_member_cert(net.ca(), "hotline-xx", ["127.0.0.1", "localhost"])
    credentials = grpc.ssl_channel_credentials(
        root_certificates=net.identity(SENDER).ca_cert,
        private_key=stranger.key_pem,
        certificate_chain=stranger.cert_pem,
    )
    assert _code_with(net, credentials, rpc) == grpc.StatusCode.UNAUTHENTICATED


def test_secretariat_and_hotlines_may_call(net: Network) -> None:
    for caller in ("secretariat", "hotline-de", SENDER):
        with net.stub(caller, RECEIVER) as stub:
            reply = stub.Deliver(fed_pb.DeliverRequest(), timeout=DEADLINE)
        assert list(reply.receipts) == []


def test_refused_callers_leave_the_node_serving(net: Network) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=net.identity(SENDER).ca_cert)
    assert _code_with(net, credentials, "Deliver") != grpc.StatusCode.OK
    _assert_still_serving(net)


# --- size limits ---------------------------------------------------------------


def _junk_items(count: int, payload_bytes: int) -> list[fed_pb.ForwardedItem]:
    """Copies of one item with an opaque junk payload signed by a stranger's key.

    Size checks come before any parsing, so the payload need not be a report.
    """
    envelope = sign(os.urandom(payload_bytes), SigningKey.generate(), SENDER)
    return [item(envelope) for _ in range(count)]


def test_batch_of_1001_items_is_resource_exhausted(net: Network) -> None:
    request = fed_pb.DeliverRequest(items=_junk_items(1001, 16))
    with net.stub(SENDER, RECEIVER) as stub:
        code = rpc_code(lambda: stub.Deliver(request, timeout=BULK_DEADLINE))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_still_serving(net)


def test_batch_of_1000_items_is_answered_item_by_item(net: Network) -> None:
    items = _junk_items(1000, 16)  # signed by a key not in the roster
    with net.stub(SENDER, RECEIVER) as stub:
        receipts = deliver(stub, items, timeout=BULK_DEADLINE)
    for signed in (receipts[0], receipts[-1]):
        receipt = verify_receipt(net, signed)
        assert outcome_name(receipt) == "OUTCOME_REJECTED"


def test_request_just_over_8_mib_is_resource_exhausted(net: Network) -> None:
    # 128 payloads of 64 KiB: 8 MiB of payload plus envelope fields, a little
    # over the limit but under the node's transport cap (limit + 64 KiB), so
    # the node's own check must refuse it.
    request = fed_pb.DeliverRequest(items=_junk_items(128, 64 * 1024))
    assert 8 * MIB < request.ByteSize() < 8 * MIB + 48 * 1024
    with net.stub(SENDER, RECEIVER) as stub:
        code = rpc_code(lambda: stub.Deliver(request, timeout=BULK_DEADLINE))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_still_serving(net)


def test_request_far_over_8_mib_is_resource_exhausted(net: Network) -> None:
    request = fed_pb.DeliverRequest(items=_junk_items(150, 64 * 1024))
    assert request.ByteSize() > 9 * MIB
    with net.stub(SENDER, RECEIVER) as stub:
        code = rpc_code(lambda: stub.Deliver(request, timeout=BULK_DEADLINE))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_still_serving(net)


def test_request_under_8_mib_is_served(net: Network) -> None:
    # 120 payloads of 64 KiB (7.5 MiB): within the limit, each item answered.
    items = _junk_items(120, 64 * 1024)
    with net.stub(SENDER, RECEIVER) as stub:
        receipts = deliver(stub, items, timeout=BULK_DEADLINE)
    assert outcome_name(verify_receipt(net, receipts[0])) == "OUTCOME_REJECTED"
