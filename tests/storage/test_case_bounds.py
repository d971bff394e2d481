"""Bounded reads of a large case (issue 16, finding 4), on each backend (the
``db`` fixture runs every test on SQLite and on PostgreSQL).

A case with 250 reports, 130 applied updates and 150 known-content links:
its view carries the first 100 reports, the first 10 and latest 90 updates
and the first 100 links, each with its count, and the pages of reports and
history go through every entry exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crypto.dsse import sign_envelope
from crypto.keys import SigningKey
from federation.cases.queries import (
    OverduePolicy,
    history_page,
    item_page_size,
    local_report_page,
    local_views,
)
from federation.core.case_status import CaseStatus
from federation.core.errors import InvalidArgumentError
from federation.core.ids import new_uuid7
from federation.core.reasons import REPORT_TYPE, STATUS_UPDATE_TYPE
from federation.core.status_update import StatusUpdate
from federation.store import cases as case_store
from federation.store import status as status_store
from federation.store.cases import CaseRecord, ReportRecord
from federation.store.database import Database
from federation.wire.convert import encode_envelope, encode_report, encode_status_update
from tests.support.cases import case_record
from tests.support.net import make_report

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REPORTS, UPDATES, LINKS = 250, 130, 150
KEY = SigningKey.generate()


def _case(case_id: str, url: str) -> CaseRecord:
    return case_record(
        url, NOW, case_id=case_id, status=CaseStatus.NOTICE_SENT, last_sequence=UPDATES
    )


def _reports(case_id: str) -> list[ReportRecord]:
    rows = []
    for n in range(REPORTS):
        report = make_report("hotline-dk", "NL", url="https://big.example.com/one")
        envelope = sign_envelope(KEY, "hotline-dk", REPORT_TYPE, encode_report(report))
        rows.append(
            ReportRecord(
                case_id,
                report.report_id,
                "hotline-dk",
                # Ten reports join per instant, as in a batch: ties break by id.
                NOW + timedelta(seconds=n // 10),
                encode_envelope(envelope),
            )
        )
    return rows


def _update_rows(case_id: str) -> list[dict[str, object]]:
    rows = []
    for sequence in range(1, UPDATES + 1):
        status = CaseStatus.RECEIVED if sequence == 1 else CaseStatus.NOTICE_SENT
        update = StatusUpdate(
            new_uuid7(), case_id, (), "hotline-nl", status, sequence, NOW, note=""
        )
        envelope = sign_envelope(
            KEY, "hotline-nl", STATUS_UPDATE_TYPE, encode_status_update(update)
        )
        rows.append(
            status_store.update_row(update, encode_envelope(envelope), applied=True, now=NOW)
        )
    return rows


@pytest.fixture
def big(db: Database) -> tuple[Database, str, list[str], list[str]]:
    """A large case; its report ids in join order and its linked case ids."""
    case_id = new_uuid7()
    others = sorted(new_uuid7() for _ in range(LINKS))
    reports = _reports(case_id)
    with db.write() as session:
        case_store.insert_cases(
            session,
            [_case(case_id, "https://big.example.com/one")]
            + [_case(o, f"https://other.example.com/{o}") for o in others],
        )
        case_store.insert_reports(session, reports)
        status_store.insert_updates(session, _update_rows(case_id))
        case_store.insert_links(session, [(case_id, o) for o in others])
    order = [r.report_id for r in sorted(reports, key=lambda r: (r.joined_at, r.report_id))]
    return db, case_id, order, others


def test_the_view_of_a_large_case_is_bounded_and_counts_everything(
    big: tuple[Database, str, list[str], list[str]],
) -> None:
    db, case_id, order, others = big
    with db.read() as session:
        row = case_store.case_records(session, [case_id])[case_id]
        [view] = local_views(session, [row], NOW, OverduePolicy())
        [bare] = local_views(session, [row], NOW, OverduePolicy(), report_limit=0)
    assert (view.report_count, view.history_count, view.link_count) == (REPORTS, UPDATES, LINKS)
    assert [r.report_id for r in view.reports] == order[:100]
    sequences = [u.sequence for u in view.history]
    assert sequences == list(range(1, 11)) + list(range(UPDATES - 89, UPDATES + 1))
    assert len(view.history_envelopes) == len(view.history)
    assert list(view.known_content_case_ids) == others[:100]
    assert bare.reports == () and bare.report_count == REPORTS


def test_report_pages_go_through_every_report_once(
    big: tuple[Database, str, list[str], list[str]],
) -> None:
    db, case_id, order, _ = big
    seen: list[str] = []
    token = ""
    with db.read() as session:
        for _ in range(REPORTS):
            page = local_report_page(session, case_id, 30, token)
            assert page.report_count == REPORTS and len(page.reports) <= 30
            seen += [r.report_id for r in page.reports]
            token = page.next_page_token
            if not token:
                break
    assert seen == order


def test_history_pages_go_through_every_update_once(
    big: tuple[Database, str, list[str], list[str]],
) -> None:
    db, case_id, _, _ = big
    seen: list[int] = []
    token = ""
    with db.read() as session:
        for _ in range(UPDATES):
            page = history_page(session, case_id, 0, token)
            assert page.history_count == UPDATES and len(page.history) <= 50
            seen += [u.sequence for u in page.history]
            token = page.next_page_token
            if not token:
                break
    assert seen == list(range(1, UPDATES + 1))


def test_bad_page_sizes_and_tokens_are_invalid_arguments(
    big: tuple[Database, str, list[str], list[str]],
) -> None:
    db, case_id, _, _ = big
    assert item_page_size(0) == 50 and item_page_size(10_000) == 100
    with pytest.raises(InvalidArgumentError):
        item_page_size(-1)
    with db.read() as session:
        token = local_report_page(session, case_id, 5, "").next_page_token
        history_token = history_page(session, case_id, 5, "").next_page_token
        for bad in ("%%%", "bm90IGEgdG9rZW4=", history_token):
            with pytest.raises(InvalidArgumentError):
                local_report_page(session, case_id, 5, bad)
        with pytest.raises(InvalidArgumentError):  # a token made for another case
            local_report_page(session, new_uuid7(), 5, token)
        with pytest.raises(InvalidArgumentError):
            history_page(session, case_id, 5, token)
