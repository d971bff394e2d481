"""Read models of a case, as a hotline analyst or a police liaison sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crypto.dsse import Envelope
from federation.core.case_status import CaseStatus
from federation.core.report import Report


@dataclass(frozen=True, slots=True)
class CaseReportView:
    """One report linked to a case, with the envelope it arrived in."""

    report_id: str
    origin_member_id: str
    received_at: datetime
    report: Report
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case with its reports and links."""

    case_id: str
    canonical_url: str
    hosting_country: str
    responsible_member_id: str
    status: CaseStatus
    reports: tuple[CaseReportView, ...]
    known_content_case_ids: tuple[str, ...]
    reappearance_of_case_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Filters for listing cases (empty fields do not filter)."""

    statuses: frozenset[int] = frozenset()
    hosting_countries: frozenset[str] = frozenset()
    created_since: datetime | None = None
    created_until: datetime | None = None
    reporter_member_id: str = ""
