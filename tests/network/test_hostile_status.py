"""Hostile members against the status flow and re-routing (spec section 10).

Real node processes on loopback. The ``conformance`` member (jurisdiction
XA) runs no node: a report hosted in XA is forwarded to it and stays in the
outbox, so the test can play that report's rightful owner with conformance's
own key and TLS identity, and ``hotline-de`` plays a hostile member.

Findings of issue 16 covered here: 1 (a moved report lost), 2 (status
forgery at the reporter), 6 (held updates applied out of the transition
table) and 7 (replays and receipt details telling third parties what a node
holds).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import closing

import grpc
import pytest

from crypto.dsse import verify_envelope_signature
from federation.core.ids import new_uuid7
from federation.core.reasons import STATUS_UPDATE_TYPE
from federation.wire.convert import envelope_from_proto
from hfp.v1 import case_pb2, envelope_pb2, receipt_pb2, status_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.hotline import get_case, record, submit_url
from tests.support.net import (
    Network,
    deliver,
    item,
    make_report,
    reason_name,
    running_network,
    sign,
    sign_report,
    verify_receipt,
)

DK, NL, DE, OWNER = "hotline-dk", "hotline-nl", "hotline-de", "conformance"
S = status_pb2
#: Bound of every wait for the network to settle (seconds).
SETTLE = 30.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("hostile-status") / "net") as network:
        yield network


def submit(net: Network, at: str, country: str) -> receipt_pb2.Receipt:
    return submit_url(net, at, f"https://hostile.example.com/{os.urandom(6).hex()}", country)


def wait_case(
    net: Network, at: str, report_id: str, ready: object, timeout: float = SETTLE
) -> case_pb2.Case:
    """Poll (bounded) GetCase(report_id) at ``at`` until ``ready(case)`` holds."""
    deadline = time.monotonic() + timeout
    last: case_pb2.Case | None = None
    while time.monotonic() < deadline:
        try:
            last = get_case(net, at, report_id=report_id)
            if ready(last):  # type: ignore[operator]
                return last
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise
        time.sleep(0.2)
    raise AssertionError(f"{at}: case of {report_id} never got ready; last seen: {last}")


def update_item(
    net: Network,
    signer: str,
    case_id: str,
    report_ids: Sequence[str],
    status: int,
    sequence: int,
    **extra: str,
) -> fed_pb.ForwardedItem:
    """A status update signed with ``signer``'s own key."""
    update = status_pb2.StatusUpdate(
        update_id=new_uuid7(),
        case_id=case_id,
        report_ids=list(report_ids),
        member_id=signer,
        status=status,  # type: ignore[arg-type]
        sequence=sequence,
        **extra,  # type: ignore[arg-type]
    )
    update.observed_at.GetCurrentTime()
    envelope = sign(update.SerializeToString(), net.signing_key(signer), signer, STATUS_UPDATE_TYPE)
    return item(envelope)


def send(
    net: Network, caller: str, target: str, items: Sequence[fed_pb.ForwardedItem]
) -> list[receipt_pb2.Receipt]:
    with net.stub(caller, target) as stub:
        return [verify_receipt(net, r) for r in deliver(stub, items)]


def stored_rows(net: Network, member: str, case_id: str) -> dict[str, int]:
    """Rows a node holds about a case id, table by table."""
    queries = {
        "tracked_cases": "SELECT count(*) FROM tracked_cases WHERE case_id = ?",
        "status_updates": "SELECT count(*) FROM status_updates WHERE case_id = ?",
        "report_case_links": "SELECT count(*) FROM report_case_links WHERE case_id = ?",
    }
    with closing(sqlite3.connect(net.db_path(member))) as db:
        return {table: db.execute(sql, (case_id,)).fetchone()[0] for table, sql in queries.items()}


def assert_signed_by(net: Network, case: case_pb2.Case, owners: Sequence[str]) -> None:
    """Every history entry verifies and is signed by the expected owner, in order."""
    roster = net.bootstrap_roster().roster
    assert [u.member_id for u in case.history] == list(owners)
    for update, signed in zip(case.history, case.history_envelopes, strict=True):
        envelope = envelope_from_proto(signed)
        member = roster.member(envelope.signer_member_id)
        assert member is not None and envelope.signer_member_id == update.member_id
        assert verify_envelope_signature(envelope, member.keys[envelope.key_id].public_key)


