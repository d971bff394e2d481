"""Submitting reports: one by form, or many from a CSV file with a result per row.

The fields and the CSV columns are those of `hfed report submit` and
`hfed report import` (``federation.cli.reports.build_report``): the console
turns text into a Report the same way the command line does, and the node
checks it like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation.cli.import_source import COLUMNS, Record, SourceError, open_source, records
from federation.cli.report_errors import RowError
from federation.cli.reports import AGE, CLASSIFICATION, MEDIA, build_report
from federation.console.node_client import NodeRefusalError
from federation.console.users import Role
from federation.console.web import (
    Console,
    Visitor,
    form_of,
    form_route,
    page_route,
    refusal_context,
    text,
)
from hfp.v1 import receipt_pb2

#: The form's fields, as build_report reads them.
FIELDS = COLUMNS
#: Largest CSV file accepted, and most rows in one.
MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_CSV_ROWS = 2000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one submitted report (or why it was not submitted)."""

    row: int
    url: str
    outcome: str
    report_id: str = ""
    case_id: str = ""
    forwarded_to: str = ""
    error: str = ""

    @property
    def failed(self) -> bool:
        """True when the report was not submitted, or the node rejected it."""
        return self.outcome in ("ERROR", "REJECTED")


def outcome_of(row: int, url: str, receipt: receipt_pb2.Receipt) -> Outcome:
    """The result line of a receipt."""
    name = receipt_pb2.Outcome.Name(receipt.outcome).removeprefix("OUTCOME_")
    rejected = receipt.outcome == receipt_pb2.OUTCOME_REJECTED
    # A case id names a case here only when the report was filed here.
    case_id = "" if receipt.forwarded_to else receipt.case_id
    return Outcome(
        row,
        url,
        name,
        receipt.item_id,
        case_id,
        receipt.forwarded_to,
        receipt.detail if rejected else "",
    )


#: The fields chosen from a list, and their choices (as `hfed report submit` takes them).
CHOICES: dict[str, list[str]] = {
    "media_type": list(MEDIA),
    "classification": list(CLASSIFICATION),
    "victim_age_group": list(AGE),
}


def _context(who: Visitor, **extra: Any) -> dict[str, Any]:
    return {
        "me": who.user,
        "csrf": who.session.csrf,
        "choices": CHOICES,
        "columns": COLUMNS,
        "results": [],
        **extra,
    }


async def submit_page(console: Console, request: Request, who: Visitor) -> Response:
    """GET /submit: the form and the CSV upload."""
    return console.page(request, "submit.html", _context(who, values={}))


async def submit_one(console: Console, request: Request, who: Visitor) -> Response:
    """POST /submit: one report from the form."""
    form = form_of(request)
    values = {name: text(form, name, 4096) for name in FIELDS}
    result = await _submit(console, who, 1, values)
    status = 400 if result.failed else 200
    context = _context(who, values={} if status == 200 else values, results=[result])
    return console.page(request, "submit.html", context, status)


async def _submit(console: Console, who: Visitor, row: int, fields: dict[str, str]) -> Outcome:
    url = fields.get("url", "")
    try:
        report = build_report(fields)
        receipt = await console.call(console.node.submit, who.user.name, report)
    except RowError as exc:
        return Outcome(row, url, "ERROR", error=str(exc))
    except NodeRefusalError as exc:
        if exc.reason == "NODE_UNAVAILABLE":
            raise
        refused = refusal_context(exc)
        return Outcome(row, url, "ERROR", error=f"{refused['reason']}: {refused['detail']}")
    return outcome_of(row, url, receipt)


def csv_rows(data: bytes) -> tuple[str, list[Record]]:
    """How an uploaded CSV is read (encoding, delimiter, columns) and its rows.

    Read by the importer's own rules (federation.cli.import_source), so a
    file the console takes is one `hfed report import` takes, and the other
    way round; a row whose quoting is broken comes back with its error.
    """
    source = open_source(data)
    rows = list(records(source))
    if len(rows) > MAX_CSV_ROWS:
        raise SourceError(f"at most {MAX_CSV_ROWS} rows in one file (this one has {len(rows)})")
    return source.describe(), rows


async def _row_outcome(console: Console, who: Visitor, row: Record) -> Outcome:
    if row.error:
        return Outcome(row.line, row.fields.get("url", ""), "ERROR", error=row.error)
    return await _submit(console, who, row.line, row.fields)


async def _upload(form: Any) -> bytes:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RowError("choose a CSV file")
    data = await upload.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise RowError(f"the file is over {MAX_CSV_BYTES // 1024 // 1024} MiB")
    return data


async def submit_csv(console: Console, request: Request, who: Visitor) -> Response:
    """POST /submit/csv: every row of an uploaded CSV, each with its own result."""
    try:
        how, rows = csv_rows(await _upload(form_of(request)))
    except (RowError, SourceError) as exc:
        context = _context(who, values={}, csv_error=str(exc))
        return console.page(request, "submit.html", context, 400)
    results = [await _row_outcome(console, who, row) for row in rows]
    failed = sum(1 for r in results if r.failed)
    summary = f"{len(results) - failed} submitted, {failed} failed (read as {how})"
    context = _context(who, values={}, results=results, summary=summary)
    return console.page(request, "submit.html", context)


def routes(console: Console) -> list[Route]:
    """The submission routes of ``console``."""
    return [
        page_route(console, "/submit", Role.ANALYST, submit_page),
        form_route(console, "/submit", Role.ANALYST, submit_one),
        form_route(console, "/submit/csv", Role.ANALYST, submit_csv),
    ]
