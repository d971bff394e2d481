"""GetRoster and PublishRoster against real nodes, and a roster that expires.

A module-scoped network with two nodes, hotline-nl and hotline-de. Nodes
pass installed rosters on to each other in the background, so every test
derives "the next version" from the newest roster either node holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest

from crypto.keys import SigningKey
from federation.trust.holder import InstalledRoster
from federation.wire.convert import encode_roster
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import roster_pb2
from tests.support.net import (
    DEADLINE,
    Network,
    deliver,
    fetch_roster,
    item,
    make_report,
    new_roster,
    newest_roster,
    now,
    outcome_name,
    publish,
    running_network,
    sign_report,
    sign_roster,
    small_members,
    start,
    stop,
    verify_receipt,
    wait_for_version,
)
from tests.support.refusals import field_violations, refusal_reason, refused

NODE = "hotline-nl"
EXPIRY_NODE = "hotline-de"
CALLER = "hotline-dk"


@pytest.fixture(scope="module")
def rnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("rosters") / "net"
    with running_network(directory, small_members(NODE, EXPIRY_NODE)) as network:
        yield network


def _current(net: Network, node: str = NODE) -> InstalledRoster:
    return fetch_roster(net, CALLER, node)


def _next_signed(net: Network, **kwargs: object) -> tuple[int, bytes]:
    """A valid roster above every node's version; (version, roster bytes)."""
    base = newest_roster(net).roster
    roster = new_roster(base, base.version + 1, **kwargs)  # type: ignore[arg-type]
    return roster.version, encode_roster(roster)


def _publish_refusal(
    net: Network, signed: roster_pb2.SignedRoster, node: str = NODE
) -> tuple[grpc.StatusCode, str]:
    return refusal_reason(lambda: publish(net, CALLER, node, signed))


def _roots(net: Network) -> list[SigningKey]:
    return net.root_keys()


# --- GetRoster -----------------------------------------------------------------


def test_get_roster_from_zero_returns_the_signed_roster(rnet: Network) -> None:
    with rnet.stub(CALLER, NODE) as stub:
        reply = stub.GetRoster(fed_pb.GetRosterRequest(known_version=0), timeout=DEADLINE)
    assert reply.HasField("roster")
    assert len(reply.roster.signatures) >= rnet.manifest.root_threshold
    installed = _current(rnet)  # verifies the root signatures (threshold 2 of 3)
    assert installed.signed_roster == reply.roster.SerializeToString()
    roster = installed.roster
    assert roster.version >= 1
    assert set(roster.members) == set(rnet.manifest.members)
    assert roster.fallback_member_id == "secretariat"
    assert roster.member(CALLER).keys  # type: ignore[union-attr]


@pytest.mark.parametrize("ahead", [0, 1, 1000])
def test_get_roster_at_or_above_the_current_version_is_unset(rnet: Network, ahead: int) -> None:
    version = _current(rnet).roster.version
    with rnet.stub(CALLER, NODE) as stub:
        reply = stub.GetRoster(
            fed_pb.GetRosterRequest(known_version=version + ahead), timeout=DEADLINE
        )
    assert not reply.HasField("roster")


# --- PublishRoster: refusals -------------------------------------------------------


def test_publish_identical_roster_is_a_no_op(rnet: Network) -> None:
    installed = _current(rnet)
    signed = roster_pb2.SignedRoster.FromString(installed.signed_roster)
    assert publish(rnet, CALLER, NODE, signed) == installed.roster.version
    assert _current(rnet).signed_roster == installed.signed_roster


def test_publish_older_version_is_failed_precondition(rnet: Network) -> None:
    version, roster_bytes = _next_signed(rnet)
    assert publish(rnet, CALLER, NODE, sign_roster(roster_bytes, _roots(rnet)[:2])) == version
    bootstrap = roster_pb2.SignedRoster.FromString(rnet.path("roster.bin").read_bytes())
    assert _publish_refusal(rnet, bootstrap) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ROSTER_NOT_NEWER",
    )
    assert _current(rnet).roster.version == version


def test_publish_same_version_with_other_content_is_failed_precondition(rnet: Network) -> None:
    current = _current(rnet).roster
    rival = new_roster(current, current.version)  # same version, new issued_at
    signed = sign_roster(encode_roster(rival), _roots(rnet)[:2])
    assert _publish_refusal(rnet, signed) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ROSTER_NOT_NEWER",
    )
    assert _current(rnet).roster == current


def _one_root(net: Network, roster_bytes: bytes) -> roster_pb2.SignedRoster:
    return sign_roster(roster_bytes, _roots(net)[:1])


def _same_root_twice(net: Network, roster_bytes: bytes) -> roster_pb2.SignedRoster:
    root = _roots(net)[0]
    return sign_roster(roster_bytes, [root, root])


def _root_and_member_key(net: Network, roster_bytes: bytes) -> roster_pb2.SignedRoster:
    return sign_roster(roster_bytes, [_roots(net)[0], net.signing_key(CALLER)])


def _root_and_mislabelled(net: Network, roster_bytes: bytes) -> roster_pb2.SignedRoster:
    # A stranger's signature carrying the key id of the second root key.
    signed = sign_roster(roster_bytes, [_roots(net)[0], SigningKey.generate()])
    signed.signatures[1].key_id = _roots(net)[1].key_id
    return signed


def _tampered_after_signing(net: Network, roster_bytes: bytes) -> roster_pb2.SignedRoster:
    signed = sign_roster(roster_bytes, _roots(net)[:2])
    signed.roster = roster_bytes[:-1] + bytes([roster_bytes[-1] ^ 1])
    return signed


