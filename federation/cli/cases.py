"""``hfed case``: look at the cases this node holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf.json_format import MessageToDict

from federation.cli.connect import DEADLINE, channel, node_options, resolve, rpc_failure
from federation.cli.countries import COUNTRY
from federation.cli.output import FORMAT_OPTION, Format, emit, print_table, printable
from federation.core.ids import is_uuid
from hfp.v1 import case_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as pb
from hfp.v1 import hotline_service_pb2_grpc as pb_grpc

LIST_COLUMNS = ("case_id", "status", "country", "reports", "reporters", "created", "url")
STATUSES = [n.removeprefix("CASE_STATUS_").lower() for n in status_pb2.CaseStatus.keys()[1:]]


def _status_name(value: int) -> str:
    return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]


def report_total(case: case_pb2.Case) -> int:
    """How many reports the case holds (a node before report_count sent them all)."""
    return max(case.report_count, len(case.reports))


def _reporters(case: case_pb2.Case) -> str:
    """Authors of the listed reports; "..." when the case holds more than listed."""
    names = sorted({r.origin_member_id for r in case.reports})
    return ",".join(names + (["..."] if report_total(case) > len(case.reports) else []))


def _summary(case: case_pb2.Case) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "status": _status_name(case.status),
        "country": case.hosting_country,
        "reports": report_total(case),
        "reporters": _reporters(case),
        "created": case.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S"),
        "url": case.canonical_url,
    }


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
    if not is_uuid(case_or_report_id):
        raise click.UsageError(f"{case_or_report_id!r} is not a case or report id (a UUID)")
    target = resolve(config_path, devnet_dir, member)
    with channel(target) as ch:
        stub = pb_grpc.HotlineServiceStub(ch)
        try:
            found = _get(stub, target.metadata, case_or_report_id)
            if everything:
                _fill(stub, target.metadata, found)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    if fmt == "json":
        click.echo(MessageToDict(found, preserving_proto_field_name=True))
        return
    _print_case(found)


#: Most pages --all reads of one list (a million entries at 100 a page).
MAX_PAGES = 10_000


def _fill(stub: pb_grpc.HotlineServiceStub, metadata: Any, case: case_pb2.Case) -> None:
    """Replace the case's bounded lists with every report and update, paged."""
    if report_total(case) > len(case.reports):
        reports = _pages(
            lambda token: stub.ListCaseReports(
                pb.ListCaseReportsRequest(case_id=case.case_id, page_size=100, page_token=token),
                timeout=DEADLINE,
                metadata=metadata,
            )
        )
        del case.reports[:]
        case.reports.extend(r for page in reports for r in page.reports)
    if case.history_count > len(case.history):
        # The case's own updates (in a reporter's view of a moved case, the
        # cases before the move are not paged here).
        history = _pages(
            lambda token: stub.ListCaseHistory(
                pb.ListCaseHistoryRequest(case_id=case.case_id, page_size=100, page_token=token),
                timeout=DEADLINE,
                metadata=metadata,
            )
        )
        del case.history[:], case.history_envelopes[:]
        for page in history:
            case.history.extend(page.history)
            case.history_envelopes.extend(page.history_envelopes)


Paged = TypeVar("Paged", pb.ListCaseReportsResponse, pb.ListCaseHistoryResponse)


def _pages(call: Callable[[str], Paged]) -> list[Paged]:
    """Every page of a list, following next_page_token (at most MAX_PAGES)."""
    pages: list[Paged] = []
    token = ""
    for _ in range(MAX_PAGES):
        pages.append(call(token))
        token = pages[-1].next_page_token
        if not token:
            break
    return pages


def _get(stub: pb_grpc.HotlineServiceStub, metadata: Any, some_id: str) -> case_pb2.Case:
    try:
        return stub.GetCase(
            pb.GetCaseRequest(case_id=some_id), timeout=DEADLINE, metadata=metadata
        ).case
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.NOT_FOUND:
            raise
    return stub.GetCase(
        pb.GetCaseRequest(report_id=some_id), timeout=DEADLINE, metadata=metadata
    ).case


