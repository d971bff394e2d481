"""Statistics for supervisors: the node's own figures, drawn as SVG on the server.

Every number comes from the node's GetStats (over all time, and once per
week for the trend); the console computes nothing of its own but the
conversion to hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation.cli.stats import distribution as takedown_distribution
from federation.console import plots
from federation.console.node_client import NodeRefusalError
from federation.console.users import Role
from federation.console.views import status_name
from federation.console.web import (
    Console,
    Visitor,
    csv_download,
    now,
    page_route,
    refusal_context,
)
from hfp.v1 import hotline_service_pb2 as pb

#: Weeks the trend covers (one GetStats call each).
WEEKS = 12


def _hours(stats: pb.GetStatsResponse, field: str) -> float | None:
    if not stats.removed_count:
        return None
    return float(getattr(stats, field).ToTimedelta().total_seconds() / 3600)


def distribution(stats: pb.GetStatsResponse) -> list[tuple[str, float]]:
    """(label, removed cases) per bucket, as `hfed stats` lists them."""
    return [(label, float(count)) for label, count in takedown_distribution(stats)]


def summary(stats: pb.GetStatsResponse) -> dict[str, Any]:
    """The headline figures and the two bar plots of one GetStats answer."""
    by_status = [(status_name(c.status), float(c.count)) for c in stats.counts_by_status]
    by_country = sorted(
        ((c.hosting_country, float(c.count)) for c in stats.counts_by_country),
        key=lambda row: -row[1],
    )
    return {
        "removed": stats.removed_count,
        "median": _hours(stats, "takedown_median"),
        "p90": _hours(stats, "takedown_p90"),
        "within_72h": stats.removed_within_72h_share * 100 if stats.removed_count else None,
        "open_past_72h": len(stats.open_past_72h),
        "status_plot": plots.bars("Cases by current status", by_status),
        "country_plot": plots.bars("Cases by hosting country", by_country[:20]),
        "distribution_plot": plots.bars(
            "Removed cases by time from first report to removal", distribution(stats)
        ),
    }


def week_starts(today: datetime, weeks: int = WEEKS) -> list[datetime]:
    """The Mondays (00:00 UTC) of the last ``weeks`` weeks, oldest first, this week last."""
    monday = (today - timedelta(days=today.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return [monday - timedelta(weeks=n) for n in reversed(range(weeks))]


async def weekly(
    console: Console, who: Visitor, today: datetime
) -> list[tuple[datetime, pb.GetStatsResponse]]:
    """GetStats of each of the last WEEKS weeks of first report, oldest first."""
    weeks = []
    for start in week_starts(today):
        week = await console.call(
            console.node.stats, who.user.name, start, start + timedelta(weeks=1)
        )
        weeks.append((start, week))
    return weeks


def _share(stats: pb.GetStatsResponse) -> float | None:
    return stats.removed_within_72h_share * 100 if stats.removed_count else None


def trend(weeks: list[tuple[datetime, pb.GetStatsResponse]]) -> dict[str, Any]:
    """Per week of first report: the median hours to removal and the share within 72 h."""
    medians = [(start.strftime("%d %b"), _hours(week, "takedown_median")) for start, week in weeks]
    shares = [(start.strftime("%d %b"), _share(week)) for start, week in weeks]
    return {
        "median_plot": plots.line(
            "Median hours to removal, by week of first report", medians, " h"
        ),
        "share_plot": plots.line(
            "Share removed within 72 h, by week of first report", shares, " %"
        ),
    }


async def stats_page(console: Console, request: Request, who: Visitor) -> Response:
    """GET /stats (supervisors and admins)."""
    context: dict[str, Any] = {"me": who.user, "csrf": who.session.csrf}
    try:
        overall = await console.call(console.node.stats, who.user.name)
        context |= summary(overall) | trend(await weekly(console, who, now()))
    except NodeRefusalError as exc:
        return console.page(request, "stats.html", {**context, "refused": refusal_context(exc)})
    return console.page(request, "stats.html", context)


CSV_COLUMNS = ("measure", "group", "value")


def _round(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


def csv_rows(
    overall: pb.GetStatsResponse, weeks: list[tuple[datetime, pb.GetStatsResponse]]
) -> list[dict[str, Any]]:
    """Every figure of the page as (measure, group, value) rows: one sheet a
    spreadsheet can filter and pivot."""
    rows: list[dict[str, Any]] = [
        {"measure": "cases by status", "group": status_name(c.status), "value": c.count}
        for c in overall.counts_by_status
    ]
    rows += [
        {"measure": "cases by country", "group": c.hosting_country, "value": c.count}
        for c in overall.counts_by_country
    ]
    rows += [
        {"measure": "removed", "group": "all", "value": overall.removed_count},
        {"measure": "median hours to removal", "group": "all",
         "value": _round(_hours(overall, "takedown_median"))},
        {"measure": "p90 hours to removal", "group": "all",
         "value": _round(_hours(overall, "takedown_p90"))},
        {"measure": "% removed within 72 h", "group": "all", "value": _round(_share(overall))},
        {"measure": "open past 72 h", "group": "all", "value": len(overall.open_past_72h)},
    ]  # fmt: skip
    rows += [
        {"measure": "removed by time to removal", "group": label, "value": int(n)}
        for label, n in distribution(overall)
    ]
    for start, week in weeks:
        day = start.strftime("%Y-%m-%d")
        rows += [
            {"measure": "weekly removed", "group": day, "value": week.removed_count},
            {"measure": "weekly median hours", "group": day,
             "value": _round(_hours(week, "takedown_median"))},
            {"measure": "weekly % within 72 h", "group": day, "value": _round(_share(week))},
        ]  # fmt: skip
    return rows


async def stats_csv(console: Console, request: Request, who: Visitor) -> Response:
    """GET /stats.csv: the page's figures as CSV (supervisors and admins)."""
    try:
        overall = await console.call(console.node.stats, who.user.name)
        weeks = await weekly(console, who, now())
    except NodeRefusalError as exc:
        context = {"me": who.user, "csrf": who.session.csrf, "refused": refusal_context(exc)}
        return console.page(request, "stats.html", context, status=502)
    return csv_download(console, "statistics", CSV_COLUMNS, csv_rows(overall, weeks))


def routes(console: Console) -> list[Route]:
    """The statistics routes of ``console``."""
    return [
        page_route(console, "/stats", Role.SUPERVISOR, stats_page),
        page_route(console, "/stats.csv", Role.SUPERVISOR, stats_csv),
    ]
