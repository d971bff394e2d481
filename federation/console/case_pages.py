"""The inbox and the case page: read through the node, act through the node."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from federation.console.node_client import CaseQuery, NodeRefusalError
from federation.console.users import Role
from federation.console.views import STATUSES, case_row, case_view
from federation.console.web import (
    Console,
    Visitor,
    form_of,
    form_route,
    now,
    page_route,
    refusal_context,
    text,
)

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: The inbox shows unassessed cases unless told otherwise.
DEFAULT_STATUS = "1"
PAGE_SIZE = 25


def _query(params: dict[str, str]) -> CaseQuery:
    """The inbox's filters from its query string (bad values filter nothing)."""
    status = params.get("status", DEFAULT_STATUS)
    country = params.get("country", "").strip().upper()[:2]
    return CaseQuery(
        statuses=(int(status),) if status.isdigit() and int(status) in dict(STATUSES) else (),
        countries=(country,) if country else (),
        overdue_only=params.get("overdue") == "1",
        url=params.get("q", "").strip()[:4096] if not _is_id(params.get("q", "")) else "",
        page_size=PAGE_SIZE,
        page_token=params.get("page", "")[:1024],
    )


def _is_id(value: str) -> bool:
    return bool(UUID_RE.fullmatch(value.strip()))


def _context(who: Visitor, **extra: Any) -> dict[str, Any]:
    return {"me": who.user, "csrf": who.session.csrf, **extra}


async def inbox(console: Console, request: Request, who: Visitor) -> Response:
    """GET /inbox: a page of our cases, newest first, filtered or searched."""
    params = dict(request.query_params)
    q = params.get("q", "").strip()
    if _is_id(q):
        return RedirectResponse(f"/cases/{q.lower()}", status_code=303)
    query = _query(params)
    filters: dict[str, str] = {
        k: params[k] for k in ("status", "country", "overdue", "q") if k in params
    }
    context: dict[str, Any] = _context(who, statuses=STATUSES, filters=filters, next_page="")
    context["rows"] = []
    context["status"] = params.get("status", DEFAULT_STATUS)
    try:
        page = await console.call(console.node.cases, who.user.name, query)
    except NodeRefusalError as exc:
        return console.page(request, "inbox.html", {**context, "refused": refusal_context(exc)})
    moment = now()
    context["rows"] = [case_row(c, moment) for c in page.cases]
    if page.next_page_token:
        following: dict[str, str] = {**filters, "page": page.next_page_token}
        context["next_page"] = "?" + urlencode(following)
    context["paged"] = bool(query.page_token)
    return console.page(request, "inbox.html", context)


async def case_page(
    console: Console, request: Request, who: Visitor, *, refused: Any = None, status: int = 200
) -> Response:
    """GET /cases/{case_id}: one case (or the case of a report id)."""
    some_id = request.path_params["case_id"]
    if not _is_id(some_id):
        return console.page(request, "not_found.html", _context(who), status=404)
    try:
        answer = await console.call(console.node.case, who.user.name, some_id)
    except NodeRefusalError as exc:
        context = _context(who, refused=refusal_context(exc))
        return console.page(request, "not_found.html", context, status=404)
    verdicts = await console.call(
        console.history.check, list(answer.case.history), list(answer.case.history_envelopes)
    )
    context = _context(who, case=case_view(answer, now(), verdicts), refused=refused)
    context["recorded"] = request.query_params.get("recorded", "")[:40]
    return console.page(request, "case.html", context, status=status)


async def case_get(console: Console, request: Request, who: Visitor) -> Response:
    """GET /cases/{case_id}."""
    return await case_page(console, request, who)


async def record_status(console: Console, request: Request, who: Visitor) -> Response:
    """POST /cases/{case_id}/status: the node decides; a refusal shows its reason."""
    case_id = request.path_params["case_id"]
    form = form_of(request)
    status = text(form, "status", 4)
    try:
        reply = await console.call(
            console.node.record_status,
            who.user.name,
            case_id,
            int(status) if status.isdigit() else 0,
            text(form, "note", 2000),
            text(form, "new_country", 2).upper(),
        )
    except NodeRefusalError as exc:
        return await case_page(console, request, who, refused=refusal_context(exc), status=409)
    seq = reply.update.sequence
    return RedirectResponse(f"/cases/{reply.update.case_id}?recorded={seq}", status_code=303)


async def home(_console: Console, _request: Request, _who: Visitor) -> Response:
    """GET /: the inbox."""
    return RedirectResponse("/inbox", status_code=303)


def routes(console: Console) -> list[Route]:
    """The case routes of ``console``."""
    return [
        page_route(console, "/", Role.ANALYST, home),
        page_route(console, "/inbox", Role.ANALYST, inbox),
        page_route(console, "/cases/{case_id}", Role.ANALYST, case_get),
        form_route(console, "/cases/{case_id}/status", Role.ANALYST, record_status),
    ]