def _no_signatures(net: Network, roster_bytes: bytes) -> roster_pb2.SignedRoster:
    return roster_pb2.SignedRoster(roster=roster_bytes)


BAD_SIGNATURES = {
    "one-root-signature": _one_root,
    "same-root-twice": _same_root_twice,
    "root-plus-member-key": _root_and_member_key,
    "stranger-with-root-key-id": _root_and_mislabelled,
    "bytes-changed-after-signing": _tampered_after_signing,
    "no-signatures": _no_signatures,
}


@pytest.mark.parametrize("make", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_publish_without_threshold_signatures_is_invalid_argument(rnet: Network, make) -> None:  # type: ignore[no-untyped-def]
    before = _current(rnet)
    _, roster_bytes = _next_signed(rnet)
    assert _publish_refusal(rnet, make(rnet, roster_bytes)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ROSTER_NOT_TRUSTED",
    )
    assert _current(rnet).signed_roster == before.signed_roster


def test_publish_expired_roster_is_invalid_argument(rnet: Network) -> None:
    before = _current(rnet)
    _, roster_bytes = _next_signed(
        rnet, issued_at=now() - timedelta(days=2), lifetime=timedelta(days=1)
    )
    signed = sign_roster(roster_bytes, _roots(rnet)[:2])
    assert _publish_refusal(rnet, signed) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ROSTER_OFFER_EXPIRED",
    )
    assert _current(rnet).signed_roster == before.signed_roster


def test_publish_structurally_invalid_roster_is_invalid_argument(rnet: Network) -> None:
    _, roster_bytes = _next_signed(rnet)
    message = roster_pb2.Roster.FromString(roster_bytes)
    message.fallback_member_id = "no-such-member"
    signed = sign_roster(message.SerializeToString(), _roots(rnet)[:2])
    assert _publish_refusal(rnet, signed) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ROSTER")


def test_publish_without_roster_is_invalid_argument(rnet: Network) -> None:
    """PublishRoster without a roster, expect INVALID_ARGUMENT naming the field."""
    with rnet.stub(CALLER, NODE) as stub:
        error = refused(lambda: stub.PublishRoster(fed_pb.PublishRosterRequest(), timeout=DEADLINE))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [("roster", "roster is required")]


# --- PublishRoster: installation -----------------------------------------------


def test_newer_roster_is_installed_and_survives_a_restart(rnet: Network) -> None:
    old = _current(rnet).roster.version
    version, roster_bytes = _next_signed(rnet)
    signed = sign_roster(roster_bytes, [_roots(rnet)[2], _roots(rnet)[0]])  # any 2 of 3

    assert publish(rnet, "secretariat", NODE, signed) == version
    with rnet.stub(CALLER, NODE) as stub:
        reply = stub.GetRoster(fed_pb.GetRosterRequest(known_version=old), timeout=DEADLINE)
    assert reply.roster.roster == roster_bytes

    wait_for_version(rnet, EXPIRY_NODE, version)  # let the push settle before stopping
    stop(rnet.directory)
    start(rnet.directory)
    assert _current(rnet).roster.version == version
    assert _current(rnet).roster_bytes == roster_bytes


def test_installed_roster_is_passed_on_to_peers(rnet: Network) -> None:
    version, roster_bytes = _next_signed(rnet)
    publish(rnet, CALLER, NODE, sign_roster(roster_bytes, _roots(rnet)[:2]))
    assert wait_for_version(rnet, EXPIRY_NODE, version) == version
    assert _current(rnet, EXPIRY_NODE).roster_bytes == roster_bytes


# --- an expired roster at the receiver -----------------------------------------


def _deliver_refusal(net: Network, node: str) -> tuple[grpc.StatusCode, str]:
    report = make_report(CALLER, "DE")
    with net.stub(CALLER, node) as stub:
        return refusal_reason(
            lambda: deliver(stub, [item(sign_report(report, net.signing_key(CALLER)))])
        )


def test_expired_roster_refuses_deliveries_until_a_fresh_one_arrives(rnet: Network) -> None:
    """Spec §1: reads keep working; new items get FAILED_PRECONDITION.

    Real time, no mocks: the node installs a roster that expires in about a
    second and a half, and the test waits (bounded) until it has.
    """
    lifetime = timedelta(seconds=1.5)
    short_version, short_bytes = _next_signed(rnet, lifetime=lifetime)
    expires = time.monotonic() + lifetime.total_seconds()
    publish(rnet, CALLER, EXPIRY_NODE, sign_roster(short_bytes, _roots(rnet)[:2]))
    try:
        time.sleep(max(0.0, expires - time.monotonic()) + 0.3)

        assert _deliver_refusal(rnet, EXPIRY_NODE) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "ROSTER_EXPIRED",
        )
        held = _current(rnet, EXPIRY_NODE)  # reads are still served
        assert (held.roster.version, held.roster_bytes) == (short_version, short_bytes)
    finally:
        version, fresh_bytes = _next_signed(rnet)
        fresh = sign_roster(fresh_bytes, _roots(rnet)[:2])
        assert publish(rnet, CALLER, EXPIRY_NODE, fresh) == version
        wait_for_version(rnet, NODE, version)

    report = make_report(CALLER, "DE")
    with rnet.stub(CALLER, EXPIRY_NODE) as stub:
        (signed,) = deliver(stub, [item(sign_report(report, rnet.signing_key(CALLER)))])
    installed = _current(rnet, EXPIRY_NODE).roster
    assert outcome_name(verify_receipt(rnet, signed, installed)) == "OUTCOME_ACCEPTED"
