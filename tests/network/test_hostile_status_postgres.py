"""Hostile members against a reporter that runs as two processes on PostgreSQL.

The checks of test_hostile_status.py (spec section 10), where a member
scales out: hotline-nl runs as TWO node processes with one configuration
on one PostgreSQL database, each on its own port, and the test delivers to
both, alternately or at the same moment. Only hotline-nl runs: the test
plays hotline-dk (the owner of NL's reports hosted in DK, which therefore
stay in NL's outbox) and hotline-de (a hostile member) with their own keys
and TLS identities, and reads NL's database directly.

Shown here: forged updates are refused by either process and leave no row;
the owner's updates, spread over both processes out of order, repeated or
all at once, give one complete in-order history; a held update illegal in
its turn is refused; a moved report delivered to both processes at once is
filed once with one receipt; a replay by a third party gets SENDER_MISMATCH
from either process; rival steps recorded at both processes at once: one
wins, the other is refused as no longer allowed.

Every loop is bounded in rounds, every call and wait in time; the module
takes about fifteen seconds.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from sqlalchemy import text

from federation.core.ids import new_uuid7
from federation.core.reasons import RejectReason
from federation.devnet import processes
from federation.store.database import Database
from hfp.v1 import envelope_pb2, receipt_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from hfp.v1 import hotline_service_pb2 as pb
from tests.network.test_hostile_status import (
    DE,
    DK,
    NL,
    S,
    assert_signed_by,
    send,
    submit,
    update_item,
    wait_case,
)
from tests.support.hostile import UNMETERED
from tests.support.hotline import get_case, hotline
from tests.support.net import (
    DEADLINE,
    Network,
    create_network,
    deliver,
    reason_name,
    small_members,
    stop,
    verify_receipt,
)
from tests.support.postgres import PostgresCluster
from tests.support.shared_postgres import (
    at_endpoint,
    second_process,
    share_database,
    wait_serving,
)

pytestmark = pytest.mark.timeout(180)

#: The steps of a case the owner takes, in sequence order.
STEPS = [
    S.CASE_STATUS_RECEIVED,
    S.CASE_STATUS_ASSESSED_ILLEGAL,
    S.CASE_STATUS_LEA_NOTIFIED,
    S.CASE_STATUS_NOTICE_SENT,
    S.CASE_STATUS_CONTENT_REMOVED,
]
#: Cases whose updates are delivered to both processes at the same moment, per round.
CONCURRENT_CASES = 8
CONCURRENT_ROUNDS = 3
#: Calls a node admits in flight from one member (admission's default).
IN_FLIGHT = 8
#: Reports moved to NL, each delivered to both processes at once.
MOVED_ROUNDS = 6
#: Copies of the moved delivery each process gets at that moment.
MOVED_COPIES = 3
#: Cases in which each process records a rival next step at the same moment.
RIVAL_ROUNDS = 6


@dataclass(frozen=True)
class Pair:
    """hotline-nl's two processes, as clients address them, and their database."""

    a: Network
    b: Network
    db: Database

    @property
    def both(self) -> tuple[Network, Network]:
        """Process A, then process B."""
        return self.a, self.b

    def nth(self, index: int) -> Network:
        """Process A for even ``index``, B for odd: to alternate between them."""
        return self.both[index % 2]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresCluster) -> Iterator[Pair]:
    network = create_network(
        tmp_path_factory.mktemp("hostile-status-pg") / "net", small_members(NL)
    )
    url = postgres.create_database("nl")
    shared = share_database(network, NL, url)
    db = Database(url)
    try:
        # Both processes inherit the environment: no per-member rate limit,
        # as the test sends bursts of calls from one member.
        with pytest.MonkeyPatch.context() as env:
            for name, value in UNMETERED.items():
                env.setenv(name, value)
            processes.up(network.directory, only=[NL])  # process A (migrates the database)
            with second_process(shared) as process_b:
                wait_serving(network, shared, process_b)
                env.undo()
                yield Pair(network, at_endpoint(network, NL, shared.second_endpoint), db)
    finally:
        db.dispose()
        stop(network.directory)
        postgres.drop_database(url)


