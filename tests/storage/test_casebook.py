"""Filing reports into cases on each storage backend (no server)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crypto.dsse import sign_envelope
from crypto.keys import SigningKey
from federation.cases.filing import CaseBook, Filing, FilingBatch, PdqSearch
from federation.cases.queries import OverduePolicy, local_views
from federation.core.canonical_url import canonical_url
from federation.core.case import CaseFilter
from federation.core.case_status import CaseStatus
from federation.core.ids import new_uuid7
from federation.core.reasons import REPORT_TYPE, Outcome
from federation.core.report import ContentHash, HashAlgorithm, Report
from federation.status.issuing import StatusBook
from federation.store import cases as store
from federation.store import status as status_store
from federation.store.database import Database
from federation.store.models import OutboxRow
from federation.wire.convert import encode_envelope, encode_report

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY = SigningKey.generate()


def _statuses() -> StatusBook:
    return StatusBook("hotline-nl", lambda t, p: sign_envelope(KEY, "hotline-nl", t, p))


def _report(url: str, *hashes: ContentHash, origin: str = "hotline-dk") -> Report:
    return Report(new_uuid7(), origin, NOW, url, tuple(hashes), 1, 1, "NL")


def _envelope(report: Report) -> bytes:
    """The report signed by its origin, serialized as Deliver stores it."""
    return encode_envelope(
        sign_envelope(KEY, report.origin_member_id, REPORT_TYPE, encode_report(report))
    )


def _file(
    db: Database, book: CaseBook, report: Report, search: PdqSearch | None = None
) -> tuple[Outcome, str]:
    """File one report; ``search``: its PDQ hashes searched earlier (as Deliver does)."""
    filing = Filing(report, canonical_url(report.url), _envelope(report), pdq=search)
    with db.write() as session:
        [filed] = book.file_many(session, [filing], NOW, FilingBatch())
    return filed.outcome, filed.case_id


def _file_rolled_back(db: Database, book: CaseBook, report: Report) -> None:
    """File one report in a transaction that fails before its commit, then undo
    the index's additions as Deliver does after a rollback."""
    batch = FilingBatch()
    with pytest.raises(RuntimeError), db.write() as session:
        book.file(session, report, canonical_url(report.url), _envelope(report), NOW, batch)
        raise RuntimeError("simulated failure before commit")
    book.undo(batch)


def _close(db: Database, case_id: str, status: CaseStatus) -> None:
    with db.write() as session:
        row = store.get_case(session, case_id)
        assert row is not None
        store.update_case(session, row, status=int(status), is_open=False)


def test_same_canonical_url_joins_the_open_case(db: Database) -> None:
    book = CaseBook("hotline-nl", _statuses())
    first = _file(db, book, _report("https://Example.com/a/./b#frag"))
    second = _file(db, book, _report("https://example.com/a/b", origin="hotline-de"))
    assert first[0] is Outcome.ACCEPTED and second == (Outcome.DUPLICATE, first[1])
    with db.read() as session:
        reporters = {r.origin_member_id for r in store.case_reports(session, first[1])}
    assert reporters == {"hotline-dk", "hotline-de"}


@pytest.mark.parametrize(
    ("ending", "reappearance"),
    [
        (CaseStatus.CONTENT_REMOVED, True),
        (CaseStatus.CONTENT_GONE, True),
        (CaseStatus.ASSESSED_NOT_ILLEGAL, False),
        (CaseStatus.MOVED, False),
    ],
)
def test_report_after_a_case_ended_opens_a_new_case(
    db: Database, ending: CaseStatus, reappearance: bool
) -> None:
    book = CaseBook("hotline-nl", _statuses())
    _, old = _file(db, book, _report("https://example.net/x"))
    _close(db, old, ending)
    outcome, new = _file(db, book, _report("https://example.net/x"))
    assert outcome is Outcome.ACCEPTED and new != old
    with db.read() as session:
        row = store.get_case(session, new)
        assert row is not None
        assert row.reappearance_of_case_id == (old if reappearance else None)


