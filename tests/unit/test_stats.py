"""Takedown statistics (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from federation.core.case import CaseView
from federation.core.case_status import CaseStatus
from federation.core.stats import takedown_stats

NOW = datetime(2026, 6, 10, tzinfo=UTC)
H = timedelta(hours=1)


def _case(
    case_id: str,
    status: CaseStatus,
    country: str,
    first_reported_at: datetime,
    removed_at: datetime | None = None,
) -> CaseView:
    """A case as statistics read it (its own fields; no reports)."""
    return CaseView(
        case_id=case_id,
        canonical_url=f"https://example.com/{case_id}",
        hosting_country=country,
        responsible_member_id="hotline-nl",
        status=status,
        reports=(),
        known_content_case_ids=(),
        reappearance_of_case_id="",
        created_at=first_reported_at + H,
        updated_at=NOW,
        first_reported_at=first_reported_at,
        removed_at=removed_at,
    )


def _removed(case_id: str, hours: float) -> CaseView:
    start = NOW - timedelta(days=5)
    return _case(case_id, CaseStatus.CONTENT_REMOVED, "NL", start, start + hours * H)


def test_takedown_times_and_counts() -> None:
    facts = [_removed(f"c{i}", h) for i, h in enumerate([10, 20, 30, 40, 100])]
    facts.append(_case("open-old", CaseStatus.NOTICE_SENT, "DE", NOW - 80 * H))
    facts.append(_case("open-new", CaseStatus.RECEIVED, "DE", NOW - 10 * H))
    result = takedown_stats(facts, NOW)
    assert result.removed_count == 5
    assert result.median == 30 * H
    assert result.p90 == timedelta(hours=76)  # inclusive quantile between 40 and 100
    assert result.within_window_share == 0.8
    assert result.by_status == {
        CaseStatus.CONTENT_REMOVED: 5,
        CaseStatus.NOTICE_SENT: 1,
        CaseStatus.RECEIVED: 1,
    }
    assert result.by_country == {"NL": 5, "DE": 2}
    assert [o.case_id for o in result.open_past_window] == ["open-old"]
    assert result.open_past_window[0].open_for == 80 * H


def test_no_removed_cases() -> None:
    result = takedown_stats([], NOW)
    assert result.removed_count == 0 and result.median is None and result.p90 is None
    assert result.within_window_share is None


def test_single_removed_case() -> None:
    result = takedown_stats([_removed("only", 5)], NOW)
    assert result.median == result.p90 == 5 * H and result.within_window_share == 1.0


def test_takedown_time_starts_at_the_opening_when_no_first_report_is_recorded() -> None:
    opened = NOW - 100 * H
    case = _case("old", CaseStatus.CONTENT_REMOVED, "NL", opened, opened + 10 * H)
    result = takedown_stats([replace(case, first_reported_at=None, created_at=opened)], NOW)
    assert result.median == 10 * H


def test_the_distribution_counts_each_takedown_once_in_fixed_buckets() -> None:
    facts = [_removed(f"c{i}", h) for i, h in enumerate([1, 6, 6.5, 24, 72, 73, 800])]
    facts.append(_case("open", CaseStatus.NOTICE_SENT, "DE", NOW - 10 * H))
    result = takedown_stats(facts, NOW)
    counts = {bound: n for bound, n in result.histogram}
    assert counts[6 * H] == 2  # 1 h and exactly 6 h: a bound is inclusive
    assert counts[12 * H] == 1 and counts[24 * H] == 1 and counts[72 * H] == 1
    assert counts[timedelta(days=7)] == 1
    assert counts[None] == 1  # 800 h is past the last bound
    assert sum(counts.values()) == result.removed_count == 7
    assert [b for b, _ in takedown_stats([], NOW).histogram][-1] is None  # always every bucket


def test_hfed_stats_and_the_console_label_the_buckets_from_the_wire() -> None:
    from federation.cli.stats import distribution
    from federation.wire.convert import stats_to_proto

    reply = stats_to_proto(takedown_stats([_removed("a", 3), _removed("b", 100)], NOW))
    rows = distribution(reply)
    assert [label for label, _ in rows] == [
        "≤ 6 h", "≤ 12 h", "≤ 24 h", "≤ 48 h", "≤ 72 h", "≤ 7 d", "≤ 14 d", "≤ 30 d", "> 30 d",
    ]  # fmt: skip
    assert dict(rows)["≤ 6 h"] == 1 and dict(rows)["≤ 7 d"] == 1  # 3 h and 100 h
    assert sum(n for _, n in rows) == reply.removed_count == 2
