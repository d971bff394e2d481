"""The reports this node authored, seen from the reporter's side (pure).

A report of ours goes through one or more cases: ours when we were
responsible, else the case of the member we sent it to, and after each MOVED
the case of the member it was handed to. What we know of each case comes
from its signed status updates (ours, or received from its owner); the
report's *current* case is the last one it reached that has not been moved
on. Listing, filtering, ordering, paging and totals are decided here over
plain values; storage and the wire stay outside.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from federation.core.case_status import CaseStatus
from federation.core.deadline import DEFAULT_OVERDUE_AFTER, notice_overdue
from federation.core.ids import CaseId, MemberId, ReportId
from federation.core.stats import TAKEDOWN_WINDOW, DurationFigures, duration_figures

#: The status filter's value for "no status received yet".
NO_STATUS = 0


class Delivery(enum.IntEnum):
    """What happened when a report left this node; values equal the wire enum's."""

    UNKNOWN = 0
    FILED_HERE = 1
    QUEUED = 2
    DELIVERED = 3
    REJECTED = 4


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the applied history of one case says (see case_facts)."""

    status: CaseStatus | None = None
    status_at: datetime | None = None
    #: observed_at of the latest NOTICE_SENT (a repeat restarts the clock).
    notice_sent_at: datetime | None = None
    removed_at: datetime | None = None


def case_facts(history: Iterable[tuple[int, int, datetime]]) -> CaseFacts:
    """The facts of one case from its applied (sequence, status, observed_at)."""
    status: CaseStatus | None = None
    status_at = notice = removed = None
    for _, value, at in sorted(history, key=lambda step: step[0]):
        status, status_at = CaseStatus(value), at
        if status is CaseStatus.NOTICE_SENT:
            notice = at
        elif status is CaseStatus.CONTENT_REMOVED:
            removed = at
    return CaseFacts(status, status_at, notice, removed)


@dataclass(frozen=True, slots=True)
class CaseStep:
    """One case a report of ours reached, as we know it."""

    case_id: CaseId
    responsible_member_id: MemberId | Literal[""]
    #: When our report joined it (filed here) or was first named in it.
    reached_at: datetime
    facts: CaseFacts
    #: For a case that was MOVED: the country it was moved to.
    moved_to_country: str = ""

    @property
    def moved(self) -> bool:
        """True when the case handed its reports on."""
        return self.facts.status is CaseStatus.MOVED


def current_step(steps: Sequence[CaseStep]) -> CaseStep | None:
    """The case a report is in now: the last one it reached that was not moved
    on; when every one was (the next owner has not written yet), the last."""
    ordered = sorted(steps, key=lambda s: (s.reached_at, s.case_id))
    standing = [s for s in ordered if not s.moved] or ordered
    return standing[-1] if standing else None


@dataclass(frozen=True, slots=True)
class AuthoredReport:
    """A report this node authored and what we know of where it went."""

    report_id: ReportId
    canonical_url: str
    #: The country the report itself names.
    hosting_country: str
    sent_at: datetime
    #: The member responsible when it was sent (spec section 10.1).
    first_owner_member_id: MemberId
    delivery: Delivery
    steps: tuple[CaseStep, ...] = ()
    #: The case the first owner's receipt named (before any update did).
    receipt_case_id: CaseId | Literal[""] = ""


@dataclass(frozen=True, slots=True)
class AuthoredView:
    """One line of the reporter's list: a report and its latest known state."""

    report_id: ReportId
    canonical_url: str
    hosting_country: str
    sent_at: datetime
    since_sent: timedelta
    first_owner_member_id: MemberId
    responsible_member_id: MemberId | Literal[""]
    case_id: CaseId | Literal[""]
    status: CaseStatus | None
    status_at: datetime | None
    overdue: bool
    moves: int
    delivery: Delivery
    removed_at: datetime | None


