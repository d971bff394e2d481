"""The repositories on each storage backend (the ``db`` fixture runs every test on
SQLite and on PostgreSQL, each with a fresh database at the newest migration)."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.store import audit, inbound, operator_audit, outbox, rosters
from federation.store import cases as case_store
from federation.store import status as status_store
from federation.store.cases import CaseRecord, ReportRecord
from federation.store.database import Database, lost_a_race
from federation.store.models import AuditRow, OperatorAuditRow, OutboxRow, StatusUpdateRow
from tests.support.cases import case_record

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def _item(item_id: str | None = None, at: datetime = NOW) -> inbound.NewInboundItem:
    item_id = item_id or new_uuid7()
    return inbound.NewInboundItem(
        item_id=item_id,
        payload_type="application/vnd.hfp.report.v1+protobuf",
        signer_member_id="hotline-dk",
        key_id="k1",
        sender_member_id="hotline-dk",
        via_member_ids=("hotline-de",),
        envelope=b"\x00envelope\xff" + item_id.encode(),
        payload_sha256=hashlib.sha256(item_id.encode()).digest(),
        outcome=1,
        receipt=b"receipt-" + item_id.encode(),
        received_at=at,
    )


def _case(url: str, *, is_open: bool = True, at: datetime = NOW) -> CaseRecord:
    status = CaseStatus.RECEIVED if is_open else CaseStatus.CONTENT_REMOVED
    return case_record(url, at, status=status, is_open=is_open)


# --- inbound items ------------------------------------------------------------


def test_inbound_items_round_trip_and_replay(db: Database) -> None:
    items = [_item() for _ in range(3)]
    with db.write() as session:
        inbound.insert_items(session, items)
    with db.read() as session:
        found = inbound.find_receipts(session, [i.item_id for i in items] + ["missing"])
        envelopes = inbound.find_envelopes(session, [items[0].item_id])
        answered = inbound.find_answered(session, [items[1].item_id, "missing"])
        assert inbound.count_items(session) == 3
    assert set(found) == {i.item_id for i in items}
    first = found[items[0].item_id]
    assert (first.receipt, first.payload_sha256) == (items[0].receipt, items[0].payload_sha256)
    envelope, received_at = envelopes[items[0].item_id]
    assert envelope == items[0].envelope  # binary exact, NUL and 0xff included
    assert received_at == NOW and received_at.utcoffset() == timedelta(0)
    assert list(answered) == [items[1].item_id]
    stored = answered[items[1].item_id]
    assert (stored.envelope, stored.receipt) == (items[1].envelope, items[1].receipt)


def test_duplicate_inbound_item_raises_integrity_error(db: Database) -> None:
    """delivery.py retries its batch on IntegrityError: both backends must raise it."""
    item = _item()
    with db.write() as session:
        inbound.insert_items(session, [item])
    with pytest.raises(IntegrityError) as raised, db.write() as session:
        inbound.insert_items(session, [_item(), item])
    assert lost_a_race(raised.value)
    with db.read() as session:
        assert inbound.count_items(session) == 1  # the whole batch rolled back


def test_concurrent_duplicate_insert_loses_with_integrity_error(db: Database) -> None:
    """Two transactions storing the same id: one commits, the other gets IntegrityError."""
    item = _item()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=10)

    def store() -> None:
        try:
            barrier.wait()
            with db.write() as session:
                inbound.insert_items(session, [item])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], IntegrityError), errors
    with db.read() as session:
        assert inbound.count_items(session) == 1


# --- times --------------------------------------------------------------------


def test_times_come_back_as_aware_utc(db: Database) -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 6, 1, 13, 0, 0, 123456, tzinfo=cet)
    with db.write() as session:
        inbound.insert_items(session, [_item("a" * 36, at=local)])
    with db.read() as session:
        _, received_at = inbound.find_envelopes(session, ["a" * 36])["a" * 36]
    assert received_at == datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert received_at.tzinfo is UTC


def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive"), db.write() as session:
        inbound.insert_items(session, [_item(at=datetime(2026, 6, 1))])


# --- cases --------------------------------------------------------------------


def test_one_open_case_per_url(db: Database) -> None:
    url = "https://example.test/a"
    with db.write() as session:
        case_store.insert_cases(session, [_case(url)])
    with pytest.raises(IntegrityError), db.write() as session:
        case_store.insert_cases(session, [_case(url)])
    # Closed cases for the same URL are allowed beside the open one.
    with db.write() as session:
        case_store.insert_cases(session, [_case(url, is_open=False, at=NOW - timedelta(days=2))])
        case_store.insert_cases(session, [_case(url, is_open=False, at=NOW - timedelta(days=1))])
    with db.read() as session:
        sha = hashlib.sha256(url.encode()).digest()
        held = case_store.cases_by_url(session, [sha])[sha]
        assert held.open_case_id is not None
        open_case = case_store.case_records(session, [held.open_case_id])[held.open_case_id]
        closed = held.latest_closed
        assert open_case.is_open
        assert closed is not None
        assert case_store.get_case(session, closed.case_id).created_at == NOW - timedelta(days=1)
        assert case_store.count_cases(session) == 3


def test_closing_a_case_frees_its_url(db: Database) -> None:
    url = "https://example.test/b"
    first = _case(url)
    with db.write() as session:
        case_store.insert_cases(session, [first])
    with db.write() as session:
        row = case_store.get_case(session, first.case_id)
        assert row is not None
        case_store.update_case(session, row, is_open=False, status=int(CaseStatus.CONTENT_REMOVED))
    with db.write() as session:
        case_store.insert_cases(session, [_case(url)])
    with db.read() as session:
        assert case_store.count_cases(session) == 2


def _report(case_id: str, report_id: str, origin: str) -> ReportRecord:
    return ReportRecord(case_id, report_id, origin, NOW, b"env-" + report_id.encode())


def test_reports_hashes_links_and_events(db: Database) -> None:
    a, b = _case("https://example.test/c"), _case("https://example.test/d")
    with db.write() as session:
        case_store.insert_cases(session, [a, b])
        case_store.insert_reports(
            session,
            [_report(a.case_id, "r1", "hotline-dk"), _report(a.case_id, "r2", "hotline-de")],
        )
        case_store.insert_hashes(
            session,
            [
                (a.case_id, 1, b"\x01" * 32),
                (b.case_id, 1, b"\x01" * 32),
                (b.case_id, 2, b"\x02" * 20),
            ],
        )
        case_store.insert_links(session, [(a.case_id, b.case_id), (a.case_id, a.case_id)])
        case_store.insert_links(session, [(b.case_id, a.case_id)])  # idempotent
        for kind in (1, 2, 3):
            case_store.append_event(session, a, kind, NOW + timedelta(seconds=kind))
        case_store.append_event(session, b, 1, NOW)
    with db.read() as session:
        assert case_store.reporters_of(session, [a.case_id]) == {
            a.case_id: {"hotline-dk", "hotline-de"}
        }
        assert case_store.case_id_of_report(session, "r2") == a.case_id
        assert case_store.cases_with_hashes(session, [(1, b"\x01" * 32)]) == {
            a.case_id,
            b.case_id,
        }
        assert sorted(v for _, v in case_store.all_hashes(session, 2)) == [b"\x02" * 20]
        assert case_store.linked_cases(session, a.case_id) == [b.case_id]
        assert case_store.linked_cases(session, b.case_id) == [a.case_id]
        events = case_store.events_after(session, 0, ["NL"], 100)
        sequences = [e.sequence for e in events]
        assert sequences == sorted(sequences) and len(set(sequences)) == 4
        of_a = [e.kind for e in events if e.case_id == a.case_id]
        assert of_a == [1, 2, 3]
        later = case_store.events_after(session, sequences[1], ["NL"], 100)
        assert [e.sequence for e in later] == sequences[2:]
        assert case_store.events_after(session, 0, ["DK"], 100) == []


def test_case_listing_is_keyset_paginated(db: Database) -> None:
    from federation.core.case import CaseFilter

    with db.write() as session:
        for i in range(5):
            case_store.insert_cases(
                session, [_case(f"https://example.test/p{i}", at=NOW + timedelta(minutes=i))]
            )
    seen: list[str] = []
    after = None
    with db.read() as session:
        for _ in range(10):
            page = case_store.list_cases(session, CaseFilter(), 2, after)
            if not page:
                break
            seen += [c.canonical_url for c in page]
            after = (page[-1].created_at, page[-1].case_id)
    assert seen == [f"https://example.test/p{i}" for i in reversed(range(5))]


# --- status updates -----------------------------------------------------------


def test_status_updates_unique_per_case_and_sequence(db: Database) -> None:
    def update_row(sequence: int) -> StatusUpdateRow:
        return StatusUpdateRow(
            update_id=new_uuid7(),
            case_id="case-1",
            author_member_id="hotline-nl",
            sequence=sequence,
            status=int(CaseStatus.RECEIVED),
            observed_at=NOW,
            envelope=b"env",
            applied=True,
            recorded_at=NOW,
        )

    with db.write() as session:
        session.add_all([update_row(2), update_row(1)])
    with pytest.raises(IntegrityError), db.write() as session:
        session.add(update_row(2))
    with db.read() as session:
        assert [u.sequence for u in status_store.updates_of(session, ["case-1"])] == [1, 2]
    with db.write() as session:
        status_store.link_reports(session, [("r1", "case-1"), ("r1", "case-1")], NOW)
        status_store.link_reports(session, [("r1", "case-1")], NOW)  # idempotent
    with db.read() as session:
        assert status_store.linked_cases_of_report(session, "r1") == ["case-1"]
        assert status_store.reports_linked_to(session, ["case-1"]) == ["r1"]


# --- outbox -------------------------------------------------------------------


def _enqueue(db: Database, count: int, destination: str = "hotline-nl") -> None:
    with db.write() as session:
        for i in range(count):
            outbox.enqueue(
                session,
                destination,
                new_uuid7(),
                "application/vnd.hfp.report.v1+protobuf",
                b"\x00env" + bytes([i % 256]),
                ["hotline-de"] if i % 2 else [],
                NOW,
                proofs=b"moved" if i == 0 else None,
            )


def test_outbox_peek_leaves_out_held_and_leased_items_and_converts_values(
    db: Database,
) -> None:
    _enqueue(db, 4)
    _enqueue(db, 1, "hotline-de")
    with db.read() as session:
        everything = outbox.peek_batch(session, "hotline-nl", 10, NOW, ())
    assert len(everything) == 4 and [i.id for i in everything] == sorted(i.id for i in everything)
    first, second = everything[0], everything[1]
    assert first.proofs == b"moved" and first.via_member_ids == ()
    assert second.via_member_ids == ("hotline-de",) and second.proofs is None
    assert first.created_at == NOW and first.created_at.tzinfo is not None
    assert first.envelope == b"\x00env\x00"
    with db.write() as session:  # another process holds a lease on the third
        outbox.claim_batch(session, "hotline-de", 1, "proc-x", NOW, LEASE)
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == everything[2].id)
            .values(lease_until=NOW + LEASE)
        )
    with db.read() as session:
        held = {first.id}
        assert [i.id for i in outbox.peek_batch(session, "hotline-nl", 10, NOW, held)] == [
            second.id,
            everything[3].id,
        ]
        later = NOW + LEASE + LEASE
        assert [i.id for i in outbox.peek_batch(session, "hotline-nl", 2, later, held)] == [
            second.id,
            everything[2].id,
        ]
    with db.write() as session:
        done = outbox.Finished(second.id, outbox.OutboxState.DELIVERED, b"receipt")
        outbox.finish(session, [done], NOW, "proc-mem")
    with db.read() as session:
        row = session.get(OutboxRow, second.id)
        assert row is not None
        assert (row.state, row.receipt, row.claimed_by, row.finished_at, row.attempts) == (
            outbox.OutboxState.DELIVERED,
            b"receipt",
            "proc-mem",
            NOW,
            1,
        )


def test_outbox_claim_finish_in_queue_order(db: Database) -> None:
    _enqueue(db, 5)
    _enqueue(db, 2, "hotline-de")
    with db.write() as session:
        first = outbox.claim_batch(session, "hotline-nl", 3, "proc-a", NOW, LEASE)
    assert [i.id for i in first] == sorted(i.id for i in first) and len(first) == 3
    assert first[0].proofs == b"moved" and first[1].via_member_ids == ("hotline-de",)
    with db.write() as session:
        # Claimed items are not handed out again while the lease holds.
        second = outbox.claim_batch(session, "hotline-nl", 10, "proc-b", NOW, LEASE)
    assert len(second) == 2 and not {i.id for i in first} & {i.id for i in second}
    with db.write() as session:
        assert outbox.claim_batch(session, "hotline-nl", 10, "proc-c", NOW, LEASE) == []
        delivered = outbox.Finished(first[0].id, outbox.OutboxState.DELIVERED, b"rc")
        outbox.finish(session, [delivered], NOW)
        # Finishing twice does nothing (the item is no longer pending).
        again = outbox.Finished(first[0].id, outbox.OutboxState.DELIVERED, b"x")
        rejected = outbox.Finished(first[1].id, outbox.OutboxState.REJECTED, b"no")
        outbox.finish(session, [again, rejected], NOW)
    with db.read() as session:
        assert session.get(OutboxRow, first[0].id).receipt == b"rc"  # type: ignore[union-attr]
    with db.read() as session:
        assert outbox.pending_count(session) == 5
        assert outbox.pending_count(session, "hotline-nl") == 3
        assert sorted(outbox.pending_destinations(session)) == ["hotline-de", "hotline-nl"]
        row = session.get(OutboxRow, first[0].id)
        assert row is not None
        assert (row.state, row.receipt, row.claimed_by, row.lease_until, row.attempts) == (
            outbox.OutboxState.DELIVERED,
            b"rc",
            "proc-a",
            None,
            1,
        )
        states = {s.destination: s for s in outbox.queue_states(session)}
        nl = states["hotline-nl"]
        assert (nl.pending, nl.delivered, nl.rejected) == (3, 1, 1)
        assert nl.oldest_pending == NOW
        assert [r[2] for r in outbox.rejected_items(session, 10)] == [b"no"]
        assert outbox.destinations_of(session, first[0].item_id) == {"hotline-nl"}


def test_outbox_expired_lease_and_release_make_items_claimable(db: Database) -> None:
    _enqueue(db, 4)
    with db.write() as session:
        held = outbox.claim_batch(session, "hotline-nl", 2, "crashed", NOW, LEASE)
        failed = outbox.claim_batch(session, "hotline-nl", 2, "failing", NOW, LEASE)
        outbox.note_attempt(session, [i.id for i in failed], "UNAVAILABLE: down")
    later = NOW + LEASE + timedelta(seconds=1)
    with db.write() as session:
        # The failed items were released; the crashed process's lease is still on.
        again = outbox.claim_batch(
            session, "hotline-nl", 10, "b", NOW + timedelta(seconds=1), LEASE
        )
    assert [i.id for i in again] == [i.id for i in failed]
    with db.write() as session:
        outbox.release(session, [i.id for i in again])
        after = outbox.claim_batch(session, "hotline-nl", 10, "c", later, LEASE)
    assert [i.id for i in after] == sorted(i.id for i in held + failed)
    with db.read() as session:
        row = session.get(OutboxRow, failed[0].id)
        assert row is not None and row.attempts == 1 and row.last_error == "UNAVAILABLE: down"


def test_outbox_concurrent_claims_never_overlap(db: Database) -> None:
    """Claimers in parallel transactions (threads here, processes in production)
    each get distinct items, and together all of them."""
    _enqueue(db, 300)
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(4, timeout=10)
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        got: list[int] = []
        try:
            barrier.wait()
            for _ in range(100):  # bounded
                with db.write() as session:
                    batch = outbox.claim_batch(session, "hotline-nl", 7, name, NOW, LEASE)
                if not batch:
                    break
                got += [i.id for i in batch]
        except Exception as exc:
            errors.append(exc)
        claimed[name] = got

    threads = [threading.Thread(target=claimer, args=(f"p{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    every = [i for got in claimed.values() for i in got]
    assert len(every) == len(set(every)) == 300


def test_skip_locked_does_not_wait_for_a_claim_in_progress(db: Database) -> None:
    """While one transaction holds its claimed rows locked (not yet committed),
    another claims the next rows at once instead of waiting (PostgreSQL)."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite serialises writers; there are no row locks to skip")
    _enqueue(db, 10)
    with db.write() as first:
        mine = outbox.claim_batch(first, "hotline-nl", 4, "a", NOW, LEASE)
        with db.write() as second:
            second.execute(text("SET LOCAL lock_timeout = '2s'"))
            theirs = outbox.claim_batch(second, "hotline-nl", 100, "b", NOW, LEASE)
    assert [i.id for i in mine] == [i.id for i in sorted(mine + theirs, key=lambda i: i.id)[:4]]
    assert len(theirs) == 6 and not {i.id for i in mine} & {i.id for i in theirs}


