"""The operations page (peers, refusals, lifetimes) and the audit page.

Both read the node's GetOperations / ListAudit: the console holds no copy of
the outbox or the audits. Analysts see the operations page; the audit (who
looked at what, police included) is for supervisors, like its CSV export.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation.cli.our_reports import age_text
from federation.cli.times import iso
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
from federation.wire.times import optional_datetime
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import receipt_pb2

REFUSED_SHOWN = 100
AUDIT_SHOWN = 200
#: The most entries one audit export holds (the node's cap per call).
AUDIT_EXPORT = 1000
#: Lifetimes shorter than this are marked (deploy/monitoring's alert fires at 14 days too).
SOON = timedelta(days=14)
LOGS = {
    "both": pb.AUDIT_LOG_UNSPECIFIED,
    "liaison": pb.AUDIT_LOG_LIAISON,
    "operator": pb.AUDIT_LOG_OPERATOR,
}
AUDIT_COLUMNS = ("at", "log", "who", "call", "outcome", "calls", "cases", "detail")


def _lifetime(moment: datetime | None, now: datetime) -> dict[str, Any] | None:
    if moment is None:
        return None
    left = moment - now
    shown = age_text(left) if left > timedelta(0) else "EXPIRED"
    return {"at": iso(moment), "left": shown, "soon": left < SOON}


def _peer(queue: pb.PeerQueue, now: datetime) -> dict[str, Any]:
    oldest = optional_datetime(queue, "oldest_pending_at")
    retry = optional_datetime(queue, "retry_at")
    return {
        "peer": queue.member_id,
        "pending": queue.pending,
        "delivered": queue.delivered,
        "rejected": queue.rejected,
        "oldest": age_text(now - oldest) if oldest else "",
        "failures": queue.failures,
        "retry": age_text(retry - now) if retry and retry > now else "",
        "error": queue.last_error,
    }


def _refused(item: pb.RefusedItem) -> dict[str, str]:
    at = optional_datetime(item, "refused_at")
    reason = receipt_pb2.RejectReason.Name(item.reject_reason) if item.reject_reason else ""
    return {
        "peer": item.member_id,
        "item": item.item_id,
        "reason": reason.removeprefix("REJECT_REASON_"),
        "detail": item.detail,
        "at": iso(at) if at else "",
    }


async def operations(console: Console, request: Request, who: Visitor) -> Response:
    """GET /operations: what the node owes its peers, what they refused, lifetimes."""
    context: dict[str, Any] = {"me": who.user, "csrf": who.session.csrf}
    try:
        reply = await console.call(console.node.operations, who.user.name, REFUSED_SHOWN)
    except NodeRefusalError as exc:
        return console.page(
            request, "operations.html", {**context, "refused": refusal_context(exc)}
        )
    now = datetime.now(UTC)
    context.update(
        peers=[_peer(q, now) for q in reply.peers],
        refused_items=[_refused(i) for i in reply.refused],
        refused_more=reply.refused_truncated,
        roster={
            "version": reply.roster.version,
            "issued": iso(reply.roster.issued_at.ToDatetime(tzinfo=UTC)),
            "members": reply.roster.member_count,
            "expires": _lifetime(optional_datetime(reply.roster, "expires_at"), now),
        },
        certificate=_lifetime(optional_datetime(reply, "certificate_not_after"), now),
    )
    return console.page(request, "operations.html", context)


def _audit_query(params: dict[str, str]) -> tuple[dict[str, str], pb.AuditLog.ValueType, str]:
    filters = {k: params[k][:64] for k in ("log", "who", "since") if params.get(k)}
    log = LOGS.get(filters.get("log", "both"), pb.AUDIT_LOG_UNSPECIFIED)
    return filters, log, filters.get("who", "").strip()


def _entry(entry: pb.AuditEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at.ToDatetime(tzinfo=UTC)),
        "log": pb.AuditLog.Name(entry.log).removeprefix("AUDIT_LOG_").lower(),
        "who": entry.who,
        "call": entry.rpc,
        "outcome": entry.outcome,
        "calls": entry.calls,
        "cases": " ".join(entry.case_ids),
        "detail": entry.detail,
    }


async def _read_audit(
    console: Console, who: Visitor, params: dict[str, str], limit: int
) -> pb.ListAuditResponse:
    _filters, log, caller = _audit_query(params)
    since = day_start(params.get("since", ""))
    return await console.call(console.node.audit, who.user.name, log, caller, since, limit)


async def audit_page(console: Console, request: Request, who: Visitor) -> Response:
    """GET /audit: both audits, newest first (supervisors)."""
    params = dict(request.query_params)
    filters, _log, _who = _audit_query(params)
    context: dict[str, Any] = {
        "me": who.user,
        "csrf": who.session.csrf,
        "filters": filters,
        "logs": list(LOGS),
        "export": "/audit.csv" + ("?" + urlencode(filters) if filters else ""),
        "entries": [],
    }
    try:
        reply = await _read_audit(console, who, params, AUDIT_SHOWN)
    except NodeRefusalError as exc:
        return console.page(request, "audit.html", {**context, "refused": refusal_context(exc)})
    context["entries"] = [_entry(e) for e in reply.entries]
    context["truncated"] = reply.truncated
    return console.page(request, "audit.html", context)


async def audit_csv(console: Console, request: Request, who: Visitor) -> Response:
    """GET /audit.csv: the same selection (up to AUDIT_EXPORT entries) as CSV."""
    try:
        reply = await _read_audit(console, who, dict(request.query_params), AUDIT_EXPORT)
    except NodeRefusalError as exc:
        context = {"me": who.user, "csrf": who.session.csrf, "refused": refusal_context(exc)}
        return console.page(request, "audit.html", {**context, "entries": []}, status=502)
    return csv_download(console, "audit", AUDIT_COLUMNS, [_entry(e) for e in reply.entries])


def routes(console: Console) -> list[Route]:
    """The routes of the operations and audit pages."""
    return [
        page_route(console, "/operations", Role.ANALYST, operations),
        page_route(console, "/audit", Role.SUPERVISOR, audit_page),
        page_route(console, "/audit.csv", Role.SUPERVISOR, audit_csv),
    ]
