"""``hfed report list``: what happened to the reports this hotline sent.

One line per report we authored (filed here or forwarded): where it is now
(the responsible member and its case there, after MOVED the last owner),
the latest status that member signed, how long ago we sent it, and whether
its takedown is overdue. Overdue reports come first, then the newest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import grpc

from federation.cli.connect import DEADLINE, Target, channel, node_options, resolve, rpc_failure
from federation.cli.countries import COUNTRY
from federation.cli.liaison.formatting import stamp, timestamp
from federation.cli.output import FORMAT_OPTION, Format, emit
from federation.cli.times import check_window, iso, window_options
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc
from hfp.v1 import status_pb2

COLUMNS = (
    "report_id",
    "status",
    "overdue",
    "country",
    "responsible",
    "case_id",
    "sent",
    "age",
    "moves",
    "delivery",
    "url",
)
#: CSV carries what the table leaves out for width.
CSV_COLUMNS = (*COLUMNS, "first_owner", "status_at", "age_seconds")
#: The status filter's name for "no status received yet".
NO_STATUS = "none"
STATUSES = [
    NO_STATUS,
    *(n.removeprefix("CASE_STATUS_").lower() for n in status_pb2.CaseStatus.keys()[1:]),
]
#: The most lines one page holds (the node serves no more).
MAX_LIMIT = 500
#: Most pages --all reads (five million reports at 500 a page).
MAX_PAGES = 10_000


def status_name(value: int) -> str:
    """A status as the list shows it: lower case, ``none`` for no status yet."""
    if value == 0:
        return NO_STATUS
    try:
        return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_").lower()  # type: ignore[arg-type]
    except ValueError:  # a status newer than this client
        return str(value)


def _status_value(name: str) -> int:
    if name == NO_STATUS:
        return 0
    return int(status_pb2.CaseStatus.Value("CASE_STATUS_" + name.upper()))


def age_text(age: timedelta) -> str:
    """A duration as days and hours ('3d4h', '5h', '0h')."""
    hours = max(int(age.total_seconds() // 3600), 0)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if days else f"{hours}h"


def _delivery(value: int) -> str:
    try:
        return pb.Delivery.Name(value).removeprefix("DELIVERY_").lower()  # type: ignore[arg-type]
    except ValueError:
        return str(value)


def record(line: pb.AuthoredReport) -> dict[str, Any]:
    """One report as a row: times in ISO 8601 UTC, counts and flags as such."""
    sent = stamp(line, "sent_at")
    status_at = stamp(line, "status_at")
    return {
        "report_id": line.report_id,
        "status": status_name(line.status),
        "overdue": line.overdue,
        "country": line.hosting_country,
        "responsible": line.responsible_member_id,
        "case_id": line.case_id,
        "sent": iso(sent) if sent else "",
        "age": age_text(line.since_sent.ToTimedelta()),
        "age_seconds": int(line.since_sent.ToTimedelta().total_seconds()),
        "status_at": iso(status_at) if status_at else "",
        "first_owner": line.first_owner_member_id,
        "moves": line.moves,
        "delivery": _delivery(line.delivery),
        "url": line.canonical_url,
    }


def totals(reply: pb.ListAuthoredReportsResponse) -> dict[str, Any]:
    """The filter's totals: how many, by status, how many overdue."""
    return {
        "total": reply.total_count,
        "by_status": {status_name(c.status): c.count for c in reply.counts_by_status},
        "overdue": reply.overdue_count,
    }


def totals_line(summary: dict[str, Any]) -> str:
    """The totals as one line under the table."""
    parts = ", ".join(f"{name} {n}" for name, n in summary["by_status"].items())
    return (
        f"{summary['total']} report(s) match; by status: {parts or '-'};"
        f" overdue {summary['overdue']}"
    )


