"""Read models of a case, as a hotline analyst or a police liaison sees it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from crypto.dsse import Envelope
from federation.core.case_status import CaseStatus
from federation.core.ids import CaseId, MemberId, ReportId
from federation.core.report import Report
from federation.core.status_update import StatusUpdate

#: Most reports a case view carries: the earliest; the rest are paged.
MAX_CASE_REPORTS = 100
#: A longer history is shown as its first HISTORY_HEAD updates and its latest
#: HISTORY_TAIL: how the case began (received, assessed, police told) and
#: where it stands now; only repeated notices make the gap between.
HISTORY_HEAD = 10
HISTORY_TAIL = 90
#: Most known-content links a case view lists (in case id order).
MAX_CASE_LINKS = 100


@dataclass(frozen=True, slots=True)
class CaseReportView:
    """One report linked to a case, with the envelope it arrived in."""

    report_id: ReportId
    origin_member_id: MemberId
    received_at: datetime
    report: Report
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case with its reports and links, each list bounded (see the limits
    above); the counts tell how long each list really is."""

    case_id: CaseId
    canonical_url: str
    hosting_country: str
    responsible_member_id: MemberId
    status: CaseStatus
    reports: tuple[CaseReportView, ...]
    known_content_case_ids: tuple[CaseId, ...]
    reappearance_of_case_id: CaseId | Literal[""]
    created_at: datetime
    updated_at: datetime
    #: Applied status updates in order, with the envelopes they were signed in.
    history: tuple[StatusUpdate, ...] = ()
    history_envelopes: tuple[Envelope, ...] = ()
    police_acknowledged_at: datetime | None = None
    police_reference: str = ""
    hold_until: datetime | None = None
    hold_reason: str = ""
    overdue: bool = False
    #: Earliest creation time of its reports, where takedown time starts
    #: (None for a case from before it was recorded, and for tracked cases).
    first_reported_at: datetime | None = None
    #: When CONTENT_REMOVED was observed, if it was.
    removed_at: datetime | None = None
    #: How many reports, history entries and links there are in all.
    report_count: int = 0
    history_count: int = 0
    link_count: int = 0


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Filters for listing cases (empty fields do not filter)."""

    statuses: frozenset[int] = frozenset()
    hosting_countries: frozenset[str] = frozenset()
    created_since: datetime | None = None
    created_until: datetime | None = None
    reporter_member_id: MemberId | Literal[""] = ""
    overdue_only: bool = False
    #: Only the cases of this canonical URL.
    canonical_url: str = ""


class CaseEventKind(enum.IntEnum):
    """Kinds of case events; values equal the wire enum's."""

    CASE_OPENED = 1
    STATUS_CHANGED = 2
    REPORT_JOINED = 3
    ACKNOWLEDGED = 4
    HOLD_EXPIRED = 5
    HOLD_RELEASED = 6
    HOLD_REQUESTED = 7