def test_peer_backoff_is_persisted_and_cleared(db: Database) -> None:
    def delay(n: int) -> timedelta:
        return timedelta(seconds=2**n)

    with db.write() as session:
        assert outbox.record_failure(session, "hotline-nl", "down", NOW, delay) == NOW + delay(1)
    with db.write() as session:
        assert outbox.record_failure(session, "hotline-nl", "x" * 900, NOW, delay) == NOW + delay(2)
    with db.read() as session:
        backoff = outbox.get_backoff(session, "hotline-nl")
        assert (
            backoff is not None and backoff.failures == 2 and len(backoff.last_error or "") == 500
        )
        assert backoff.retry_at == NOW + delay(2)
    with db.write() as session:
        outbox.record_success(session, "hotline-nl")
        outbox.record_success(session, "hotline-nl")  # nothing to clear: fine
    with db.read() as session:
        assert outbox.get_backoff(session, "hotline-nl") is None


def test_concurrent_failures_on_one_peer_count_both(db: Database) -> None:
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            barrier.wait()
            with db.write() as session:
                outbox.record_failure(session, "hotline-nl", "down", NOW, timedelta)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fail) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    with db.read() as session:
        backoff = outbox.get_backoff(session, "hotline-nl")
        assert backoff is not None and backoff.failures == 2


