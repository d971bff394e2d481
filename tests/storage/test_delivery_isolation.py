"""One caller's unstorable item fails neither its batch nor other callers' (each backend).

The delivery path refuses every value it knows storage cannot hold before any
transaction (tests/reliability/test_isolation.py shows that on a real node).
These tests take one such check away, so that a value storage refuses (a
sequence above 2^63-1: SQLite's OverflowError, PostgreSQL's "bigint out of
range") does reach the shared group-commit transaction, and show the
backstop: the poisoned caller's other items are stored, the poisoned item
alone is refused, and every concurrent caller's batch is stored as if the
poison had never been there. A real DeliveryService on a real database, no
server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta

import pytest

from crypto.dsse import Envelope, sign_envelope
from crypto.keys import SigningKey
from crypto.threshold import TrustAnchor, sign_roster_bytes
from federation.cases.filing import CaseBook
from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.core.limits import DEFAULT_LIMITS
from federation.core.reasons import REPORT_TYPE, STATUS_UPDATE_TYPE, Outcome, RejectReason
from federation.core.report import ContentHash, HashAlgorithm, Report
from federation.core.roster import Member, MemberKey, Role, Roster
from federation.core.status_update import StatusUpdate
from federation.intake import payloads
from federation.intake.delivery import Books, DeliveryService, IncomingItem, NodeIdentity
from federation.intake.group_commit import GroupCommit
from federation.status.issuing import StatusBook
from federation.store import inbound
from federation.store.database import Database
from federation.trust.holder import RosterHolder, serialize_signed_roster
from federation.wire.convert import (
    decode_envelope,
    decode_receipt,
    encode_report,
    encode_roster,
    encode_status_update,
)

ME, POISONER, BYSTANDER = "hotline-nl", "hotline-dk", "hotline-de"
KEYS = {m: SigningKey.generate() for m in (ME, POISONER, BYSTANDER)}
ROOT = SigningKey.generate()
#: Concurrent batches of each kind (bounded; enough to share groups).
ROUNDS = 12
CLEAN_ITEMS = 5
#: A report of ours (ME's) that we sent to the poisoner: only as its expected
#: owner may the poisoner's status update reach storage at all.
OURS = new_uuid7()


def _roster(now: datetime) -> bytes:
    members = [
        Member(
            m,
            Role.HOTLINE,
            jurisdictions=frozenset({m.rsplit("-", 1)[1].upper()}),
            endpoint="127.0.0.1:1",
            keys={KEYS[m].key_id: MemberKey(KEYS[m].key_id, KEYS[m].public_key)},
        )
        for m in KEYS
    ]
    roster = Roster.build(1, now - timedelta(hours=1), now + timedelta(days=1), members, ME)
    data = encode_roster(roster)
    return serialize_signed_roster(data, sign_roster_bytes(data, [ROOT]))


def _service(db: Database) -> DeliveryService:
    now = datetime.now(UTC)
    rosters = RosterHolder(TrustAnchor.from_public_keys([ROOT.public_key], 1), db)
    rosters.load(_roster(now))
    identity = NodeIdentity(ME, KEYS[ME])
    statuses = StatusBook(ME, identity.sign)
    casebook = CaseBook(ME, statuses)
    casebook.load(db)
    with db.write() as session:
        if not inbound.find_receipts(session, [OURS]):
            inbound.insert_items(
                session,
                [
                    inbound.NewInboundItem(
                        OURS,
                        REPORT_TYPE,
                        ME,
                        KEYS[ME].key_id,
                        ME,
                        (),
                        b"envelope",
                        b"\0" * 32,
                        int(Outcome.FORWARDED),
                        b"receipt",
                        now,
                        expected_owner=POISONER,
                    )
                ],
            )
    return DeliveryService(identity, rosters, db, DEFAULT_LIMITS, Books(casebook, statuses))


def _report(origin: str) -> Envelope:
    report_id = new_uuid7()
    report = Report(
        report_id,
        origin,
        datetime.now(UTC),
        f"https://isolation.example.test/{report_id}",
        (ContentHash(HashAlgorithm.SHA256, new_uuid7().encode()[:32]),),
        1,
        1,
        "NL",
    )
    return sign_envelope(KEYS[origin], origin, REPORT_TYPE, encode_report(report))


def _poison() -> Envelope:
    update = StatusUpdate(
        new_uuid7(),
        new_uuid7(),
        (OURS,),
        POISONER,
        CaseStatus.RECEIVED,
        2**64 - 1,
        datetime.now(UTC),
    )
    return sign_envelope(KEYS[POISONER], POISONER, STATUS_UPDATE_TYPE, encode_status_update(update))


def _outcomes(receipts: list[bytes]) -> list[tuple[Outcome, RejectReason | None]]:
    decoded = [decode_receipt(decode_envelope(r).payload) for r in receipts]
    return [(r.outcome, r.reject_reason) for r in decoded]


@pytest.fixture
def unchecked_sequences(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The status-update checks without the sequence range (a check "forgotten")."""
    checked = payloads.check_status_update

    def without_range(update: StatusUpdate, now: datetime, limits: object) -> object:
        return checked(
            StatusUpdate(**{**_fields(update), "sequence": min(update.sequence, 2**63 - 1)}),
            now,
            limits,  # type: ignore[arg-type]
        )

    monkeypatch.setattr(payloads, "check_status_update", without_range)
    yield


