"""Attacks on the roster: rollback, forks, forged thresholds, freeze.

One real node (hotline-nl) in a module-scoped network whose trust anchor is
2 of 3 root keys. Most attacks offer a roster that would hand hotline-dk an
extra signing key held by the attacker; each is refused, the node keeps the
roster it had (same signed bytes, no new row in its rosters table), and an
item signed with the smuggled key is refused and not stored: the refusal of
the roster is what keeps the forged items out.

Tests build "the next version" from the roster the node holds now, so they
do not depend on each other's order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import pytest

from crypto.dsse import pae
from crypto.keys import SigningKey
from federation.core.reasons import REPORT_TYPE
from federation.core.roster import MemberKey, Roster
from federation.trust.holder import InstalledRoster
from federation.wire.convert import encode_roster
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import roster_pb2
from tests.support.hostile import (
    RSS_GROWTH_BOUND_KIB,
    deliver_many,
    rosters_total,
    still_serving,
    watch,
)
from tests.support.net import (
    Network,
    count_inbound,
    deliver,
    fetch_roster,
    item,
    make_report,
    new_roster,
    now,
    outcome_name,
    publish,
    publish_roster,
    reason_name,
    rpc_code,
    running_network,
    sign_report,
    sign_roster,
    small_members,
)

NODE = "hotline-nl"
DK = "hotline-dk"
DE = "hotline-de"

KEY_NOT_VALID = ("OUTCOME_REJECTED", "REJECT_REASON_KEY_NOT_VALID")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("roster-attacks") / "net"
    with running_network(directory, small_members(NODE)) as network:
        yield network


def _held(net: Network) -> InstalledRoster:
    return fetch_roster(net, DK, NODE)


def _with_extra_key(base: Roster, version: int, member: str, extra: SigningKey) -> Roster:
    """``base`` at ``version`` with ``extra`` added to ``member``'s keys."""
    current = base.member(member)
    assert current is not None
    keys = [*current.keys.values(), MemberKey(extra.key_id, extra.public_key)]
    return new_roster(base, version, keys={member: keys})


def _publish_code(net: Network, signed: roster_pb2.SignedRoster) -> grpc.StatusCode:
    return rpc_code(lambda: publish(net, DK, NODE, signed))


def _smuggled_key_is_refused(net: Network, key: SigningKey) -> None:
    """An item hotline-dk's "new key" signed is refused and not stored."""
    report = make_report(DK, "NL")
    (receipt,) = deliver_many(net, DK, NODE, [item(sign_report(report, key))])
    assert (outcome_name(receipt), reason_name(receipt)) == KEY_NOT_VALID, receipt.detail
    assert count_inbound(net, NODE, report.report_id) == 0


def _roster_unchanged(net: Network, before: InstalledRoster, rows: int) -> None:
    assert _held(net).signed_roster == before.signed_roster
    assert rosters_total(net, NODE) == rows


# --- rollback and fork -----------------------------------------------------------


def test_rollback_to_an_older_roster_is_refused_and_a_revoked_key_stays_revoked(
    net: Network,
) -> None:
    """Revoke hotline-de's key in a new roster, then replay the older roster
    (in which that key was valid), expect FAILED_PRECONDITION, the newer roster
    kept, and an item signed with the revoked key refused and not stored."""
    old = _held(net)
    compromised = net.signing_key(DE)
    replacement = SigningKey.generate()
    revoking = new_roster(
        old.roster,
        old.roster.version + 1,
        keys={
            DE: [
                MemberKey(compromised.key_id, compromised.public_key, revoked=True),
                MemberKey(replacement.key_id, replacement.public_key),
            ]
        },
    )
    assert publish_roster(net, NODE, revoking) == revoking.version
    newer, rows = _held(net), rosters_total(net, NODE)

    code = _publish_code(net, roster_pb2.SignedRoster.FromString(old.signed_roster))

    assert code == grpc.StatusCode.FAILED_PRECONDITION
    _roster_unchanged(net, newer, rows)
    report = make_report(DE, "NL")
    (receipt,) = deliver_many(net, DE, NODE, [item(sign_report(report, compromised))])
    assert (outcome_name(receipt), reason_name(receipt)) == KEY_NOT_VALID, receipt.detail
    assert count_inbound(net, NODE, report.report_id) == 0
    (genuine,) = deliver_many(net, DE, NODE, [item(sign_report(report, replacement))])
    assert outcome_name(genuine) == "OUTCOME_ACCEPTED", genuine.detail