# --- audit log ----------------------------------------------------------------


def test_audit_log_is_append_only(db: Database) -> None:
    with db.write() as session:
        audit.append(session, NOW, "police-dk", "ListCases", ["c1", "c2"], "OK", "")
        audit.append(session, NOW, "police-nl", "GetCase", [str(i) for i in range(1500)], "OK", "x")
    with db.read() as session:
        rows = audit.entries(session, None, "", 10)
        assert [r.member_id for r in rows] == ["police-dk", "police-nl"]
        assert rows[0].case_ids == ["c1", "c2"]
        assert len(rows[1].case_ids) == audit.MAX_CASES and "1500 cases" in rows[1].detail
        assert [r.rpc for r in audit.entries(session, None, "police-nl", 10)] == ["GetCase"]
    _refuses_changes(db, AuditRow)


def test_operator_audit_is_append_only(db: Database) -> None:
    with db.write() as session:
        operator_audit.append(session, NOW, "ana", "RecordStatus", "c1", "OK", "NOTICE_SENT")
        operator_audit.append(session, NOW, "bo", "GetCase", "c2", "OK", "x" * 900)
    with db.read() as session:
        rows = operator_audit.entries(session, None, "", 10)
        assert [(r.analyst, r.rpc, r.case_id) for r in rows] == [
            ("ana", "RecordStatus", "c1"),
            ("bo", "GetCase", "c2"),
        ]
        assert len(rows[1].detail) == 500
        assert [r.rpc for r in operator_audit.entries(session, None, "bo", 10)] == ["GetCase"]
        assert operator_audit.entries(session, NOW + timedelta(seconds=1), "", 10) == []
    _refuses_changes(db, OperatorAuditRow)


