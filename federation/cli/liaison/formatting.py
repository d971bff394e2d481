"""What ``hfed liaison`` shows and writes: times, referral rows, events, CSV.

Everything here turns node messages (or the officer's input of times) into
text; nothing reaches the node. Formats are tolerant of values newer than
this client (an unknown status is shown by number, not refused).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from google.protobuf.timestamp_pb2 import Timestamp

from federation.cli.csv_safe import write_csv
from federation.cli.output import printable
from federation.cli.times import iso
from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import liaison_service_pb2 as pb

LIST_COLUMNS = (
    "case_id",
    "status",
    "country",
    "reports",
    "first_reported",
    "acknowledged",
    "hold_until",
    "url",
)
EXPORT_COLUMNS = (
    "case_id",
    "status",
    "hosting_country",
    "canonical_url",
    "first_reported_at",
    "reports",
    "reporters",
    "police_acknowledged_at",
    "police_reference",
    "hold_until",
    "hold_reason",
    "history",
    "hashes",
    "linked_cases",
    "reappearance_of",
)
REPORT_COLUMNS = ("report_id", "from", "received", "url")


# --- times (parsed and printed by federation.cli.times) ------------------------


def stamp(message: Any, name: str) -> datetime | None:
    """A Timestamp field as an aware datetime, or None when unset."""
    if not message.HasField(name):
        return None
    value: Timestamp = getattr(message, name)
    return value.ToDatetime(tzinfo=UTC)


def stamp_text(message: Any, name: str) -> str:
    moment = stamp(message, name)
    return "" if moment is None else iso(moment)


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


# --- rows and lines ------------------------------------------------------------


def status_name(value: int) -> str:
    """'ASSESSED_ILLEGAL' for CASE_STATUS_ASSESSED_ILLEGAL; tolerant of newer values."""
    try:
        return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]
    except ValueError:
        return f"STATUS_{value}"


def kind_name(value: int) -> str:
    """'CASE_OPENED' for CASE_EVENT_KIND_CASE_OPENED; tolerant of newer values."""
    try:
        return case_pb2.CaseEventKind.Name(value).removeprefix("CASE_EVENT_KIND_")  # type: ignore[arg-type]
    except ValueError:
        return f"KIND_{value}"


def first_reported(case: case_pb2.Case) -> datetime | None:
    """When the first report of the case was made (else when the case opened)."""
    moments = [stamp(r.report, "created_at") or stamp(r, "received_at") for r in case.reports]
    known = [m for m in moments if m is not None]
    return min(known) if known else stamp(case, "created_at")


def active_hold(case: case_pb2.Case, now: datetime) -> datetime | None:
    """The end of the case's police hold, if one is in force at ``now``."""
    until = stamp(case, "hold_until")
    return until if until is not None and until > now else None


def report_total(case: case_pb2.Case) -> int:
    """How many reports the case holds (a node before report_count sent them all)."""
    return max(case.report_count, len(case.reports))


def reporters_text(case: case_pb2.Case) -> str:
    """Authors of the reports listed with the case, ';'-separated; ';...' ends
    the list when the case holds more reports than it lists (see `reports`)."""
    names = sorted({r.origin_member_id for r in case.reports})
    return ";".join(names + (["..."] if report_total(case) > len(case.reports) else []))


def referral_row(case: case_pb2.Case, now: datetime) -> dict[str, Any]:
    """One line of ``list``."""
    first = first_reported(case)
    hold = active_hold(case, now)
    acknowledged = ""
    if case.HasField("police_acknowledged_at"):
        acknowledged = case.police_reference or "yes"
    return {
        "case_id": case.case_id,
        "status": status_name(case.status),
        "country": case.hosting_country,
        "reports": report_total(case),
        "first_reported": "" if first is None else iso(first),
        "acknowledged": acknowledged,
        "hold_until": "" if hold is None else iso(hold),
        "url": case.canonical_url,
    }


def export_row(case: case_pb2.Case) -> dict[str, Any]:
    """One row of ``export``: everything a case system needs, history compacted."""
    first = first_reported(case)
    history = ";".join(
        f"{status_name(u.status)}@{stamp_text(u, 'observed_at')}" for u in case.history
    )
    return {
        "case_id": case.case_id,
        "status": status_name(case.status),
        "hosting_country": case.hosting_country,
        "canonical_url": case.canonical_url,
        "first_reported_at": "" if first is None else iso(first),
        "reports": report_total(case),
        "reporters": reporters_text(case),
        "police_acknowledged_at": stamp_text(case, "police_acknowledged_at"),
        "police_reference": case.police_reference,
        "hold_until": stamp_text(case, "hold_until"),
        "hold_reason": case.hold_reason,
        "history": history,
        "hashes": hashes_text(case),
        "linked_cases": linked_text(case),
        "reappearance_of": case.reappearance_of_case_id,
    }


def hashes_text(case: case_pb2.Case) -> str:
    """Every content hash of the reports listed with the case, once each, as
    ALGORITHM:HEX separated by ';' (the form ``hfed report import`` reads)."""
    seen: dict[str, None] = {}
    for item in case.reports:
        for h in item.report.hashes:
            name = report_pb2.HashAlgorithm.Name(h.algorithm).removeprefix("HASH_ALGORITHM_")
            seen.setdefault(f"{name.lower()}:{h.value.hex()}")
    return ";".join(seen)


def linked_text(case: case_pb2.Case) -> str:
    """Cases linked by known content, ';'-separated, ending ';...' when the
    node holds more links than it listed."""
    ids = list(case.known_content_case_ids)
    more = case.known_content_case_count > len(ids)
    return ";".join(ids + (["..."] if more else []))


def event_record(response: pb.WatchReferralsResponse) -> dict[str, Any]:
    """An event as a flat record (the JSON form of ``watch``)."""
    event = response.event
    return {
        "occurred_at": stamp_text(event, "occurred_at"),
        "sequence": event.sequence,
        "kind": kind_name(event.kind),
        "case_id": event.case_id,
        "status": status_name(event.status),
        "hosting_country": event.case.hosting_country,
        "url": event.case.canonical_url,
        "cursor": response.cursor,
    }


def event_line(response: pb.WatchReferralsResponse) -> str:
    """An event as one line of text: time, kind, case id, status, url."""
    r = event_record(response)
    return printable(
        f"{r['occurred_at'] or '-':<20}  {r['kind']:<14}  {r['case_id']}  "
        f"{r['status']:<20}  {r['url']}"
    ).rstrip()


def report_row(report: case_pb2.CaseReport) -> dict[str, Any]:
    """One line of ``reports``."""
    return {
        "report_id": report.report_id,
        "from": report.origin_member_id,
        "received": stamp_text(report, "received_at"),
        "url": report.report.url,
    }


# --- export files --------------------------------------------------------------


def csv_text(rows: Iterable[Mapping[str, Any]], *, excel: bool = False) -> str:
    """The export's CSV (header first, CRLF line ends as RFC 4180 has them),
    safe to open in a spreadsheet (``cli/csv_safe.py``)."""
    text = io.StringIO(newline="")
    write_csv(text, EXPORT_COLUMNS, rows, excel=excel)
    return text.getvalue()


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, else one per step."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        """Show the latest progress."""
        self._shown = True
        if self._tty:
            click.echo(f"\r{text}", err=True, nl=False)
        else:
            click.echo(text, err=True)

    def done(self) -> None:
        """End the progress line."""
        if self._shown and self._tty:
            click.echo("", err=True)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a failed export must not
    leave a half file that a case system imports."""
    target = path.resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