def responsible_nodes(net: Network, report_id: str) -> list[str]:
    """Nodes holding the report in an open case they are responsible for."""
    found = []
    for member in (DK, NL, DE, "secretariat"):
        try:
            case = get_case(net, member, report_id=report_id)
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.NOT_FOUND
            continue
        if case.responsible_member_id == member and case.status != S.CASE_STATUS_MOVED:
            found.append(member)
    return found


# --- finding 2: forged statuses at the reporter -------------------------------------


def test_forged_updates_about_our_report_are_refused_and_leave_nothing(net: Network) -> None:
    ours = submit(net, NL, "XA")  # expected owner: conformance
    assert ours.forwarded_to == OWNER
    invented = new_uuid7()
    forged = [
        update_item(net, DE, invented, [ours.item_id], S.CASE_STATUS_RECEIVED, 1),
        update_item(net, DE, invented, [ours.item_id], S.CASE_STATUS_CONTENT_GONE, 2),
    ]
    answers = send(net, DE, NL, forged)
    assert [reason_name(a) for a in answers] == ["REJECT_REASON_NOT_RESPONSIBLE"] * 2
    assert stored_rows(net, NL, invented) == dict.fromkeys(stored_rows(net, NL, invented), 0)
    # The rightful owner is not locked out by the forger's probe of that case id.
    genuine = update_item(net, OWNER, invented, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
    [answer] = send(net, OWNER, NL, [genuine])
    assert answer.outcome == receipt_pb2.OUTCOME_ACCEPTED, answer.detail
    case = get_case(net, NL, report_id=ours.item_id)
    assert case.responsible_member_id == OWNER and case.case_id == invented
    assert_signed_by(net, case, [OWNER])


def test_a_probe_of_an_unknown_case_leaves_no_row(net: Network) -> None:
    probe = new_uuid7()
    [answer] = send(net, DE, NL, [update_item(net, DE, probe, [], S.CASE_STATUS_RECEIVED, 1)])
    assert reason_name(answer) == "REJECT_REASON_NOT_RESPONSIBLE"
    assert set(stored_rows(net, NL, probe).values()) == {0}


def test_a_real_case_id_pre_seeded_by_a_forger_does_not_lock_out_the_owner(net: Network) -> None:
    ours = submit(net, NL, "XA")
    case_id = new_uuid7()  # the owner's case id, as a forger might learn it from a receipt
    [seeded] = send(net, DE, NL, [update_item(net, DE, case_id, [], S.CASE_STATUS_RECEIVED, 1)])
    assert reason_name(seeded) == "REJECT_REASON_NOT_RESPONSIBLE"
    steps = [S.CASE_STATUS_RECEIVED, S.CASE_STATUS_ASSESSED_ILLEGAL, S.CASE_STATUS_NOTICE_SENT]
    genuine = [
        update_item(net, OWNER, case_id, [ours.item_id], status, sequence)
        for sequence, status in enumerate(steps, start=1)
    ]
    answers = send(net, OWNER, NL, genuine)
    assert [a.outcome for a in answers] == [receipt_pb2.OUTCOME_ACCEPTED] * 3
    case = get_case(net, NL, report_id=ours.item_id)
    assert [u.status for u in case.history] == steps
    assert_signed_by(net, case, [OWNER] * 3)


def test_a_forged_move_chain_is_refused(net: Network) -> None:
    ours = submit(net, NL, "XA")
    case_id = new_uuid7()
    [opened] = send(
        net,
        OWNER,
        NL,
        [update_item(net, OWNER, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)],
    )
    assert opened.outcome == receipt_pb2.OUTCOME_ACCEPTED
    # DE signs a MOVED "from the owner" itself, then claims the report.
    fake_move = update_item(
        net, DE, case_id, [ours.item_id], S.CASE_STATUS_MOVED, 2, new_hosting_country="DE"
    )
    claim = update_item(net, DE, new_uuid7(), [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
    claim.moved_by.append(fake_move.envelope)
    [answer] = send(net, DE, NL, [claim])
    assert answer.outcome == receipt_pb2.OUTCOME_REJECTED
    case = get_case(net, NL, report_id=ours.item_id)
    assert case.responsible_member_id == OWNER
    assert_signed_by(net, case, [OWNER])


def test_a_genuine_move_chain_hands_the_report_over(net: Network) -> None:
    ours = submit(net, NL, "XA")
    case_id = new_uuid7()
    moved = update_item(
        net, OWNER, case_id, [ours.item_id], S.CASE_STATUS_MOVED, 2, new_hosting_country="DE"
    )
    send(
        net,
        OWNER,
        NL,
        [update_item(net, OWNER, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 1), moved],
    )
    new_case = new_uuid7()
    claim = update_item(net, DE, new_case, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
    claim.moved_by.append(moved.envelope)
    [answer] = send(net, DE, NL, [claim])
    assert answer.outcome == receipt_pb2.OUTCOME_ACCEPTED, answer.detail
    case = get_case(net, NL, report_id=ours.item_id)
    assert case.case_id == new_case and case.responsible_member_id == DE


# --- finding 6: held updates checked when their turn comes ------------------------------


def test_an_update_held_for_a_gap_is_refused_when_illegal_in_its_turn(net: Network) -> None:
    ours = submit(net, NL, "XA")
    case_id = new_uuid7()
    one = update_item(net, OWNER, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
    three = update_item(net, OWNER, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 3)
    two = update_item(net, OWNER, case_id, [ours.item_id], S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2)
    for batch in ([one], [three], [two]):
        send(net, OWNER, NL, batch)
    case = get_case(net, NL, report_id=ours.item_id)
    assert [u.status for u in case.history] == [
        S.CASE_STATUS_RECEIVED,
        S.CASE_STATUS_ASSESSED_NOT_ILLEGAL,
    ]
    assert case.status == S.CASE_STATUS_ASSESSED_NOT_ILLEGAL


# --- finding 7: replays and receipt details -----------------------------------------------


def test_a_replay_by_a_third_party_gets_sender_mismatch_not_the_stored_receipt(
    net: Network,
) -> None:
    report = make_report(origin=OWNER, country="DK")
    envelope = sign_report(report, net.signing_key(OWNER))
    [first] = send(net, OWNER, DK, [item(envelope)])
    assert first.outcome == receipt_pb2.OUTCOME_ACCEPTED
    [replayed] = send(net, DE, DK, [item(envelope)])
    assert reason_name(replayed) == "REJECT_REASON_SENDER_MISMATCH"
    assert replayed.case_id == ""
    [again] = send(net, OWNER, DK, [item(envelope)])
    assert again.case_id == first.case_id and again.outcome == first.outcome


def test_not_responsible_details_do_not_tell_whether_a_case_exists(net: Network) -> None:
    theirs = submit(net, DK, "DK")  # a case DK owns; DE has no report in it
    details = {
        reason_name(answer) + ": " + answer.detail
        for case_id in (theirs.case_id, new_uuid7())
        for answer in send(
            net, DE, DK, [update_item(net, DE, case_id, [], S.CASE_STATUS_CONTENT_GONE, 2)]
        )
    }
    assert len(details) == 1, details


# --- finding 1: a moved report is never lost ----------------------------------------------


def test_a_report_moved_back_and_forth_always_has_exactly_one_owner(net: Network) -> None:
    ours = submit(net, NL, "DK")
    assert ours.forwarded_to == DK
    at_dk = wait_case(net, DK, ours.item_id, lambda c: c.responsible_member_id == DK)
    forged = update_item(net, DE, at_dk.case_id, [ours.item_id], S.CASE_STATUS_CONTENT_GONE, 2)
    assert send(net, DE, NL, [forged])[0].outcome == receipt_pb2.OUTCOME_REJECTED
    record(net, DK, at_dk.case_id, S.CASE_STATUS_MOVED, new_hosting_country="NL")
    at_nl = wait_case(
        net, NL, ours.item_id, lambda c: c.responsible_member_id == NL and c.status != 9
    )
    assert responsible_nodes(net, ours.item_id) == [NL]
    record(net, NL, at_nl.case_id, S.CASE_STATUS_MOVED, new_hosting_country="DK")
    back = wait_case(
        net,
        DK,
        ours.item_id,
        lambda c: c.responsible_member_id == DK and c.case_id not in (at_dk.case_id,),
    )
    assert back.status == S.CASE_STATUS_RECEIVED
    assert responsible_nodes(net, ours.item_id) == [DK]
    # The reporter's view ends at the real owner's case and holds only owners' updates.
    seen = wait_case(net, NL, ours.item_id, lambda c: c.case_id == back.case_id)
    assert seen.responsible_member_id == DK
    assert all(u.member_id in (DK, NL) for u in seen.history)
    assert_signed_by(net, seen, [u.member_id for u in seen.history])


# --- status updates of a large case stay bounded (spec section 10.4) ---------------------


def test_status_updates_of_a_large_case_reach_every_reporter_and_move(net: Network) -> None:
    """1,050 reports of one URL from hotline-nl and one from hotline-de: every
    update still reaches both (no signed update names more than 1,000
    reports), and a MOVED hands every report over with a link naming it."""
    url = f"https://large.example.com/{os.urandom(6).hex()}"
    first = submit_url(net, DE, url, "DK")
    with futures.ThreadPoolExecutor(4) as pool:
        ours = list(pool.map(lambda _: submit_url(net, NL, url, "DK"), range(1050)))
    last = ours[-1].item_id
    at_dk = wait_case(net, DK, last, lambda c: c.report_count == 1051)
    record(net, DK, at_dk.case_id, S.CASE_STATUS_ASSESSED_ILLEGAL)
    for member, report_id in ((NL, last), (NL, ours[0].item_id), (DE, first.item_id)):
        seen = wait_case(net, member, report_id, lambda c: len(c.history) == 2)
        assert seen.status == S.CASE_STATUS_ASSESSED_ILLEGAL
    with closing(sqlite3.connect(net.db_path(DK))) as db:
        sizes = [
            len(status_pb2.StatusUpdate.FromString(env.payload).report_ids)
            for (raw,) in db.execute(
                "SELECT envelope FROM outbox WHERE payload_type = ?", (STATUS_UPDATE_TYPE,)
            )
            for env in [envelope_pb2.SignedEnvelope.FromString(bytes(raw))]
        ]
    assert sizes and max(sizes) <= 1000
    record(net, DK, at_dk.case_id, S.CASE_STATUS_MOVED, new_hosting_country="DE")
    at_de = wait_case(net, DE, last, lambda c: c.responsible_member_id == DE and c.status != 9)
    wait_case(net, DE, last, lambda c: c.report_count == 1051, timeout=60.0)
    assert responsible_nodes(net, last) == [DE]
    # Reports that joined the new owner's case after its first update are
    # named (in NL's copies) by its next one.
    record(net, DE, at_de.case_id, S.CASE_STATUS_ASSESSED_ILLEGAL)
    for report_id in (ours[0].item_id, last):
        seen = wait_case(
            net,
            NL,
            report_id,
            lambda c: c.case_id == at_de.case_id and c.status == S.CASE_STATUS_ASSESSED_ILLEGAL,
            timeout=60.0,
        )
        assert seen.responsible_member_id == DE


def test_the_author_follows_a_chain_of_moves_back_to_an_earlier_owner(net: Network) -> None:
    """DK's own report moves DK -> DE -> NL -> DE: DE's second case, proven by
    the three-link chain, is what DK sees in the end."""
    ours = submit(net, DK, "DK")
    case = wait_case(net, DK, ours.item_id, lambda c: c.responsible_member_id == DK)
    owner = DK
    for target, country in ((DE, "DE"), (NL, "NL"), (DE, "DE")):
        record(net, owner, case.case_id, S.CASE_STATUS_MOVED, new_hosting_country=country)
        previous = case.case_id
        case = wait_case(
            net,
            target,
            ours.item_id,
            lambda c, previous=previous, target=target: (
                c.responsible_member_id == target
                and c.case_id != previous
                and c.status == S.CASE_STATUS_RECEIVED
            ),
        )
        owner = target
    assert responsible_nodes(net, ours.item_id) == [DE]
    seen = wait_case(net, DK, ours.item_id, lambda c: c.case_id == case.case_id)
    assert seen.responsible_member_id == DE


def test_a_moved_report_joining_a_case_its_author_is_in_is_announced(net: Network) -> None:
    """DK reports a URL hosted in DE; DE moves it to NL; DK reports the URL
    to DE again (a new case there); NL moves its case back to DE, where the
    first report joins DK's new case: DK must see it there, with DE."""
    url = f"https://rejoin.example.com/{os.urandom(6).hex()}"
    first = submit_url(net, DK, url, "DE")
    at_de = wait_case(net, DE, first.item_id, lambda c: c.responsible_member_id == DE)
    record(net, DE, at_de.case_id, S.CASE_STATUS_MOVED, new_hosting_country="NL")
    at_nl = wait_case(net, NL, first.item_id, lambda c: c.responsible_member_id == NL)
    again = submit_url(net, DK, url, "DE")
    second = wait_case(net, DE, again.item_id, lambda c: c.status == S.CASE_STATUS_RECEIVED)
    wait_case(net, DK, again.item_id, lambda c: c.case_id == second.case_id)
    record(net, NL, at_nl.case_id, S.CASE_STATUS_MOVED, new_hosting_country="DE")
    wait_case(net, DE, first.item_id, lambda c: c.case_id == second.case_id)
    assert responsible_nodes(net, first.item_id) == [DE]
    seen = wait_case(net, DK, first.item_id, lambda c: c.case_id == second.case_id)
    assert seen.responsible_member_id == DE


def test_reports_that_came_by_different_chains_are_all_handed_over(net: Network) -> None:
    """NL reports one URL to DE and to DK; DE moves its case to DK (the report
    joins DK's case), then DK moves that case to FR (the secretariat): both of
    NL's reports, one moved twice and one once, end at the secretariat."""
    url = f"https://chains.example.com/{os.urandom(6).hex()}"
    to_de, to_dk = submit_url(net, NL, url, "DE"), submit_url(net, NL, url, "DK")
    at_de = wait_case(net, DE, to_de.item_id, lambda c: c.responsible_member_id == DE)
    at_dk = wait_case(net, DK, to_dk.item_id, lambda c: c.responsible_member_id == DK)
    record(net, DE, at_de.case_id, S.CASE_STATUS_MOVED, new_hosting_country="DK")
    wait_case(net, DK, to_de.item_id, lambda c: c.case_id == at_dk.case_id)
    record(net, DK, at_dk.case_id, S.CASE_STATUS_MOVED, new_hosting_country="FR")
    for report in (to_de, to_dk):
        at_sec = wait_case(
            net, "secretariat", report.item_id, lambda c: c.responsible_member_id == "secretariat"
        )
        seen = wait_case(net, NL, report.item_id, lambda c, s=at_sec: c.case_id == s.case_id)
        assert seen.responsible_member_id == "secretariat"


def test_a_refused_moved_delivery_is_not_answered_with_the_earlier_receipt(net: Network) -> None:
    """Section 10.2: a moved delivery is keyed by (report, move); when its chain is
    refused, the receipt stored for the report's plain delivery is not its answer."""
    report = make_report(origin=OWNER, country="XA")
    envelope = sign_report(report, net.signing_key(OWNER))
    [first] = send(net, OWNER, DK, [item(envelope)])
    assert first.outcome == receipt_pb2.OUTCOME_FORWARDED
    # A MOVED that no member on the path signed (DE, not OWNER).
    move = update_item(
        net, DE, new_uuid7(), [report.report_id], S.CASE_STATUS_MOVED, 2, new_hosting_country="DK"
    )
    moved = item(envelope, via=[OWNER])
    moved.moved_by.append(move.envelope)
    [answer] = send(net, OWNER, DK, [moved])
    assert answer.outcome == receipt_pb2.OUTCOME_REJECTED, answer
    assert reason_name(answer) == "REJECT_REASON_SENDER_MISMATCH"