# --- reading NL's database --------------------------------------------------------


def count(pair: Pair, sql: str, **params: str) -> int:
    """One COUNT(*) query on NL's database."""
    with pair.db.read() as session:
        return int(session.execute(text(sql), params).scalar_one())


def rows_about(pair: Pair, case_id: str) -> dict[str, int]:
    """Rows NL holds about a case id, table by table."""
    return {
        table: count(pair, f"SELECT count(*) FROM {table} WHERE case_id = :c", c=case_id)
        for table in ("tracked_cases", "status_updates", "report_case_links")
    }


def waiting_updates(pair: Pair, case_id: str) -> int:
    """Updates of a case stored but neither applied nor refused (held for a gap)."""
    return count(
        pair,
        "SELECT count(*) FROM status_updates"
        " WHERE case_id = :c AND NOT applied AND refused_reason IS NULL",
        c=case_id,
    )


def report_envelope(pair: Pair, report_id: str) -> envelope_pb2.SignedEnvelope:
    """The signed envelope of one of NL's own reports, as NL stored it."""
    with pair.db.read() as session:
        stored = session.execute(
            text("SELECT envelope FROM inbound_items WHERE item_id = :r"), {"r": report_id}
        ).scalar_one()
    return envelope_pb2.SignedEnvelope.FromString(bytes(stored))


# --- delivering -------------------------------------------------------------------


def at_once(
    calls: Sequence[tuple[Network, str, Sequence[fed_pb.ForwardedItem]]],
) -> list[list[envelope_pb2.SignedEnvelope]]:
    """Deliver each (process, caller, items) on its own connected channel, all
    released at one moment; each call's raw receipts, in call order."""
    barrier = threading.Barrier(len(calls), timeout=DEADLINE)

    def one(
        call: tuple[Network, str, Sequence[fed_pb.ForwardedItem]],
    ) -> list[envelope_pb2.SignedEnvelope]:
        network, caller, items = call
        with network.channel(caller, NL) as channel:
            grpc.channel_ready_future(channel).result(timeout=DEADLINE)
            stub = fed_grpc.FederationServiceStub(channel)
            barrier.wait()
            return deliver(stub, items)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def history(network: Network, report_id: str) -> list[int]:
    """The statuses of the case NL shows for one of its reports."""
    return list(u.status for u in get_case(network, NL, report_id=report_id).history)


# --- forged updates ---------------------------------------------------------------