def build_filter(
    statuses: Sequence[str],
    countries: Sequence[str],
    window: tuple[datetime | None, datetime | None],
    overdue: bool,
) -> pb.AuthoredReportFilter:
    """The request's filter from the options."""
    since, until = window
    message = pb.AuthoredReportFilter(
        statuses=[_status_value(s) for s in statuses],  # type: ignore[misc]
        hosting_countries=sorted({c.strip().upper() for c in countries}),
        overdue_only=overdue,
    )
    if since is not None:
        message.sent_since.CopyFrom(timestamp(since))
    if until is not None:
        message.sent_until.CopyFrom(timestamp(until))
    return message


Fetch = Callable[[str], pb.ListAuthoredReportsResponse]


def fetch_pages(fetch: Fetch, token: str, every: bool) -> pb.ListAuthoredReportsResponse:
    """One page from ``token``, or with ``every`` all pages from there joined
    into one reply (its next_page_token empty unless MAX_PAGES ran out)."""
    reply = fetch(token)
    pages = 1
    while every and reply.next_page_token and pages < MAX_PAGES:
        following = fetch(reply.next_page_token)
        reply.reports.extend(following.reports)
        reply.next_page_token = following.next_page_token
        pages += 1
    return reply


def _fetcher(target: Target, ch: grpc.Channel, where: pb.AuthoredReportFilter, size: int) -> Fetch:
    stub = pb_grpc.HotlineServiceStub(ch)

    def fetch(token: str) -> pb.ListAuthoredReportsResponse:
        request = pb.ListAuthoredReportsRequest(filters=where, page_size=size, page_token=token)
        return stub.ListAuthoredReports(request, timeout=DEADLINE, metadata=target.metadata)

    return fetch


def show(fmt: Format, reply: pb.ListAuthoredReportsResponse) -> None:
    """Print the page: table with totals under it, CSV rows, or one JSON object."""
    rows = [record(line) for line in reply.reports]
    summary = totals(reply)
    token = reply.next_page_token
    if fmt == "json":
        click.echo(json.dumps({"reports": rows, **summary, "next_page_token": token}, indent=2))
        return
    if fmt == "table":
        emit(fmt, COLUMNS, [{**r, "overdue": "OVERDUE" if r["overdue"] else ""} for r in rows])
    else:
        emit(fmt, CSV_COLUMNS, rows)
    # In CSV the file holds the rows only; what a person needs goes to stderr.
    to_stderr = fmt == "csv"
    if fmt == "table":
        click.echo(totals_line(summary))
    if token:
        click.echo(
            f"showing {len(rows)} of {summary['total']}; next page: --page-token {token}"
            " (or --all)",
            err=to_stderr,
        )


@click.command("list")
@node_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only reports whose latest status is this ('none': no status yet); repeatable.",
)
@click.option(
    "--country",
    "countries",
    multiple=True,
    type=COUNTRY,
    help="Only reports hosted here (ISO alpha-2); repeatable.",
)
@window_options("reports sent")
@click.option("--overdue", is_flag=True, help="Only reports whose takedown is overdue.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=50,
    show_default=True,
    help="Reports per page.",
)
@click.option("--page-token", default="", help="Continue where a previous page ended.")
@click.option("--all", "every", is_flag=True, help="Read every page.")
@FORMAT_OPTION
def list_reports(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    statuses: tuple[str, ...],
    countries: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    overdue: bool,
    limit: int,
    page_token: str,
    every: bool,
    fmt: Format,
) -> None:
    """Every report this hotline sent, where it went and its latest status.

    Shows the responsible member and its case (after a MOVED, the new owner
    and its case), the latest status that member signed, when the report
    was sent and whether the takedown is overdue; overdue reports first.
    Totals by status (over the whole filter) are printed under the table.
    """
    check_window(since, until)
    where = build_filter(statuses, countries, (since, until), overdue)
    target = resolve(config_path, devnet_dir, member)
    with channel(target) as ch:
        try:
            reply = fetch_pages(_fetcher(target, ch, where, limit), page_token, every)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    show(fmt, reply)
