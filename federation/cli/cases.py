"""``hfed case``: look at the cases this node holds.

Only click and the core's status names load with this module (so that
``hfed case --help`` is quick); the calls to the node are in
federation.cli.case_calls and what is printed in federation.cli.case_text.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from federation.cli.connect import node_options, resolve
from federation.cli.countries import COUNTRY
from federation.cli.output import FORMAT_OPTION, Format, emit, note_truncated
from federation.cli.times import check_window, window_options
from federation.core.case_status import CaseStatus
from federation.core.ids import is_uuid

LIST_COLUMNS = (
    "case_id",
    "status",
    "country",
    "reports",
    "reporters",
    "created",
    "overdue",
    "url",
)
STATUSES = [s.name.lower() for s in CaseStatus]


def _some_id(text: str, what: str) -> str:
    """A case or report id as the node spells it, or a usage error."""
    some_id = text.strip().lower()
    if not is_uuid(some_id):
        raise click.UsageError(f"{text!r} is not a {what} id (a UUID)")
    return some_id


@click.group()
def case() -> None:
    """Look at cases held by this hotline's node."""


@case.command()
@node_options
@click.argument("case_or_report_id")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="List every report and every status update, however many (paged from the node).",
)
def show(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    case_or_report_id: str,
    fmt: str,
    everything: bool,
) -> None:
    """Show one case, by its id or the id of any of its reports.

    A case shows its first 100 reports and, past 100 updates, its first 10
    and latest 90; --all pages through the rest.
    """
    from federation.cli.case_calls import fetch_case
    from federation.cli.case_text import print_case
    from federation.cli.protos import message_json

    some_id = _some_id(case_or_report_id, "case or report")
    found = fetch_case(resolve(config_path, devnet_dir, member), some_id, everything=everything)
    if fmt == "json":
        click.echo(message_json(found))
        return
    print_case(found)


@case.command("list")
@node_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only cases in this status (repeatable).",
)
@click.option(
    "--country", "countries", multiple=True, type=COUNTRY, help="Only this hosting country."
)
@click.option("--reporter", default="", help="Only cases with a report from this member.")
@click.option(
    "--overdue",
    is_flag=True,
    help="Only overdue takedowns (NOTICE_SENT longer than [takedown] overdue_after_hours).",
)
@window_options("cases opened")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many cases (a note on stderr says when more exist).",
)
@FORMAT_OPTION
def list_cases(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    statuses: tuple[str, ...],
    countries: tuple[str, ...],
    reporter: str,
    overdue: bool,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    fmt: Format,
) -> None:
    """List cases, newest first."""
    from federation.cli import case_calls
    from federation.cli.protos import timestamp
    from hfp.v1 import case_pb2

    check_window(since, until)
    target = resolve(config_path, devnet_dir, member)
    filters = case_pb2.CaseFilter(
        statuses=[case_calls.status_value(s) for s in statuses],
        hosting_countries=[c.upper() for c in countries],
        reporter_member_id=reporter,
        overdue_only=overdue,
        created_since=timestamp(since),
        created_until=timestamp(until),
    )
    rows, more = case_calls.list_cases(target, filters, limit)
    emit(fmt, LIST_COLUMNS, rows)
    if more:
        note_truncated(len(rows), "cases", "--status, --country, --overdue, --since/--until")


@case.command("status")
@node_options
@click.argument("case_id", metavar="CASE_OR_REPORT_ID")
@click.argument("status", type=click.Choice(STATUSES[1:], case_sensitive=False))
@click.option("--note", default="", help="Note sent with the update (≤ 2000 characters).")
@click.option(
    "--new-country", type=COUNTRY, default=None, help="For `moved`: the new hosting country."
)
def record(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    case_id: str,
    status: str,
    note: str,
    new_country: str | None,
) -> None:
    """Record STATUS for a case this hotline is responsible for, named by its id
    or the id of any of its reports (as `case show` takes).

    The update is signed and sent to every hotline that reported the case.
    Allowed order: received → assessed_illegal | assessed_not_illegal |
    content_gone | moved; assessed_illegal → lea_notified | notice_sent |
    content_removed | content_gone | moved; lea_notified → lea_hold | ...;
    notice_sent → notice_sent (repeat) | content_removed | content_gone | moved.
    """
    from federation.cli import case_calls
    from federation.cli.case_text import status_name
    from hfp.v1 import hotline_service_pb2 as pb

    target = resolve(config_path, devnet_dir, member)
    request = pb.RecordStatusRequest(
        case_id=_some_id(case_id, "case or report"),
        status=case_calls.status_value(status),
        note=note,
        new_hosting_country=new_country or "",
    )
    update = case_calls.record_status(target, request).update
    click.echo(
        f"case {update.case_id}: {status_name(update.status)} (update {update.sequence}, "
        f"answers {len(update.report_ids)} report(s); sent to their authors)"
    )