def test_forged_updates_are_refused_by_either_process_and_leave_no_row(pair: Pair) -> None:
    for index, target in enumerate(pair.both):
        ours = submit(target, NL, "DK")  # expected owner: DK
        assert ours.forwarded_to == DK
        invented = new_uuid7()
        forged = [
            update_item(target, DE, invented, [ours.item_id], S.CASE_STATUS_RECEIVED, 1),
            update_item(target, DE, invented, [ours.item_id], S.CASE_STATUS_CONTENT_GONE, 2),
        ]
        for process in pair.both:
            answers = send(process, DE, NL, forged)
            assert [reason_name(a) for a in answers] == ["REJECT_REASON_NOT_RESPONSIBLE"] * 2
        assert set(rows_about(pair, invented).values()) == {0}
        # The owner, at the other process, is not locked out by the probe.
        owner_at = pair.nth(index + 1)
        genuine = update_item(owner_at, DK, invented, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
        [answer] = send(owner_at, DK, NL, [genuine])
        assert answer.outcome == receipt_pb2.OUTCOME_ACCEPTED, answer.detail
        for process in pair.both:
            case = get_case(process, NL, report_id=ours.item_id)
            assert case.case_id == invented and case.responsible_member_id == DK
            assert_signed_by(process, case, [DK])


def test_a_case_id_pre_seeded_at_both_processes_locks_out_neither(pair: Pair) -> None:
    ours = submit(pair.a, NL, "DK")
    case_id = new_uuid7()  # the owner's case id, as a forger might learn it from a receipt
    for process in pair.both:
        seed = update_item(process, DE, case_id, [], S.CASE_STATUS_RECEIVED, 1)
        [seeded] = send(process, DE, NL, [seed])
        assert reason_name(seeded) == "REJECT_REASON_NOT_RESPONSIBLE"
    assert set(rows_about(pair, case_id).values()) == {0}
    steps = STEPS[:3]
    for sequence, status in enumerate(steps, start=1):
        process = pair.nth(sequence)
        genuine = update_item(process, DK, case_id, [ours.item_id], status, sequence)
        [answer] = send(process, DK, NL, [genuine])
        assert answer.outcome == receipt_pb2.OUTCOME_ACCEPTED, answer.detail
    for process in pair.both:
        assert history(process, ours.item_id) == steps
        assert_signed_by(process, get_case(process, NL, report_id=ours.item_id), [DK] * 3)


# --- the owner's updates over both processes --------------------------------------


def test_updates_alternating_out_of_order_and_repeated_give_one_history(pair: Pair) -> None:
    ours = submit(pair.b, NL, "DK")
    case_id = new_uuid7()
    updates = [
        update_item(pair.a, DK, case_id, [ours.item_id], status, sequence)
        for sequence, status in enumerate(STEPS, start=1)
    ]
    order = [3, 1, 4, 0, 3, 2, 0, 4, 1]  # every update at least once, most twice
    for turn, index in enumerate(order):
        [answer] = send(pair.nth(turn), DK, NL, [updates[index]])
        assert answer.outcome == receipt_pb2.OUTCOME_ACCEPTED, answer.detail
    for process in pair.both:
        assert history(process, ours.item_id) == STEPS
        assert_signed_by(process, get_case(process, NL, report_id=ours.item_id), [DK] * 5)
    assert waiting_updates(pair, case_id) == 0


def open_cases(pair: Pair, cases: int) -> list[tuple[str, str, list[fed_pb.ForwardedItem]]]:
    """``cases`` reports of NL hosted in DK, each with DK's case id and its
    updates (STEPS, in sequence order, not yet delivered)."""
    made = []
    for _ in range(cases):
        ours = submit(pair.a, NL, "DK")
        case_id = new_uuid7()
        updates = [
            update_item(pair.a, DK, case_id, [ours.item_id], status, sequence)
            for sequence, status in enumerate(STEPS, start=1)
        ]
        made.append((ours.item_id, case_id, updates))
    return made


def assert_complete(pair: Pair, cases: Sequence[tuple[str, str, object]], steps: int) -> None:
    """Each case shows its first ``steps`` steps at both processes, nothing held."""
    for report_id, case_id, _ in cases:
        assert waiting_updates(pair, case_id) == 0, f"an update of {case_id} is stranded"
        for process in pair.both:
            assert history(process, report_id) == STEPS[:steps]


def test_the_next_and_a_later_update_at_the_two_processes_at_once(pair: Pair) -> None:
    """After RECEIVED, one process gets each case's update 2 and the other
    its update 3, at the same moment: their transactions overlap on every
    case. The one that holds 3 must see the 2 the other applied (or the
    other must see the held 3), or 3 waits for ever for a filled gap."""
    for round_ in range(CONCURRENT_ROUNDS):
        cases = open_cases(pair, CONCURRENT_CASES)
        send(pair.a, DK, NL, [updates[0] for _, _, updates in cases])
        first, second = pair.nth(round_), pair.nth(round_ + 1)
        at_once(
            [
                (first, DK, [updates[1] for _, _, updates in cases]),
                (second, DK, [updates[2] for _, _, updates in cases]),
            ]
        )
        assert_complete(pair, cases, 3)


def test_updates_shuffled_over_both_processes_at_once_give_complete_histories(
    pair: Pair,
) -> None:
    """Every update of several cases, shuffled, dealt over as many calls as
    the two processes admit from one member and released at one moment:
    every case ends at its last step, nothing held."""
    shuffle = random.Random(16)
    for _ in range(CONCURRENT_ROUNDS):
        cases = open_cases(pair, CONCURRENT_CASES)
        updates = [update for _, _, of_case in cases for update in of_case]
        shuffle.shuffle(updates)
        calls = 2 * IN_FLIGHT
        answers = at_once([(pair.nth(i), DK, updates[i::calls]) for i in range(calls)])
        for signed in (a for batch in answers for a in batch):
            receipt = verify_receipt(pair.a, signed)
            assert receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED, receipt.detail
        assert_complete(pair, cases, len(STEPS))


def test_a_held_update_illegal_in_its_turn_is_refused_across_processes(pair: Pair) -> None:
    ours = submit(pair.a, NL, "DK")
    case_id = new_uuid7()
    one = update_item(pair.a, DK, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
    three = update_item(pair.a, DK, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 3)
    two = update_item(pair.a, DK, case_id, [ours.item_id], S.CASE_STATUS_ASSESSED_NOT_ILLEGAL, 2)
    for process, update in ((pair.a, one), (pair.b, three), (pair.a, two)):
        send(process, DK, NL, [update])
    expected = [S.CASE_STATUS_RECEIVED, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL]
    for process in pair.both:
        case = get_case(process, NL, report_id=ours.item_id)
        assert [u.status for u in case.history] == expected
        assert case.status == S.CASE_STATUS_ASSESSED_NOT_ILLEGAL
    refused = count(
        pair,
        "SELECT count(*) FROM status_updates WHERE case_id = :c AND sequence = 3"
        " AND NOT applied AND refused_reason = :r",
        c=case_id,
        r=str(int(RejectReason.ILLEGAL_TRANSITION)),
    )
    assert refused == 1


# --- a moved report ---------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """NL's report hosted in DK, whose case DK opened and then moved to NL."""

    report_id: str
    #: DK's case and its two updates (RECEIVED, MOVED to NL), delivered to NL.
    dk_case: str
    opened: fed_pb.ForwardedItem
    moved: fed_pb.ForwardedItem
    #: What DK then sends NL: NL's own report, via DK, with DK's MOVED.
    delivery: fed_pb.ForwardedItem


def moved_to_nl(pair: Pair, target: Network) -> Moved:
    """Submit a report hosted in DK at ``target`` and play DK opening and
    moving its case (the updates delivered to ``target``)."""
    ours = submit(target, NL, "DK")
    case_id = new_uuid7()
    opened = update_item(target, DK, case_id, [ours.item_id], S.CASE_STATUS_RECEIVED, 1)
    moved = update_item(
        target, DK, case_id, [ours.item_id], S.CASE_STATUS_MOVED, 2, new_hosting_country="NL"
    )
    answers = send(target, DK, NL, [opened, moved])
    assert [a.outcome for a in answers] == [receipt_pb2.OUTCOME_ACCEPTED] * 2
    delivery = fed_pb.ForwardedItem(
        envelope=report_envelope(pair, ours.item_id), via_member_ids=[DK]
    )
    delivery.moved_by.append(moved.envelope)
    return Moved(ours.item_id, case_id, opened, moved, delivery)


def filed_count(pair: Pair, report_id: str) -> tuple[int, int]:
    """(moved deliveries, case memberships) NL holds for one report."""
    return (
        count(pair, "SELECT count(*) FROM moved_deliveries WHERE report_id = :r", r=report_id),
        count(pair, "SELECT count(*) FROM case_reports WHERE report_id = :r", r=report_id),
    )


def test_a_moved_report_delivered_to_both_processes_at_once_is_filed_once(pair: Pair) -> None:
    for round_ in range(MOVED_ROUNDS):
        moved = moved_to_nl(pair, pair.nth(round_))
        copies = [(process, DK, [moved.delivery]) for process in pair.both] * MOVED_COPIES
        answers = [signed for [signed] in at_once(copies)]
        # One answer for every copy: the receipt of the one filing, replayed.
        assert len({a.SerializeToString() for a in answers}) == 1
        receipt = verify_receipt(pair.a, answers[0])
        assert receipt.outcome == receipt_pb2.OUTCOME_ACCEPTED, receipt.detail
        assert receipt.case_id and receipt.case_id != moved.dk_case
        assert filed_count(pair, moved.report_id) == (1, 1)
        for process in pair.both:
            case = wait_case(process, NL, moved.report_id, lambda c: c.responsible_member_id == NL)
            assert case.case_id == receipt.case_id
            assert case.status == S.CASE_STATUS_RECEIVED


# --- replays ----------------------------------------------------------------------


def test_a_replay_by_a_third_party_gets_sender_mismatch_from_either_process(
    pair: Pair,
) -> None:
    moved = moved_to_nl(pair, pair.a)
    [filed] = send(pair.b, DK, NL, [moved.delivery])
    assert filed.outcome == receipt_pb2.OUTCOME_ACCEPTED, filed.detail
    without_via = fed_pb.ForwardedItem(
        envelope=moved.delivery.envelope, moved_by=moved.delivery.moved_by
    )
    # Each of these NL accepted from DK; DE hands over the very same bytes.
    replays = [moved.delivery, without_via, moved.opened, moved.moved]
    for process in pair.both:
        answers = send(process, DE, NL, replays)
        assert [reason_name(a) for a in answers] == ["REJECT_REASON_SENDER_MISMATCH"] * 4
        assert all(a.case_id == "" for a in answers)
        # The rightful sender still gets the stored answer from either process.
        [again] = send(process, DK, NL, [moved.delivery])
        assert (again.outcome, again.case_id) == (filed.outcome, filed.case_id)
    assert filed_count(pair, moved.report_id) == (1, 1)


# --- the owner side: one case, two processes ---------------------------------------


def record_at_once(pair: Pair, case_id: str, statuses: Sequence[int]) -> list[grpc.StatusCode]:
    """RecordStatus of one of NL's cases at process A and B (alternately), all
    released at one moment; each call's status code."""
    barrier = threading.Barrier(len(statuses), timeout=DEADLINE)

    def one(index: int) -> grpc.StatusCode:
        with hotline(pair.nth(index), NL) as stub:
            request = pb.RecordStatusRequest(case_id=case_id, status=statuses[index])  # type: ignore[arg-type]
            barrier.wait()
            try:
                stub.RecordStatus(request, timeout=DEADLINE)
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(len(statuses)) as pool:
        return list(pool.map(one, range(len(statuses))))


def test_two_steps_recorded_at_both_processes_at_once_one_wins(pair: Pair) -> None:
    """Two analysts of NL, one at each process, record rival next steps of one
    case at the same moment: exactly one is recorded, the other is refused
    as no longer allowed (never an internal error), and the history takes
    only allowed steps."""
    rivals = [S.CASE_STATUS_ASSESSED_ILLEGAL, S.CASE_STATUS_ASSESSED_NOT_ILLEGAL]
    for round_ in range(RIVAL_ROUNDS):
        ours = submit(pair.nth(round_), NL, "NL")  # filed at NL: a case of its own
        assert ours.case_id
        codes = record_at_once(pair, ours.case_id, rivals)
        assert sorted(codes, key=str) == sorted(
            [grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION], key=str
        ), codes
        winner = rivals[codes.index(grpc.StatusCode.OK)]
        for process in pair.both:
            assert history(process, ours.item_id) == [S.CASE_STATUS_RECEIVED, winner]