def _refuses_changes(db: Database, model: type[AuditRow] | type[OperatorAuditRow]) -> None:
    """The database refuses UPDATE, DELETE and (PostgreSQL) TRUNCATE of an audit table."""
    with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
        session.execute(update(model).values(outcome="CHANGED"))
    with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
        session.execute(delete(model))
    if db.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
            session.execute(text(f"TRUNCATE {model.__tablename__}"))
    with db.read() as session:
        outcomes = list(session.scalars(select(model.outcome)))
    assert outcomes == ["OK", "OK"]


# --- rosters ------------------------------------------------------------------


def test_rosters_latest_version_wins(db: Database) -> None:
    with db.read() as session:
        assert rosters.latest_roster(session) is None
    with db.write() as session:
        rosters.save_roster(session, 2, b"\x00v2", NOW)
        rosters.save_roster(session, 10, b"\x00v10", NOW)
        rosters.save_roster(session, 3, b"\x00v3", NOW)
    with db.write() as session:
        rosters.save_roster(session, 10, b"\x00v10", NOW)  # merge: re-installing is fine
    with db.read() as session:
        assert rosters.latest_roster(session) == b"\x00v10"


# --- case event log ordering ----------------------------------------------------


def _append(db: Database, case: CaseRecord) -> None:
    with db.write() as session:
        case_store.append_event(session, case, 1, NOW)


