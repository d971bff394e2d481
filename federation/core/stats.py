"""Takedown statistics over cases (pure)."""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from federation.core.case import CaseView
from federation.core.case_status import CaseStatus, is_open
from federation.core.ids import CaseId

TAKEDOWN_WINDOW = timedelta(hours=72)
#: Upper bounds of the takedown-time distribution's buckets; a last bucket
#: holds everything longer. Fixed, so that periods compare bucket by bucket;
#: the 72-hour window is one of the edges.
TAKEDOWN_BUCKETS: tuple[timedelta, ...] = (
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
    timedelta(hours=48),
    timedelta(hours=72),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=30),
)

#: (upper bound or None for "longer", count) per bucket.
Histogram = tuple[tuple[timedelta | None, int], ...]


def histogram(
    durations: Iterable[timedelta], bounds: tuple[timedelta, ...] = TAKEDOWN_BUCKETS
) -> Histogram:
    """How many durations fall into each bucket (at most its bound, more than the previous)."""
    counts = [0] * (len(bounds) + 1)
    for duration in durations:
        counts[bisect.bisect_left(bounds, duration)] += 1
    return tuple(zip((*bounds, None), counts, strict=True))


@dataclass(frozen=True, slots=True)
class OpenPastWindow:
    """A case still open longer than the takedown window after its first report."""

    case_id: CaseId
    status: CaseStatus
    hosting_country: str
    first_reported_at: datetime
    open_for: timedelta


@dataclass(frozen=True, slots=True)
class TakedownStats:
    """Counts and takedown times."""

    by_status: dict[CaseStatus, int]
    by_country: dict[str, int]
    removed_count: int
    median: timedelta | None
    p90: timedelta | None
    within_window_share: float | None
    open_past_window: list[OpenPastWindow]
    #: The removed cases' takedown times in TAKEDOWN_BUCKETS.
    histogram: Histogram = ()


@dataclass(frozen=True, slots=True)
class DurationFigures:
    """How long takedowns took: how many, median, 90th percentile, and the
    share done within the window (None when there were none)."""

    count: int
    median: timedelta | None
    p90: timedelta | None
    within_window_share: float | None


def duration_figures(
    durations: Iterable[timedelta], window: timedelta = TAKEDOWN_WINDOW
) -> DurationFigures:
    """The figures of a set of takedown times."""
    times = sorted(durations)
    if not times:
        return DurationFigures(0, None, None, None)
    return DurationFigures(
        count=len(times),
        median=timedelta(seconds=statistics.median(t.total_seconds() for t in times)),
        p90=_p90(times),
        within_window_share=sum(t <= window for t in times) / len(times),
    )


def _p90(durations: list[timedelta]) -> timedelta:
    if len(durations) == 1:
        return durations[0]
    seconds = [d.total_seconds() for d in durations]
    return timedelta(seconds=statistics.quantiles(seconds, n=10, method="inclusive")[8])


def started_at(case: CaseView) -> datetime:
    """Where a case's takedown time starts: its first report, or its opening
    when that was not recorded."""
    return case.first_reported_at or case.created_at


def takedown_stats(
    cases: Iterable[CaseView], now: datetime, window: timedelta = TAKEDOWN_WINDOW
) -> TakedownStats:
    """Counts by status and country; time from first report to CONTENT_REMOVED
    (median, 90th percentile, share within ``window``); cases open past it.
    Only the cases' own fields are read (views without reports will do)."""
    facts = list(cases)
    times = [
        f.removed_at - started_at(f)
        for f in facts
        if f.status is CaseStatus.CONTENT_REMOVED and f.removed_at is not None
    ]
    removed = duration_figures(times, window)
    overdue = [
        OpenPastWindow(f.case_id, f.status, f.hosting_country, started_at(f), now - started_at(f))
        for f in facts
        if is_open(f.status) and now - started_at(f) > window
    ]
    return TakedownStats(
        by_status=dict(Counter(f.status for f in facts)),
        by_country=dict(Counter(f.hosting_country for f in facts)),
        removed_count=removed.count,
        median=removed.median,
        p90=removed.p90,
        within_window_share=removed.within_window_share,
        open_past_window=sorted(overdue, key=lambda o: o.first_reported_at),
        histogram=histogram(times),
    )
