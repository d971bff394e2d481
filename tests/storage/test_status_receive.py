"""Applying other members' status updates in sequence order (each storage backend, no server)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from crypto.dsse import sign_envelope
from crypto.keys import SigningKey
from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.core.reasons import REPORT_TYPE, STATUS_UPDATE_TYPE, RejectReason
from federation.core.roster import Member, MemberKey, Role, Roster
from federation.core.status_update import StatusUpdate
from federation.status.issuing import StatusBook
from federation.status.receiving import ReceivedUpdate
from federation.store import inbound
from federation.store import status as store
from federation.store.database import Database
from federation.wire.convert import encode_envelope, encode_status_update

NOW = datetime(2026, 6, 1, tzinfo=UTC)
B_KEY = SigningKey.generate()
S = CaseStatus
CHAIN = [S.RECEIVED, S.ASSESSED_ILLEGAL, S.LEA_NOTIFIED, S.NOTICE_SENT, S.CONTENT_REMOVED]


def _member(member_id: str, role: Role = Role.HOTLINE) -> Member:
    key = MemberKey(B_KEY.key_id, B_KEY.public_key)
    return Member(member_id, role, endpoint="127.0.0.1:1", keys={key.key_id: key})


ROSTER = Roster.build(
    1,
    NOW,
    NOW + timedelta(days=1),
    [
        _member("hotline-dk"),
        _member("hotline-nl"),
        _member("hotline-de"),
        Member("police-nl", Role.LIAISON),
    ],
    "hotline-nl",
)


#: A report hotline-dk (the node under test) sent to hotline-nl, its expected
#: owner: updates must name one of our reports to be about anything of ours.
OURS = new_uuid7()


def _own_report(db: Database, report_id: str, owner: str = "hotline-nl") -> None:
    """Store a report of our own intake with its expected owner."""
    with db.write() as session:
        if store.own_reports(session, "hotline-dk", [report_id]):
            return
        inbound.insert_items(
            session,
            [
                inbound.NewInboundItem(
                    report_id,
                    REPORT_TYPE,
                    "hotline-dk",
                    B_KEY.key_id,
                    "hotline-dk",
                    (),
                    b"envelope",
                    b"\0" * 32,
                    1,
                    b"receipt",
                    NOW,
                    expected_owner=owner,
                )
            ],
        )


@pytest.fixture(autouse=True)
def _ours(db: Database) -> None:
    _own_report(db, OURS)


def _updates(case_id: str, author: str = "hotline-nl") -> list[StatusUpdate]:
    return [
        StatusUpdate(new_uuid7(), case_id, (OURS,), author, status, seq, NOW + seq * timedelta(1))
        for seq, status in enumerate(CHAIN, start=1)
    ]


def _receive(db: Database, book: StatusBook, update: StatusUpdate) -> RejectReason | None:
    envelope = encode_envelope(
        sign_envelope(B_KEY, update.member_id, STATUS_UPDATE_TYPE, encode_status_update(update))
    )
    with db.write() as session:
        refusal = book.receive(session, ROSTER, update, envelope, NOW)
    return refusal.reason if refusal else None


def _history(db: Database, case_id: str) -> list[tuple[int, CaseStatus]]:
    with db.read() as session:
        return [(r.sequence, CaseStatus(r.status)) for r in store.updates_of(session, [case_id])]


def _book() -> StatusBook:
    return StatusBook("hotline-dk", lambda t, p: sign_envelope(B_KEY, "hotline-dk", t, p))


@pytest.mark.parametrize(
    "order",
    [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [0, 0, 1, 1, 2, 4, 4, 3, 3, 2, 0]],
    ids=["in-order", "reversed", "shuffled", "with-repeats"],
)
def test_any_arrival_order_gives_the_same_history(db: Database, order: list[int]) -> None:
    case_id = new_uuid7()
    updates = _updates(case_id)
    book = _book()
    for index in order:
        assert _receive(db, book, updates[index]) is None
    assert _history(db, case_id) == list(enumerate(CHAIN, start=1))


def test_a_gap_waits_for_the_missing_update(db: Database) -> None:
    case_id = new_uuid7()
    updates = _updates(case_id)
    book = _book()
    for index in (0, 1, 3, 4):
        _receive(db, book, updates[index])
    assert _history(db, case_id) == [(1, S.RECEIVED), (2, S.ASSESSED_ILLEGAL)]
    with db.read() as session:
        tracked = store.tracked(session, case_id)
        assert tracked is not None and tracked.last_applied_sequence == 2
    _receive(db, book, updates[2])
    assert len(_history(db, case_id)) == 5


def test_illegal_transition_refused(db: Database) -> None:
    case_id = new_uuid7()
    first, second = _updates(case_id)[:2]
    book = _book()
    _receive(db, book, first)
    _receive(db, book, second)
    wrong = StatusUpdate(new_uuid7(), case_id, (OURS,), "hotline-nl", S.RECEIVED, 3, NOW)
    assert _receive(db, book, wrong) is RejectReason.ILLEGAL_TRANSITION
    first_is_not_received = StatusUpdate(
        new_uuid7(), new_uuid7(), (OURS,), "hotline-nl", S.NOTICE_SENT, 1, NOW
    )
    assert _receive(db, book, first_is_not_received) is RejectReason.ILLEGAL_TRANSITION


def test_only_the_responsible_member_writes(db: Database) -> None:
    case_id = new_uuid7()
    book = _book()
    _receive(db, book, _updates(case_id)[0])
    intruder = _updates(case_id, author="hotline-de")[1]
    assert _receive(db, book, intruder) is RejectReason.NOT_RESPONSIBLE
    liaison = _updates(new_uuid7(), author="police-nl")[0]
    assert _receive(db, book, liaison) is RejectReason.NOT_RESPONSIBLE


def _signed(update: StatusUpdate) -> bytes:
    return encode_envelope(
        sign_envelope(B_KEY, update.member_id, STATUS_UPDATE_TYPE, encode_status_update(update))
    )


@pytest.mark.parametrize(
    "batches",
    [
        [[4, 3, 2, 1, 0]],
        [[2, 0, 4], [1, 3]],
        [[0, 0, 1, 4], [4, 3, 3], [2, 0]],
    ],
    ids=["one-batch-reversed", "two-batches", "repeats-across-batches"],
)
def test_batches_in_any_order_give_the_same_history(db: Database, batches: list[list[int]]) -> None:
    """Updates delivered together (the peer's outbox drains in batches), in any
    order and with repeats, expect the same applied history as one by one."""
    one, two = new_uuid7(), new_uuid7()
    updates = {one: _updates(one), two: _updates(two)}
    book = _book()
    for batch in batches:
        pairs = [ReceivedUpdate(u[i], _signed(u[i])) for i in batch for u in updates.values()]
        with db.write() as session:
            assert book.receive_many(session, ROSTER, pairs, NOW) == [None] * len(pairs)
    for case_id in (one, two):
        assert _history(db, case_id) == list(enumerate(CHAIN, start=1))
        with db.read() as session:
            tracked = store.tracked(session, case_id)
            assert tracked is not None
            assert (tracked.last_applied_sequence, tracked.status) == (5, int(S.CONTENT_REMOVED))


def test_refusals_in_a_batch_leave_the_rest_applied(db: Database) -> None:
    """A batch with an illegal transition and an update by the wrong author,
    expect exactly those refused and the others applied."""
    case_id = new_uuid7()
    good = _updates(case_id)
    illegal = StatusUpdate(new_uuid7(), case_id, (OURS,), "hotline-nl", S.CONTENT_REMOVED, 1, NOW)
    other_case = new_uuid7()
    impostor = _updates(other_case, author="hotline-de")[1]
    pairs = [ReceivedUpdate(u, _signed(u)) for u in (illegal, good[0], good[1], impostor)]
    with db.write() as session:
        results = _book().receive_many(session, ROSTER, pairs, NOW)
    assert [r.reason if r else None for r in results] == [
        RejectReason.ILLEGAL_TRANSITION,
        None,
        None,
        RejectReason.NOT_RESPONSIBLE,  # not our report's owner: nothing kept
    ]
    assert _history(db, case_id) == [(1, S.RECEIVED), (2, S.ASSESSED_ILLEGAL)]
    with db.read() as session:
        assert store.tracked(session, other_case) is None
        assert store.held_updates(session, [other_case]) == []


def test_a_held_update_illegal_in_its_turn_is_refused_not_applied(db: Database) -> None:
    """RECEIVED 1, RECEIVED 3, then ASSESSED_ILLEGAL 2: the held RECEIVED is
    refused when its turn comes; the history takes only allowed steps, and
    the next sequence applies on top of what was applied."""
    case_id = new_uuid7()
    book = _book()
    steps = [(1, S.RECEIVED), (3, S.RECEIVED), (2, S.ASSESSED_ILLEGAL)]
    for sequence, status in steps:
        update = StatusUpdate(new_uuid7(), case_id, (OURS,), "hotline-nl", status, sequence, NOW)
        assert _receive(db, book, update) is None
    assert _history(db, case_id) == [(1, S.RECEIVED), (2, S.ASSESSED_ILLEGAL)]
    with db.read() as session:
        held = {h.sequence: h for h in store.held_updates(session, [case_id])}
        tracked = store.tracked(session, case_id)
    assert held[3].refused and not held[3].applied
    assert tracked is not None and tracked.last_applied_sequence == 3
    later = StatusUpdate(new_uuid7(), case_id, (OURS,), "hotline-nl", S.NOTICE_SENT, 4, NOW)
    assert _receive(db, book, later) is None
    assert _history(db, case_id)[-1] == (4, S.NOTICE_SENT)


@pytest.mark.parametrize(
    ("open_first", "then"),
    [(1, 2), (2, 1)],
    ids=["next-open-while-later-arrives", "later-open-while-next-arrives"],
)
def test_two_writers_of_one_case_never_strand_a_held_update(
    db: Database, open_first: int, then: int
) -> None:
    """Two transactions on one case at once, as two node processes on one
    database run them: one receives sequence 2 or 3 and stays open while the
    other receives the other one. However they overlap, expect the case to
    end at sequence 3 with nothing left held: the later writer must see what
    the earlier one stored, or sequence 3 would wait for ever for a gap that
    was filled."""
    case_id = new_uuid7()
    updates = _updates(case_id)
    book = _book()
    assert _receive(db, book, updates[0]) is None
    opened, release = threading.Event(), threading.Event()
    outcomes: dict[int, RejectReason | None] = {}

    def first() -> None:
        with db.write() as session:
            refusal = book.receive(
                session, ROSTER, updates[open_first], _signed(updates[open_first]), NOW
            )
            outcomes[open_first] = refusal.reason if refusal else None
            opened.set()
            release.wait(10)  # bounded: the test releases it at once below

    def second() -> None:
        outcomes[then] = _receive(db, book, updates[then])

    holder = threading.Thread(target=first)
    holder.start()
    assert opened.wait(10)
    other = threading.Thread(target=second)
    other.start()
    other.join(0.5)  # time to run past the open transaction, if nothing stops it
    release.set()
    holder.join(10)
    other.join(10)
    assert not holder.is_alive() and not other.is_alive()
    assert outcomes == {1: None, 2: None}
    assert _history(db, case_id) == list(enumerate(CHAIN[:3], start=1))
    with db.read() as session:
        held = [h for h in store.held_updates(session, [case_id]) if not h.applied]
        tracked = store.tracked(session, case_id)
    assert held == []
    assert tracked is not None and tracked.last_applied_sequence == 3
