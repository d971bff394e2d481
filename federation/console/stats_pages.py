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

from federation.console import plots
from federation.console.node_client import NodeRefusalError
from federation.console.users import Role
from federation.console.views import status_name
from federation.console.web import Console, Visitor, now, page_route, refusal_context
from hfp.v1 import hotline_service_pb2 as pb

#: Weeks the trend covers (one GetStats call each).
WEEKS = 12


def _hours(stats: pb.GetStatsResponse, field: str) -> float | None:
    if not stats.removed_count:
        return None
    return float(getattr(stats, field).ToTimedelta().total_seconds() / 3600)


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
    }


def week_starts(today: datetime, weeks: int = WEEKS) -> list[datetime]:
    """The Mondays (00:00 UTC) of the last ``weeks`` weeks, oldest first, this week last."""
    monday = (today - timedelta(days=today.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return [monday - timedelta(weeks=n) for n in reversed(range(weeks))]


async def trend(console: Console, who: Visitor, today: datetime) -> dict[str, Any]:
    """Per week of first report: the median hours to removal and the share within 72 h."""
    medians: list[tuple[str, float | None]] = []
    shares: list[tuple[str, float | None]] = []
    for start in week_starts(today):
        week = await console.call(
            console.node.stats, who.user.name, start, start + timedelta(weeks=1)
        )
        label = start.strftime("%d %b")
        medians.append((label, _hours(week, "takedown_median")))
        shares.append((label, week.removed_within_72h_share * 100 if week.removed_count else None))
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
        context |= summary(overall) | await trend(console, who, now())
    except NodeRefusalError as exc:
        return console.page(request, "stats.html", {**context, "refused": refusal_context(exc)})
    return console.page(request, "stats.html", context)


def routes(console: Console) -> list[Route]:
    """The statistics routes of ``console``."""
    return [page_route(console, "/stats", Role.SUPERVISOR, stats_page)]