def authored_view(
    report: AuthoredReport, now: datetime, overdue_after: timedelta = DEFAULT_OVERDUE_AFTER
) -> AuthoredView:
    """Where a report stands now, by the node's deadline rule."""
    step = current_step(report.steps)
    facts = step.facts if step else CaseFacts()
    reached = step.reached_at if step else None
    moved = [s for s in report.steps if s.moved and (reached is None or s.reached_at <= reached)]
    country = max(moved, key=lambda s: s.reached_at).moved_to_country if moved else ""
    return AuthoredView(
        report_id=report.report_id,
        canonical_url=report.canonical_url,
        hosting_country=country or report.hosting_country,
        sent_at=report.sent_at,
        since_sent=now - report.sent_at,
        first_owner_member_id=report.first_owner_member_id,
        responsible_member_id=step.responsible_member_id if step else report.first_owner_member_id,
        case_id=step.case_id if step else report.receipt_case_id,
        status=facts.status,
        status_at=facts.status_at,
        overdue=notice_overdue(facts.status, facts.notice_sent_at, now, overdue_after),
        moves=len(moved),
        delivery=report.delivery,
        removed_at=facts.removed_at,
    )


@dataclass(frozen=True, slots=True)
class AuthoredFilter:
    """Which authored reports to list; empty fields do not filter."""

    #: Latest statuses (CaseStatus values, NO_STATUS for none yet).
    statuses: frozenset[int] = frozenset()
    hosting_countries: frozenset[str] = frozenset()
    sent_since: datetime | None = None
    sent_until: datetime | None = None
    overdue_only: bool = False


def matches(view: AuthoredView, where: AuthoredFilter) -> bool:
    """True when the report is one the filter selects."""
    status = int(view.status) if view.status is not None else NO_STATUS
    return (
        (not where.statuses or status in where.statuses)
        and (not where.hosting_countries or view.hosting_country in where.hosting_countries)
        and (where.sent_since is None or view.sent_at >= where.sent_since)
        and (where.sent_until is None or view.sent_at < where.sent_until)
        and (view.overdue or not where.overdue_only)
    )


#: Where a page starts: (overdue, sent_at, report_id) of the last line before it.
PageKey = tuple[bool, datetime, ReportId]


def order_key(view: AuthoredView) -> tuple[int, float, str]:
    """The list's order: overdue first, then newest sent first, then by id."""
    return (0 if view.overdue else 1, -view.sent_at.timestamp(), view.report_id)


def _key_order(key: PageKey) -> tuple[int, float, str]:
    overdue, sent_at, report_id = key
    return (0 if overdue else 1, -sent_at.timestamp(), report_id)


@dataclass(frozen=True, slots=True)
class AuthoredPage:
    """One page of the list, where the next starts, and totals over the filter."""

    views: list[AuthoredView]
    next_key: PageKey | None
    total: int
    by_status: dict[int, int]
    overdue_count: int


def page_of(
    views: Iterable[AuthoredView], where: AuthoredFilter, after: PageKey | None, size: int
) -> AuthoredPage:
    """The ``size`` lines after ``after`` of the filtered, ordered list, and
    the totals of the whole filter (the same on every page)."""
    selected = sorted((v for v in views if matches(v, where)), key=order_key)
    start = [v for v in selected if after is None or order_key(v) > _key_order(after)]
    page = start[:size]
    last = page[-1] if len(start) > size else None
    return AuthoredPage(
        views=page,
        next_key=(last.overdue, last.sent_at, last.report_id) if last else None,
        total=len(selected),
        by_status=status_counts(selected),
        overdue_count=sum(v.overdue for v in selected),
    )


def status_counts(views: Iterable[AuthoredView]) -> dict[int, int]:
    """How many reports per latest status (NO_STATUS: none received yet)."""
    return dict(Counter(int(v.status) if v.status is not None else NO_STATUS for v in views))


@dataclass(frozen=True, slots=True)
class ReporterStats:
    """The reporter's side of the statistics: our reports and their takedowns."""

    report_count: int
    by_status: dict[int, int]
    removed: DurationFigures
    overdue_count: int


def reporter_stats(
    views: Sequence[AuthoredView], window: timedelta = TAKEDOWN_WINDOW
) -> ReporterStats:
    """Our reports by latest status; time from sending to CONTENT_REMOVED
    (median, 90th percentile, share within ``window``); how many are overdue."""
    times = [
        v.removed_at - v.sent_at
        for v in views
        if v.status is CaseStatus.CONTENT_REMOVED and v.removed_at is not None
    ]
    return ReporterStats(
        report_count=len(views),
        by_status=status_counts(views),
        removed=duration_figures(times, window),
        overdue_count=sum(v.overdue for v in views),
    )