def test_a_reader_between_two_commits_skips_no_event(db: Database) -> None:
    """Regression (issue 7 note, issue 21): a transaction that appends first
    but commits last must not end up with a LOWER position than an event a
    reader already saw, or a liaison resuming "after N" skips it for good.

    The first transaction appends (and flushes) an event, then a second one
    appends and commits while the first is still open; a reader reads; the
    first commits; the reader resumes after what it saw and must find the
    first's event. Positions are taken at commit, so the second commits
    without waiting and the first's event comes after it (PostgreSQL; on
    SQLite the second writer cannot start before the first ends)."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite admits one writer at a time: commits cannot interleave")
    first_case, second_case = (
        _case("https://order.example.com/1"),
        _case("https://order.example.com/2"),
    )
    with db.write() as session:
        case_store.insert_cases(session, [first_case, second_case])
    with db.write() as session:
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        case_store.append_event(session, first_case, 1, NOW)
        session.flush()
        second = threading.Thread(target=_append, args=(db, second_case))
        second.start()
        second.join(timeout=10)
        assert not second.is_alive(), "a second appender waited for the first's commit"
        with db.read() as reader:
            seen = case_store.events_after(reader, 0, ["NL"], 10)
        assert [e.case_id for e in seen] == [second_case.case_id]
    with db.read() as reader:
        later = case_store.events_after(reader, seen[-1].sequence, ["NL"], 10)
    assert [e.case_id for e in later] == [first_case.case_id]


def test_events_of_a_rolled_back_transaction_are_not_written(db: Database) -> None:
    """Buffered events go with their transaction: none after a rollback."""
    case = _case("https://order.example.com/rolled-back")
    with db.write() as session:
        case_store.insert_cases(session, [case])
    with pytest.raises(RuntimeError), db.write() as session:
        case_store.append_event(session, case, 1, NOW)
        raise RuntimeError("abandon the transaction")
    _append(db, case)
    with db.read() as session:
        events = case_store.events_after(session, 0, ["NL"], 10)
    assert len(events) == 1