def test_fork_at_the_installed_version_is_refused(net: Network) -> None:
    """Offer a threshold-signed roster with the installed version but other
    content (an extra key for hotline-dk), expect FAILED_PRECONDITION, the
    installed roster kept, the extra key refused."""
    before, rows = _held(net), rosters_total(net, NODE)
    attacker = SigningKey.generate()
    fork = _with_extra_key(before.roster, before.roster.version, DK, attacker)
    roots = net.root_keys()[: net.manifest.root_threshold]

    code = _publish_code(net, sign_roster(encode_roster(fork), roots))

    assert code == grpc.StatusCode.FAILED_PRECONDITION
    _roster_unchanged(net, before, rows)
    _smuggled_key_is_refused(net, attacker)


# --- forged thresholds -------------------------------------------------------------

Forge = Callable[[Network, bytes], roster_pb2.SignedRoster]


def _same_root_twice(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    root = net.root_keys()[0]
    return sign_roster(data, [root, root])


def _same_root_under_another_spelling(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    signed = sign_roster(data, net.root_keys()[:1])
    signed.signatures.add(
        key_id=signed.signatures[0].key_id.upper(), signature=signed.signatures[0].signature
    )
    return signed


def _same_root_relabelled_as_another(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    first, second = net.root_keys()[:2]
    signed = sign_roster(data, [first])
    signed.signatures.add(key_id=second.key_id, signature=signed.signatures[0].signature)
    return signed


def _compromised_member_keys(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    return sign_roster(data, [net.signing_key(DK), net.signing_key("secretariat")])


def _member_key_under_a_root_key_id(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    root, other_root = net.root_keys()[:2]
    signed = sign_roster(data, [root, net.signing_key(DK)])
    signed.signatures[1].key_id = other_root.key_id
    return signed


def _roots_signed_another_payload_type(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    # Genuine root signatures over the same bytes, but as a Report (DSSE type
    # hfp.v1.Report): a signature made for one type never counts for another.
    roots = net.root_keys()[: net.manifest.root_threshold]
    message = pae(REPORT_TYPE, data)
    return roster_pb2.SignedRoster(
        roster=data,
        signatures=[
            roster_pb2.RootSignature(key_id=r.key_id, signature=r.sign(message)) for r in roots
        ],
    )


def _roots_signed_other_bytes(net: Network, data: bytes) -> roster_pb2.SignedRoster:
    # Threshold signatures lifted from the roster the node holds now.
    held = roster_pb2.SignedRoster.FromString(_held(net).signed_roster)
    return roster_pb2.SignedRoster(roster=data, signatures=held.signatures)


FORGERIES: dict[str, Forge] = {
    "same-root-signature-twice": _same_root_twice,
    "same-root-under-upper-case-key-id": _same_root_under_another_spelling,
    "same-root-relabelled-as-second-root": _same_root_relabelled_as_another,
    "two-compromised-member-keys": _compromised_member_keys,
    "member-key-under-a-root-key-id": _member_key_under_a_root_key_id,
    "roots-signed-it-as-a-report": _roots_signed_another_payload_type,
    "signatures-lifted-from-the-held-roster": _roots_signed_other_bytes,
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_roster_without_a_real_threshold_is_refused(net: Network, forge: Forge) -> None:
    """Offer the next roster version, adding an attacker key for hotline-dk,
    with signatures that do not amount to 2 distinct valid root signatures,
    expect INVALID_ARGUMENT, the held roster unchanged, and items signed with
    the attacker key refused and not stored; the node keeps serving."""
    before, rows = _held(net), rosters_total(net, NODE)
    attacker = SigningKey.generate()
    smuggling = _with_extra_key(before.roster, before.roster.version + 1, DK, attacker)

    code = _publish_code(net, forge(net, encode_roster(smuggling)))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    _roster_unchanged(net, before, rows)
    _smuggled_key_is_refused(net, attacker)
    still_serving(net, DK, NODE)


def _junk_signatures(count: int, key_ids: list[str]) -> list[roster_pb2.RootSignature]:
    """Well-shaped but false signatures (scalar below the group order, so a
    verifier must hash the whole roster before it can say no)."""
    junk = []
    for index in range(count):
        signature = bytearray(os.urandom(64))
        signature[63] &= 0x0F
        junk.append(
            roster_pb2.RootSignature(
                key_id=key_ids[index % len(key_ids)], signature=bytes(signature)
            )
        )
    return junk


def test_roster_flooded_with_signatures_is_refused(net: Network) -> None:
    """Offer a genuinely threshold-signed next roster carrying 1000 extra false
    signatures under the pinned root key ids, expect INVALID_ARGUMENT without
    installing it (every false signature under a pinned id costs a check over
    the whole roster, so an unbounded list is a CPU-exhaustion lever), memory
    bounded, the node serving; the same roster with only its genuine signatures
    is then installed."""
    before, rows = _held(net), rosters_total(net, NODE)
    roster = new_roster(before.roster, before.roster.version + 1)
    data = encode_roster(roster)
    genuine = sign_roster(data, net.root_keys()[: net.manifest.root_threshold])
    flooded = roster_pb2.SignedRoster(roster=data, signatures=genuine.signatures)
    flooded.signatures.extend(_junk_signatures(1000, [r.key_id for r in net.root_keys()]))
    node = watch(net, NODE)

    code = _publish_code(net, flooded)

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    _roster_unchanged(net, before, rows)
    assert node.rss_growth() < RSS_GROWTH_BOUND_KIB
    still_serving(net, DK, NODE)
    assert publish(net, DK, NODE, genuine) == roster.version


def test_oversized_roster_with_false_signatures_is_refused(net: Network) -> None:
    """Offer an unsigned 4 MiB "roster" with false signatures under the pinned
    root ids, expect INVALID_ARGUMENT, the held roster unchanged, memory
    bounded, the node serving."""
    before, rows = _held(net), rosters_total(net, NODE)
    offered = roster_pb2.SignedRoster(
        roster=os.urandom(4 * 1024 * 1024),
        signatures=_junk_signatures(16, [r.key_id for r in net.root_keys()]),
    )
    node = watch(net, NODE)

    code = _publish_code(net, offered)

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    _roster_unchanged(net, before, rows)
    assert node.rss_growth() < RSS_GROWTH_BOUND_KIB
    still_serving(net, DK, NODE)


# --- freeze --------------------------------------------------------------------------


def _deliver_code(net: Network, pending: fed_pb.ForwardedItem) -> grpc.StatusCode:
    with net.stub(DK, NODE) as stub:
        return rpc_code(lambda: deliver(stub, [pending]))


def test_expired_roster_freezes_intake_and_nothing_is_lost(net: Network) -> None:
    """Let the node's roster expire, expect every Deliver refused with
    FAILED_PRECONDITION and nothing stored, GetRoster still served, and an
    expired (even newer) roster refused with INVALID_ARGUMENT; after a fresh
    roster arrives, the sender's retry of the same item is ACCEPTED, once."""
    base = _held(net).roster
    lifetime = timedelta(seconds=1.5)
    short = new_roster(base, base.version + 1, lifetime=lifetime)
    ends = time.monotonic() + lifetime.total_seconds()
    assert publish_roster(net, NODE, short) == short.version
    report = make_report(DK, "NL")
    pending = item(sign_report(report, net.signing_key(DK)))
    try:
        time.sleep(max(0.0, ends - time.monotonic()) + 0.3)

        assert _deliver_code(net, pending) == grpc.StatusCode.FAILED_PRECONDITION
        assert count_inbound(net, NODE, report.report_id) == 0
        assert _held(net).roster.version == short.version  # reads are served
        stale = new_roster(
            short,
            short.version + 1,
            issued_at=now() - timedelta(days=2),
            lifetime=timedelta(days=1),
        )
        roots = net.root_keys()[: net.manifest.root_threshold]
        assert _publish_code(net, sign_roster(encode_roster(stale), roots)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        assert _deliver_code(net, pending) == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        fresh = new_roster(short, short.version + 1)
        assert publish_roster(net, NODE, fresh) == fresh.version

    (receipt,) = deliver_many(net, DK, NODE, [pending])
    assert outcome_name(receipt) == "OUTCOME_ACCEPTED", receipt.detail
    assert count_inbound(net, NODE, report.report_id) == 1
