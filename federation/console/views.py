"""What the pages show, made from the node's protobuf answers.

Plain values only: the templates escape everything they print, and nothing
here builds markup. A reported URL stays a string shown as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from federation.console.signatures import Verdict
from hfp.v1 import case_pb2, report_pb2, status_pb2
from hfp.v1 import hotline_service_pb2 as pb


def status_name(value: int) -> str:
    """``NOTICE_SENT`` for CASE_STATUS_NOTICE_SENT."""
    return status_pb2.CaseStatus.Name(value).removeprefix("CASE_STATUS_")  # type: ignore[arg-type]


#: Every status a case can be in, by number (for the inbox filter).
STATUSES: tuple[tuple[int, str], ...] = tuple(
    (number, status_name(number)) for number in status_pb2.CaseStatus.values()[1:]
)


def when(message: Message, field: str) -> str:
    """A timestamp field as ``2026-12-04 03:58:10Z``; empty when unset."""
    if not message.HasField(field):
        return ""
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def held(case: case_pb2.Case, now: datetime) -> bool:
    """True while a police hold is active (as the node reports hold_until)."""
    return case.HasField("hold_until") and case.hold_until.ToDatetime(tzinfo=UTC) > now


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One line of the inbox."""

    case_id: str
    status: str
    country: str
    url: str
    reports: int
    created: str
    overdue: bool
    held: bool


def case_row(case: case_pb2.Case, now: datetime) -> CaseRow:
    """The inbox line of a case."""
    return CaseRow(
        case.case_id,
        status_name(case.status),
        case.hosting_country,
        case.canonical_url,
        max(case.report_count, len(case.reports)),
        when(case, "created_at"),
        case.overdue,
        held(case, now),
    )


@dataclass(frozen=True, slots=True)
class ReportView:
    """One report of a case, every field as text."""

    report_id: str
    origin: str
    received: str
    url: str
    hashes: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    note: str


def _enum(enum: object, value: int, prefix: str) -> str:
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.removeprefix(prefix)


def _hash(h: report_pb2.ContentHash) -> str:
    return f"{_enum(report_pb2.HashAlgorithm, h.algorithm, 'HASH_ALGORITHM_')} {h.value.hex()}"


def report_view(item: case_pb2.CaseReport) -> ReportView:
    """The case page's account of one report."""
    r = item.report
    fields = (
        ("Created", when(r, "created_at")),
        ("Media type", _enum(report_pb2.MediaType, r.media_type, "MEDIA_TYPE_")),
        ("Classification", _enum(report_pb2.Classification, r.classification, "CLASSIFICATION_")),
        (
            "Victim age group",
            _enum(report_pb2.VictimAgeGroup, r.victim_age_group, "VICTIM_AGE_GROUP_"),
        ),
        ("Hosting country", r.hosting_country),
        ("Hosting IP", r.hosting_ip),
        ("Hosting ASN", str(r.hosting_asn) if r.hosting_asn else ""),
        ("Site type", r.site_type),
    )
    return ReportView(
        item.report_id,
        item.origin_member_id,
        when(item, "received_at"),
        r.url,
        tuple(_hash(h) for h in r.hashes),
        tuple((k, v) for k, v in fields if v and v != "UNSPECIFIED"),
        r.analyst_note,
    )


@dataclass(frozen=True, slots=True)
class UpdateView:
    """One entry of a case's signed history."""

    sequence: int
    status: str
    observed: str
    member: str
    note: str
    new_country: str
    signature: Verdict


def update_view(u: status_pb2.StatusUpdate, signature: Verdict) -> UpdateView:
    """The case page's account of one status update and of its signature."""
    return UpdateView(
        u.sequence,
        status_name(u.status),
        when(u, "observed_at"),
        u.member_id,
        u.note,
        u.new_hosting_country,
        signature,
    )


@dataclass(frozen=True, slots=True)
class CaseView:
    """Everything the case page shows."""

    row: CaseRow
    responsible: str
    reports: tuple[ReportView, ...]
    report_count: int
    history: tuple[UpdateView, ...]
    history_count: int
    known_content: tuple[str, ...]
    reappearance_of: str
    acknowledged: str
    police_reference: str
    hold_until: str
    hold_reason: str
    next_statuses: tuple[tuple[int, str], ...]


def case_view(answer: pb.GetCaseResponse, now: datetime, signatures: Sequence[Verdict]) -> CaseView:
    """The case page of a GetCase answer (next statuses as the node offered
    them, one signature verdict per history entry)."""
    c = answer.case
    return CaseView(
        case_row(c, now),
        c.responsible_member_id,
        tuple(report_view(r) for r in c.reports),
        max(c.report_count, len(c.reports)),
        tuple(update_view(u, v) for u, v in zip(c.history, signatures, strict=True)),
        max(c.history_count, len(c.history)),
        tuple(c.known_content_case_ids),
        c.reappearance_of_case_id,
        when(c, "police_acknowledged_at"),
        c.police_reference,
        when(c, "hold_until") if held(c, now) else "",
        c.hold_reason if held(c, now) else "",
        tuple((s, status_name(s)) for s in answer.next_statuses),
    )