def test_exact_hashes_link_cases_without_merging(db: Database) -> None:
    book = CaseBook("hotline-nl", _statuses())
    same = ContentHash(HashAlgorithm.SHA256, os.urandom(32))
    _, a = _file(db, book, _report("https://example.com/1", same))
    _, b = _file(db, book, _report("https://example.com/2", same))
    _, c = _file(
        db, book, _report("https://example.com/3", ContentHash(HashAlgorithm.MD5, os.urandom(16)))
    )
    assert len({a, b, c}) == 3
    with db.read() as session:
        assert store.linked_cases(session, a) == [b]
        assert store.linked_cases(session, b) == [a]
        assert store.linked_cases(session, c) == []


def _flip(value: bytes, bits: int) -> bytes:
    number = int.from_bytes(value, "big")
    for bit in range(bits):
        number ^= 1 << (bit * 7 % 256)
    return number.to_bytes(32, "big")


@pytest.mark.parametrize(("distance", "linked"), [(30, True), (31, True), (32, False)])
def test_pdq_near_match_links_within_threshold(db: Database, distance: int, linked: bool) -> None:
    book = CaseBook("hotline-nl", _statuses(), pdq_threshold=31)
    stored = os.urandom(32)
    _, a = _file(db, book, _report("https://example.com/p", ContentHash(HashAlgorithm.PDQ, stored)))
    near = _flip(stored, distance)
    assert bin(int.from_bytes(stored, "big") ^ int.from_bytes(near, "big")).count("1") == distance
    _, b = _file(db, book, _report("https://example.com/q", ContentHash(HashAlgorithm.PDQ, near)))
    with db.read() as session:
        assert (store.linked_cases(session, b) == [a]) is linked


def test_pdq_index_reloads_from_storage(db: Database) -> None:
    stored = os.urandom(32)
    _, a = _file(
        db,
        CaseBook("hotline-nl", _statuses()),
        _report("https://example.com/r", ContentHash(HashAlgorithm.PDQ, stored)),
    )
    fresh = CaseBook("hotline-nl", _statuses())
    fresh.load(db)
    _, b = _file(
        db,
        fresh,
        _report("https://example.com/s", ContentHash(HashAlgorithm.PDQ, _flip(stored, 5))),
    )
    with db.read() as session:
        assert store.linked_cases(session, b) == [a]


def test_rolled_back_filing_leaves_no_trace_in_the_index(db: Database) -> None:
    book = CaseBook("hotline-nl", _statuses())
    value = os.urandom(32)
    report = _report("https://example.com/t", ContentHash(HashAlgorithm.PDQ, value))
    _file_rolled_back(db, book, report)
    assert book.pdq.search(value) == []
    outcome, _ = _file(db, book, replace(report, report_id=new_uuid7()))
    assert outcome is Outcome.ACCEPTED


def test_one_batch_files_like_one_report_at_a_time(db: Database) -> None:
    """Duplicates, exact and PDQ links between reports of the SAME batch are
    found, and each new case gets one RECEIVED update for all its reporters."""
    book = CaseBook("hotline-nl", _statuses())
    same, pdq = ContentHash(HashAlgorithm.SHA256, os.urandom(32)), os.urandom(32)
    reports = [
        _report("https://example.com/batch/1", same),
        _report("https://example.com/batch/2", same, ContentHash(HashAlgorithm.PDQ, pdq)),
        _report("https://example.com/batch/1", origin="hotline-de"),
        _report("https://example.com/batch/3", ContentHash(HashAlgorithm.PDQ, _flip(pdq, 9))),
    ]
    filings = [Filing(r, canonical_url(r.url), _envelope(r)) for r in reports]
    with db.write() as session:
        filed = book.file_many(session, filings, NOW, FilingBatch())
    assert [f.outcome for f in filed] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.ACCEPTED,
    ]
    one, two, dup, three = (f.case_id for f in filed)
    assert dup == one
    with db.read() as session:
        assert store.linked_cases(session, one) == [two]
        assert store.linked_cases(session, three) == [two]
        updates = status_store.updates_of(session, [one, two, three])
        assert [(u.case_id, u.sequence) for u in updates] == sorted(
            [(one, 1), (two, 1), (three, 1)]
        )
        queued = session.scalars(select(OutboxRow.destination).order_by(OutboxRow.id)).all()
    # hotline-dk and hotline-de reported case one; dk alone the others.
    assert sorted(queued) == ["hotline-de", "hotline-dk", "hotline-dk", "hotline-dk"]


