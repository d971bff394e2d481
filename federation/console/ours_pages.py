"""Our reports: what this hotline sent and where each stands at its owner.

Everything comes from the node's ListAuthoredReports, and each line is made
by the same function as a line of `hfed report list` (federation.cli.
our_reports.record), so the page, its CSV and the command never disagree.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation.cli.our_reports import CSV_COLUMNS, STATUSES, build_filter, record, totals
from federation.console.node_client import NodeRefusalError
from federation.console.users import Role
from federation.console.web import (
    Console,
    Visitor,
    csv_download,
    day_start,
    page_route,
    refusal_context,
)
from hfp.v1 import hotline_service_pb2 as pb

PAGE_SIZE = 50
#: Reports per call while exporting (the most the node serves).
EXPORT_PAGE = 500
#: The most reports one export holds; the page says when a filter matches more.
MAX_EXPORT = 100_000
FILTERS = ("status", "country", "since", "overdue")


def query_filter(params: dict[str, str]) -> pb.AuthoredReportFilter:
    """The node's filter from the page's query string (bad values filter nothing)."""
    status = params.get("status", "")
    country = params.get("country", "").strip().upper()[:2]
    return build_filter(
        [status] if status in STATUSES else [],
        [country] if len(country) == 2 and country.isalpha() else [],
        (day_start(params.get("since", "")), None),
        params.get("overdue") == "1",
    )


def _filters(params: dict[str, str]) -> dict[str, str]:
    return {k: params[k][:40] for k in FILTERS if params.get(k)}


async def ours(console: Console, request: Request, who: Visitor) -> Response:
    """GET /ours: a page of our reports, overdue first, with totals by status."""
    params = dict(request.query_params)
    filters = _filters(params)
    context: dict[str, Any] = {
        "me": who.user,
        "csrf": who.session.csrf,
        "statuses": STATUSES,
        "filters": filters,
        "rows": [],
        "export": "/ours.csv" + ("?" + urlencode(filters) if filters else ""),
    }
    token = params.get("page", "")[:1024]
    try:
        page = await console.call(
            console.node.authored, who.user.name, query_filter(params), PAGE_SIZE, token
        )
    except NodeRefusalError as exc:
        return console.page(request, "ours.html", {**context, "refused": refusal_context(exc)})
    context["rows"] = [record(line) for line in page.reports]
    context["totals"] = totals(page)
    context["paged"] = bool(token)
    if page.next_page_token:
        context["next_page"] = "?" + urlencode({**filters, "page": page.next_page_token})
    return console.page(request, "ours.html", context)


def _every_page(console: Console, analyst: str, where: pb.AuthoredReportFilter) -> list[Any]:
    """Up to MAX_EXPORT reports of the filter, page by page (runs in a thread)."""
    rows: list[Any] = []
    token = ""
    while len(rows) < MAX_EXPORT:
        page = console.node.authored(analyst, where, EXPORT_PAGE, token)
        rows.extend(record(line) for line in page.reports)
        token = page.next_page_token
        if not token:
            break
    return rows[:MAX_EXPORT]


async def ours_csv(console: Console, request: Request, who: Visitor) -> Response:
    """GET /ours.csv: the filtered list as CSV a spreadsheet opens safely."""
    where = query_filter(dict(request.query_params))
    try:
        rows = await console.call(_every_page, console, who.user.name, where)
    except NodeRefusalError as exc:
        context = {"me": who.user, "csrf": who.session.csrf, "refused": refusal_context(exc)}
        return console.page(request, "ours.html", {**context, "rows": []}, status=502)
    return csv_download(console, "our-reports", CSV_COLUMNS, rows)


def routes(console: Console) -> list[Route]:
    """The routes of the Our reports page."""
    return [
        page_route(console, "/ours", Role.ANALYST, ours),
        page_route(console, "/ours.csv", Role.ANALYST, ours_csv),
    ]
