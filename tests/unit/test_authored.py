"""The reporter's list of our own reports (pure rules) and its CLI helpers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from federation.cases.authored import decode_token, encode_token
from federation.cli.our_reports import age_text, status_name, totals_line
from federation.cli.stats import reporter_figures
from federation.core.authored import (
    NO_STATUS,
    AuthoredFilter,
    AuthoredReport,
    AuthoredView,
    CaseFacts,
    CaseStep,
    Delivery,
    authored_view,
    case_facts,
    current_step,
    page_of,
    reporter_stats,
)
from federation.core.case_status import CaseStatus
from federation.core.deadline import notice_overdue
from federation.core.errors import InvalidArgumentError
from federation.core.ids import CaseId, MemberId, ReportId
from hfp.v1 import hotline_service_pb2 as pb

S = CaseStatus
NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)
H = timedelta(hours=1)


def _step(
    case_id: str, owner: str, hours_ago: float, *history: tuple[S, float], to: str = ""
) -> CaseStep:
    steps = [(n, int(s), NOW - h * H) for n, (s, h) in enumerate(history, start=1)]
    return CaseStep(CaseId(case_id), MemberId(owner), NOW - hours_ago * H, case_facts(steps), to)


def _report(
    n: int, sent_hours_ago: float, *steps: CaseStep, owner: str = "hotline-nl", country: str = "NL"
) -> AuthoredReport:
    return AuthoredReport(
        report_id=ReportId(f"00000000-0000-7000-8000-{n:012d}"),
        canonical_url=f"https://example.net/{n}",
        hosting_country=country,
        sent_at=NOW - sent_hours_ago * H,
        first_owner_member_id=MemberId(owner),
        delivery=Delivery.DELIVERED,
        steps=steps,
    )


def test_the_overdue_rule_is_a_notice_older_than_the_deadline_and_nothing_since() -> None:
    assert notice_overdue(S.NOTICE_SENT, NOW - 73 * H, NOW)
    assert not notice_overdue(S.NOTICE_SENT, NOW - 71 * H, NOW)
    assert not notice_overdue(S.CONTENT_REMOVED, NOW - 100 * H, NOW)
    assert not notice_overdue(S.NOTICE_SENT, None, NOW)
    assert notice_overdue(S.NOTICE_SENT, NOW - 2 * H, NOW, after=H)


def test_case_facts_keep_the_latest_notice_and_the_last_status_by_sequence() -> None:
    facts = case_facts(
        [
            (3, int(S.NOTICE_SENT), NOW - 5 * H),
            (1, int(S.RECEIVED), NOW - 9 * H),
            (4, int(S.NOTICE_SENT), NOW - 2 * H),
            (2, int(S.ASSESSED_ILLEGAL), NOW - 8 * H),
        ]
    )
    assert facts == CaseFacts(S.NOTICE_SENT, NOW - 2 * H, NOW - 2 * H, None)
    assert case_facts([]) == CaseFacts()


def test_after_a_move_the_new_owner_s_case_is_current() -> None:
    at_b = _step("b", "hotline-nl", 10, (S.RECEIVED, 10), (S.MOVED, 9), to="DE")
    at_c = _step("c", "hotline-de", 8, (S.RECEIVED, 8), (S.NOTICE_SENT, 80))
    assert current_step([at_c, at_b]) == at_c
    view = authored_view(_report(1, 11, at_b, at_c), NOW)
    assert (view.responsible_member_id, view.case_id, view.status) == (
        "hotline-de",
        "c",
        S.NOTICE_SENT,
    )
    assert (view.hosting_country, view.moves, view.overdue) == ("DE", 1, True)
    assert view.first_owner_member_id == "hotline-nl" and view.since_sent == 11 * H


def test_moved_with_no_word_yet_from_the_new_owner_shows_the_move() -> None:
    at_b = _step("b", "hotline-nl", 10, (S.RECEIVED, 10), (S.MOVED, 9), to="DE")
    view = authored_view(_report(1, 11, at_b), NOW)
    assert (view.case_id, view.status, view.hosting_country) == ("b", S.MOVED, "DE")


def test_a_report_nobody_wrote_about_shows_its_first_owner_and_receipt_case() -> None:
    view = authored_view(replace(_report(1, 1), receipt_case_id=CaseId("r")), NOW)
    assert (view.responsible_member_id, view.case_id, view.status) == ("hotline-nl", "r", None)
    assert not view.overdue


def _views() -> list[AuthoredView]:
    overdue = _step("o", "hotline-nl", 90, (S.RECEIVED, 90), (S.NOTICE_SENT, 80))
    removed = _step("r", "hotline-nl", 50, (S.RECEIVED, 50), (S.CONTENT_REMOVED, 40))
    return [
        authored_view(_report(1, 100, overdue), NOW),
        authored_view(_report(2, 50, removed), NOW),
        authored_view(_report(3, 2), NOW),
        authored_view(
            _report(4, 30, _step("d", "hotline-dk", 30, (S.RECEIVED, 30)), country="DK"), NOW
        ),
    ]


def test_page_orders_overdue_first_then_newest_and_totals_the_filter() -> None:
    views = _views()
    page = page_of(views, AuthoredFilter(), None, 10)
    assert [v.report_id[-1] for v in page.views] == ["1", "3", "4", "2"]
    assert page.total == 4 and page.overdue_count == 1 and page.next_key is None
    assert page.by_status == {
        int(S.NOTICE_SENT): 1,
        int(S.CONTENT_REMOVED): 1,
        NO_STATUS: 1,
        int(S.RECEIVED): 1,
    }


def test_pages_follow_each_other_without_gaps_or_repeats() -> None:
    views, seen, after = _views(), [], None
    while True:
        page = page_of(views, AuthoredFilter(), after, 1)
        assert page.total == 4
        seen += [v.report_id for v in page.views]
        after = page.next_key
        if after is None:
            break
    assert seen == [v.report_id for v in page_of(views, AuthoredFilter(), None, 10).views]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (AuthoredFilter(statuses=frozenset({NO_STATUS})), ["3"]),
        (AuthoredFilter(statuses=frozenset({int(S.CONTENT_REMOVED), int(S.RECEIVED)})), ["4", "2"]),
        (AuthoredFilter(hosting_countries=frozenset({"DK"})), ["4"]),
        (AuthoredFilter(overdue_only=True), ["1"]),
        (AuthoredFilter(sent_since=NOW - 60 * H, sent_until=NOW - 10 * H), ["4", "2"]),
    ],
)
def test_filters(where: AuthoredFilter, expected: list[str]) -> None:
    page = page_of(_views(), where, None, 10)
    assert [v.report_id[-1] for v in page.views] == expected and page.total == len(expected)


def test_reporter_stats_time_takedowns_from_sending() -> None:
    stats = reporter_stats(_views())
    assert stats.report_count == 4 and stats.overdue_count == 1
    assert stats.removed.count == 1 and stats.removed.median == 10 * H
    assert stats.removed.p90 == 10 * H and stats.removed.within_window_share == 1.0
    assert reporter_stats([]).removed.median is None


def test_page_tokens_round_trip_and_refuse_anything_else() -> None:
    key = (True, NOW, ReportId("00000000-0000-7000-8000-000000000001"))
    assert decode_token(encode_token(key)) == key
    assert decode_token("") is None
    for bad in ("x", "bm90LWEtdG9rZW4=", "A" * 300, encode_token(key)[:-4]):
        with pytest.raises(InvalidArgumentError):
            decode_token(bad)


def test_cli_helpers() -> None:
    assert (age_text(75 * H), age_text(5 * H), age_text(-H)) == ("3d3h", "5h", "0h")
    assert (status_name(0), status_name(7), status_name(99)) == ("none", "content_removed", "99")
    line = totals_line({"total": 3, "by_status": {"none": 1, "received": 2}, "overdue": 0})
    assert line == "3 report(s) match; by status: none 1, received 2; overdue 0"


def test_stats_cli_shows_the_reporter_side_with_its_figures() -> None:
    reply = pb.ReporterStats(
        report_count=5,
        removed_count=2,
        removed_within_72h_share=0.5,
        overdue_count=1,
        counts_by_status=[
            pb.StatusCount(status=0, count=1),
            pb.StatusCount(status=int(S.CONTENT_REMOVED), count=2),  # type: ignore[arg-type]
        ],
    )
    reply.takedown_median.FromTimedelta(36 * H)
    reply.takedown_p90.FromTimedelta(90 * H)
    rows = {(r["section"], r["key"]): r["value"] for r in reporter_figures(reply)}
    assert rows[("our reports", "reports sent")] == 5
    assert rows[("our reports", "removed")] == 2
    assert rows[("our reports", "median hours to removal")] == 36.0
    assert rows[("our reports", "p90 hours to removal")] == 90.0
    assert rows[("our reports", "share removed within 72 h")] == 0.5
    assert rows[("our reports", "overdue")] == 1
    assert rows[("our reports by status", "none")] == 1
    assert rows[("our reports by status", "content_removed")] == 2
