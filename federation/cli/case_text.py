"""What ``hfed case`` prints: list rows, the text view of one case, its JSON.

Imported when a case command runs (it needs the generated protocol code).
Times are ISO 8601 UTC with ``Z`` (federation.cli.times.iso).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
from google.protobuf.timestamp_pb2 import Timestamp

from federation.cli.output import print_table, printable
from federation.cli.times import iso
from federation.runtime.clock import utc_now
from hfp.v1 import case_pb2, report_pb2, status_pb2


def status_name(value: int) -> str:
    """A case status as the CLI spells it (``NOTICE_SENT``); unknown ones by number."""
    if value not in status_pb2.CaseStatus.values():
        return str(value)
    return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]


def when(stamp: Timestamp) -> str:
    """A set Timestamp in the one time format; "" when unset."""
    return iso(stamp.ToDatetime()) if stamp.seconds or stamp.nanos else ""


def report_total(case: case_pb2.Case) -> int:
    """How many reports the case holds (a node before report_count sent them all)."""
    return max(case.report_count, len(case.reports))


def _reporters(case: case_pb2.Case) -> str:
    """Authors of the listed reports; "..." when the case holds more than listed."""
    names = sorted({r.origin_member_id for r in case.reports})
    return ",".join(names + (["..."] if report_total(case) > len(case.reports) else []))


def summary(case: case_pb2.Case) -> dict[str, Any]:
    """One row of ``case list``."""
    return {
        "case_id": case.case_id,
        "status": status_name(case.status),
        "country": case.hosting_country,
        "reports": report_total(case),
        "reporters": _reporters(case),
        "created": when(case.created_at),
        "overdue": case.overdue,
        "url": case.canonical_url,
    }


# --- the text view -----------------------------------------------------------------


def print_case(c: case_pb2.Case) -> None:
    """The whole case for an analyst: facts, police state, reports, history."""
    click.echo(f"case {c.case_id}")
    for label, value in _facts(c):
        if value:
            click.echo(f"  {label:<16} {printable(value)}")
    click.echo(f"\nreports ({_shown(len(c.reports), report_total(c), 'the first ones')}):")
    print_table(
        ("REPORT", "FROM", "RECEIVED", "URL AS REPORTED"),
        [(r.report_id, r.origin_member_id, when(r.received_at), r.report.url) for r in c.reports],
    )
    for listed in c.reports:
        _print_report_details(listed)
    if c.history:
        total = max(c.history_count, len(c.history))
        click.echo(f"\nhistory ({_shown(len(c.history), total, 'the first and the latest')}):")
        print_table(("CASE", "SEQ", "STATUS", "BY", "OBSERVED", "NOTE"), list(_history_rows(c)))


def _facts(c: case_pb2.Case) -> list[tuple[str, str]]:
    return [
        ("status", status_name(c.status) + (" (takedown overdue)" if c.overdue else "")),
        ("url", c.canonical_url),
        ("hosting country", c.hosting_country),
        ("responsible", c.responsible_member_id),
        ("opened", when(c.created_at)),
        ("updated", when(c.updated_at)),
        ("reappearance of", c.reappearance_of_case_id),
        ("same content as", ", ".join(c.known_content_case_ids)),
        ("police", _police(c)),
        ("hold", _hold(c)),
    ]


def _police(c: case_pb2.Case) -> str:
    """Whether the police liaison acknowledged the referral, and its reference."""
    at = when(c.police_acknowledged_at)
    if not at:
        return ""
    return f"acknowledged {at}" + (
        f", reference {c.police_reference}" if c.police_reference else ""
    )


def _hold(c: case_pb2.Case) -> str:
    """An active police hold (no notice to the provider until it ends)."""
    if not c.HasField("hold_until") or c.hold_until.ToDatetime() <= utc_now().replace(tzinfo=None):
        return ""
    reason = f": {c.hold_reason}" if c.hold_reason else ""
    return f"ACTIVE until {when(c.hold_until)} (notice_sent is refused meanwhile){reason}"


def _print_report_details(listed: case_pb2.CaseReport) -> None:
    """The reporter's details of one report, those it gave."""
    r = listed.report
    lines = [
        ("media type", _enum_name(report_pb2.MediaType, r.media_type, "MEDIA_TYPE_")),
        (
            "classification",
            _enum_name(report_pb2.Classification, r.classification, "CLASSIFICATION_"),
        ),
        ("hashes", ", ".join(_hash_text(h) for h in r.hashes)),
        ("hosting", _hosting(r)),
        ("site type", r.site_type),
        ("note", r.analyst_note),
    ]
    shown = [(label, value) for label, value in lines if value]
    if shown:
        click.echo(f"  report {listed.report_id}")
        for label, value in shown:
            click.echo(f"    {label:<14} {printable(value)}")


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    """An enum value's name without its prefix; "" when unspecified."""
    if value == 0:
        return ""
    if value not in enum.values():
        return str(value)
    return str(enum.Name(value)).removeprefix(prefix)


def _hash_text(h: report_pb2.ContentHash) -> str:
    """``sha256:HEX``, as `hfed report` takes it."""
    name = _enum_name(report_pb2.HashAlgorithm, h.algorithm, "HASH_ALGORITHM_").lower()
    return f"{name}:{h.value.hex()}"


def _hosting(r: report_pb2.Report) -> str:
    parts = [r.hosting_country, r.hosting_ip, f"AS{r.hosting_asn}" if r.hosting_asn else ""]
    return ", ".join(p for p in parts if p)


def _history_rows(c: case_pb2.Case) -> Iterable[tuple[Any, ...]]:
    """History entries, each with the case it belongs to: a reporter's view of a
    moved case holds the updates of the cases before the move too."""
    for u in c.history:
        moved = f"moved to {u.new_hosting_country}" if u.new_hosting_country else ""
        note = "; ".join(p for p in (moved, u.note) if p)
        here = "" if u.case_id == c.case_id else " (before move)"
        yield (
            u.case_id + here,
            u.sequence,
            status_name(u.status),
            u.member_id,
            when(u.observed_at),
            note,
        )


def _shown(listed: int, total: int, which: str) -> str:
    """How many entries are listed: "N", or "N of M (which); --all lists every one"."""
    if listed >= total:
        return str(total)
    return f"{listed} of {total}, {which}; --all lists every one"
