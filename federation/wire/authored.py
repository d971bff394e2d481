"""Wire forms of the reporter's side: our reports' list and statistics."""

from __future__ import annotations

from collections.abc import Mapping

from federation.core.authored import AuthoredFilter, AuthoredPage, AuthoredView, ReporterStats
from federation.core.stats import DurationFigures
from federation.wire.times import optional_datetime, set_optional_time, to_timestamp
from hfp.v1 import hotline_service_pb2 as pb


def authored_filter_from_proto(message: pb.AuthoredReportFilter) -> AuthoredFilter:
    """Domain filter from the wire; unset fields do not filter."""
    return AuthoredFilter(
        statuses=frozenset(int(s) for s in message.statuses),
        hosting_countries=frozenset(message.hosting_countries),
        sent_since=optional_datetime(message, "sent_since"),
        sent_until=optional_datetime(message, "sent_until"),
        overdue_only=message.overdue_only,
    )


def _status_counts(counts: Mapping[int, int]) -> list[pb.StatusCount]:
    return [
        pb.StatusCount(status=status, count=n)  # type: ignore[arg-type]
        for status, n in sorted(counts.items())
    ]


def authored_report_to_proto(view: AuthoredView) -> pb.AuthoredReport:
    """The wire form of one line of the list."""
    message = pb.AuthoredReport(
        report_id=view.report_id,
        canonical_url=view.canonical_url,
        hosting_country=view.hosting_country,
        sent_at=to_timestamp(view.sent_at),
        first_owner_member_id=view.first_owner_member_id,
        responsible_member_id=view.responsible_member_id,
        case_id=view.case_id,
        status=int(view.status) if view.status is not None else 0,  # type: ignore[arg-type]
        overdue=view.overdue,
        moves=view.moves,
        delivery=int(view.delivery),  # type: ignore[arg-type]
    )
    message.since_sent.FromTimedelta(view.since_sent)
    set_optional_time(message, "status_at", view.status_at)
    return message


def authored_page_to_proto(page: AuthoredPage, next_token: str) -> pb.ListAuthoredReportsResponse:
    """The wire form of a page of the list, with the filter's totals."""
    return pb.ListAuthoredReportsResponse(
        reports=[authored_report_to_proto(v) for v in page.views],
        next_page_token=next_token,
        total_count=page.total,
        counts_by_status=_status_counts(page.by_status),
        overdue_count=page.overdue_count,
    )


def reporter_stats_to_proto(result: ReporterStats) -> pb.ReporterStats:
    """The wire form of the reporter's statistics."""
    message = pb.ReporterStats(
        report_count=result.report_count,
        counts_by_status=_status_counts(result.by_status),
        overdue_count=result.overdue_count,
    )
    _set_durations(message, result.removed)
    return message


def _set_durations(message: pb.ReporterStats, figures: DurationFigures) -> None:
    message.removed_count = figures.count
    message.removed_within_72h_share = figures.within_window_share or 0.0
    if figures.median is not None and figures.p90 is not None:
        message.takedown_median.FromTimedelta(figures.median)
        message.takedown_p90.FromTimedelta(figures.p90)