def _fields(update: StatusUpdate) -> dict[str, object]:
    return {name: getattr(update, name) for name in StatusUpdate.__slots__}


def _run_together(calls: list[Callable[[], list[bytes]]]) -> list[list[bytes] | BaseException]:
    """Run the calls from a pool, all released at once; each one's receipts or error."""
    start = threading.Barrier(len(calls), timeout=30)

    def released(call: Callable[[], list[bytes]]) -> list[bytes] | BaseException:
        start.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(released, calls, timeout=120))


@pytest.mark.usefixtures("unchecked_sequences")
def test_an_unstorable_item_is_refused_alone_and_fails_no_other_batch(db: Database) -> None:
    """Batches [report, update with sequence 2^64-1] from one peer run at the same
    moment as clean batches of another, expect every clean batch stored in full,
    the poisoned peer's reports stored and only its updates refused
    (LIMIT_EXCEEDED), and every accepted item in storage exactly once."""
    service = _service(db)
    poisoned = [[_report(POISONER), _poison()] for _ in range(ROUNDS)]
    clean = [[_report(BYSTANDER) for _ in range(CLEAN_ITEMS)] for _ in range(ROUNDS)]
    calls: list[Callable[[], list[bytes]]] = []
    for bad, good in zip(poisoned, clean, strict=True):
        calls.append(lambda b=bad: service.deliver(POISONER, [IncomingItem(e, ()) for e in b]))
        calls.append(lambda g=good: service.deliver(BYSTANDER, [IncomingItem(e, ()) for e in g]))
    results = _run_together(calls)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    for index, receipts in enumerate(results):
        assert isinstance(receipts, list)
        outcomes = _outcomes(receipts)
        if index % 2 == 0:
            assert outcomes == [
                (Outcome.ACCEPTED, None),
                (Outcome.REJECTED, RejectReason.LIMIT_EXCEEDED),
            ]
        else:
            assert outcomes == [(Outcome.ACCEPTED, None)] * CLEAN_ITEMS
    stored_ids = [decode_receipt(decode_envelope(r[0]).payload).item_id for r in results]  # type: ignore[index]
    with db.read() as session:
        found = inbound.find_receipts(session, stored_ids)
    assert set(found) == set(stored_ids)


@pytest.mark.usefixtures("unchecked_sequences")
def test_a_batch_of_nothing_but_unstorable_items_fails_alone(db: Database) -> None:
    """A batch of 3 updates with sequence 2^64-1, expect the call to fail (nothing
    stored: a fault of every item is not told apart from a fault of the node)
    while a clean batch at the same moment is stored."""
    service = _service(db)
    results = _run_together(
        [
            lambda: service.deliver(POISONER, [IncomingItem(_poison(), ()) for _ in range(3)]),
            lambda: service.deliver(BYSTANDER, [IncomingItem(_report(BYSTANDER), ())]),
        ]
    )
    assert isinstance(results[0], Exception)
    assert isinstance(results[1], list)
    assert _outcomes(results[1]) == [(Outcome.ACCEPTED, None)]


def test_the_group_runs_each_caller_alone_after_a_failure() -> None:
    """Three callers share a group and one's items fail, expect only that caller
    to get the error and the others' items to be done exactly once more (alone)."""
    done: list[list[str]] = []
    gate = threading.Event()

    def work(items: list[str]) -> None:
        if items == ["first"]:
            gate.wait(5)
        if "poison" in items:
            raise OverflowError("value out of range")
        done.append(items)

    group: GroupCommit[str] = GroupCommit(work)
    first = threading.Thread(target=group.run, args=(["first"],))
    first.start()
    results: dict[str, BaseException | None] = {}

    def call(name: str) -> None:
        try:
            group.run([name])
            results[name] = None
        except OverflowError as exc:
            results[name] = exc

    callers = [threading.Thread(target=call, args=(n,)) for n in ("a", "poison", "b")]
    for thread in callers:
        thread.start()
    for _ in range(100):  # wait (bounded) until all three queue behind "first"
        if len(group._queue) == 3:  # observed only, never driven
            break
        threading.Event().wait(0.01)
    gate.set()
    for thread in (first, *callers):
        thread.join(10)
        assert not thread.is_alive()
    assert results["a"] is None and results["b"] is None
    assert isinstance(results["poison"], OverflowError)
    assert sorted(x for items in done[1:] for x in items) == ["a", "b"]