def _print_case(c: case_pb2.Case) -> None:
    click.echo(f"case {c.case_id}")
    for label, value in (
        ("status", _status_name(c.status)),
        ("url", c.canonical_url),
        ("hosting country", c.hosting_country),
        ("responsible", c.responsible_member_id),
        ("opened", c.created_at.ToDatetime().isoformat(timespec="seconds") + "Z"),
        ("reappearance of", c.reappearance_of_case_id),
        ("same content as", ", ".join(c.known_content_case_ids)),
    ):
        if value:
            click.echo(f"  {label:<16} {printable(value)}")
    click.echo(f"\nreports ({_shown(len(c.reports), report_total(c), 'the first ones')}):")
    print_table(
        ("REPORT", "FROM", "RECEIVED", "URL AS REPORTED"),
        [
            (
                r.report_id,
                r.origin_member_id,
                r.received_at.ToDatetime().isoformat(timespec="seconds") + "Z",
                r.report.url,
            )
            for r in c.reports
        ],
    )
    if c.history:
        total = max(c.history_count, len(c.history))
        click.echo(f"\nhistory ({_shown(len(c.history), total, 'the first and the latest')}):")
        print_table(
            ("SEQ", "STATUS", "OBSERVED", "NOTE"),
            [
                (
                    u.sequence,
                    _status_name(u.status),
                    u.observed_at.ToDatetime().isoformat(timespec="seconds") + "Z",
                    u.note,
                )
                for u in c.history
            ],
        )


def _shown(listed: int, total: int, which: str) -> str:
    """How many entries are listed: "N", or "N of M (which); --all lists every one"."""
    if listed >= total:
        return str(total)
    return f"{listed} of {total}, {which}; --all lists every one"


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
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="At most this many cases.",
)
@FORMAT_OPTION
def list_cases(
    config_path: Path | None,
    devnet_dir: Path | None,
    member: str | None,
    statuses: tuple[str, ...],
    countries: tuple[str, ...],
    reporter: str,
    limit: int,
    fmt: Format,
) -> None:
    """List cases, newest first."""
    target = resolve(config_path, devnet_dir, member)
    filters = case_pb2.CaseFilter(
        statuses=[status_pb2.CaseStatus.Value(f"CASE_STATUS_{s.upper()}") for s in statuses],
        hosting_countries=[c.upper() for c in countries],
        reporter_member_id=reporter,
    )
    rows: list[dict[str, Any]] = []
    token = ""
    with channel(target) as ch:
        stub = pb_grpc.HotlineServiceStub(ch)
        while len(rows) < limit:
            request = pb.ListCasesRequest(
                filters=filters, page_size=min(limit - len(rows), 500), page_token=token
            )
            try:
                page = stub.ListCases(request, timeout=DEADLINE, metadata=target.metadata)
            except grpc.RpcError as exc:
                raise rpc_failure(exc, target) from exc
            rows.extend(_summary(c) for c in page.cases)
            token = page.next_page_token
            if not token:
                break
    emit(fmt, LIST_COLUMNS, rows)


@case.command("status")
@node_options
@click.argument("case_id")
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
    """Record STATUS for CASE_ID (a case this hotline is responsible for).

    The update is signed and sent to every hotline that reported the case.
    Allowed order: received → assessed_illegal | assessed_not_illegal |
    content_gone | moved; assessed_illegal → lea_notified | notice_sent |
    content_removed | content_gone | moved; lea_notified → lea_hold | ...;
    notice_sent → notice_sent (repeat) | content_removed | content_gone | moved.
    """
    target = resolve(config_path, devnet_dir, member)
    request = pb.RecordStatusRequest(
        case_id=case_id,
        status=status_pb2.CaseStatus.Value(f"CASE_STATUS_{status.upper()}"),
        note=note,
        new_hosting_country=new_country or "",
    )
    with channel(target) as ch:
        try:
            reply = pb_grpc.HotlineServiceStub(ch).RecordStatus(
                request, timeout=DEADLINE, metadata=target.metadata
            )
        except grpc.RpcError as exc:
            raise rpc_failure(exc, target) from exc
    update = reply.update
    click.echo(
        f"case {update.case_id}: {_status_name(update.status)} (update {update.sequence}, "
        f"answers {len(update.report_ids)} report(s); sent to their authors)"
    )