def test_exact_hash_lookup_spans_several_in_lists(db: Database) -> None:
    """More hashes than one IN list holds: every stored one is still found."""
    book = CaseBook("hotline-nl", _statuses())
    values = [os.urandom(32) for _ in range(1200)]
    _, case_id = _file(
        db,
        book,
        _report(
            "https://example.com/many",
            *(ContentHash(HashAlgorithm.SHA1, v[:20]) for v in values[:30]),
        ),
    )
    with db.read() as session:
        found = store.cases_by_hash(session, [(int(HashAlgorithm.SHA1), v[:20]) for v in values])
    assert set(found) == {(int(HashAlgorithm.SHA1), v[:20]) for v in values[:30]}
    assert all(ids == {case_id} for ids in found.values())


def test_every_read_of_a_case_gives_the_same_record_and_view(db: Database) -> None:
    """The liaison streams' records (read by id on the driver cursor), one case
    by id and a filtered page (built with SQLAlchemy) hold the same case, and
    its view shows reports in joining order, sorted links, the history."""
    book = CaseBook("hotline-nl", _statuses())
    shared = ContentHash(HashAlgorithm.SHA256, os.urandom(32))
    first = _file(db, book, _report("https://example.com/v/1", shared))[1]
    _file(db, book, _report("https://example.com/v/1", origin="hotline-de"))
    other = _file(db, book, _report("https://example.net/v/2", shared))[1]
    policy = OverduePolicy()
    with db.read() as session:
        records = store.case_records(session, [first, other, "no-such-case"])
        one = store.get_case(session, first)
        page = store.list_cases(session, CaseFilter(), 10, None)
        from_records = local_views(session, [records[first], records[other]], NOW, policy)
        from_page = local_views(
            session, sorted(page, key=lambda r: r.case_id != first), NOW, policy
        )
        events = store.events_after(session, 0, ["NL"], 10)
    assert set(records) == {first, other}
    assert one == records[first] and set(page) == set(records.values())
    assert from_records == from_page
    view = from_records[0]
    assert [r.report.origin_member_id for r in view.reports] == ["hotline-dk", "hotline-de"]
    assert view.known_content_case_ids == (other,)
    assert [u.status for u in view.history] == [CaseStatus.RECEIVED]
    assert view.created_at == NOW and view.created_at.tzinfo is not None
    assert [(e.case_id, e.sequence) for e in events] == sorted(
        ((e.case_id, e.sequence) for e in events), key=lambda pair: pair[1]
    )
    assert {e.case_id for e in events} == {first, other} and len(events) == 3


def test_pdq_searched_before_the_transaction_still_links_what_was_filed_since(
    db: Database,
) -> None:
    """Deliver searches PDQ hashes before its transaction; a near match filed by
    another batch in between must still be linked, and a case rolled back in
    between must not be."""
    book = CaseBook("hotline-nl", _statuses())
    old = os.urandom(32)
    _, before = _file(
        db, book, _report("https://example.com/u1", ContentHash(HashAlgorithm.PDQ, old))
    )
    value = _flip(old, 3)
    search = book.search_pdq([value])
    assert search.found[value] == [before]
    # Another batch files a near match meanwhile.
    _, meanwhile = _file(
        db, book, _report("https://example.com/u2", ContentHash(HashAlgorithm.PDQ, _flip(value, 4)))
    )
    _, mine = _file(
        db, book, _report("https://example.com/u3", ContentHash(HashAlgorithm.PDQ, value)), search
    )
    with db.read() as session:
        assert sorted(store.linked_cases(session, mine)) == sorted([before, meanwhile])

    # A filing rolled back after the search: the index changed in a way the
    # log cannot tell, so the transaction searches in full, and links nothing gone.
    value2 = os.urandom(32)
    search2 = book.search_pdq([value2])
    doomed = _report("https://example.com/u4", ContentHash(HashAlgorithm.PDQ, _flip(value2, 2)))
    _file_rolled_back(db, book, doomed)
    assert book.pdq.search_since(search2.snapshot, [value2]) is None
    _, alone = _file(
        db, book, _report("https://example.com/u5", ContentHash(HashAlgorithm.PDQ, value2)), search2
    )
    with db.read() as session:
        assert store.linked_cases(session, alone) == []
