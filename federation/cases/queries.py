"""Read side for analysts: cases by id, by report, filtered pages, statistics."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy.orm import Session

from crypto.dsse import Envelope
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.case import (
    HISTORY_HEAD,
    HISTORY_TAIL,
    MAX_CASE_LINKS,
    MAX_CASE_REPORTS,
    CaseFilter,
    CaseReportView,
    CaseView,
)
from federation.core.case_status import CaseStatus
from federation.core.deadline import DEFAULT_OVERDUE_AFTER, notice_overdue
from federation.core.errors import (
    BAD_PAGE_SIZE,
    BAD_PAGE_TOKEN,
    UNKNOWN_CASE,
    InvalidArgumentError,
    NotFoundError,
)
from federation.core.ids import CaseId, MemberId, ReportId, is_uuid
from federation.core.stats import TakedownStats, takedown_stats
from federation.core.status_update import StatusUpdate
from federation.store import cases as store
from federation.store import inbound
from federation.store import status as status_store
from federation.store.cases import CaseRecord, ReportRecord
from federation.store.database import Database
from federation.store.status import TrackedRecord
from federation.wire.convert import decode_envelope, decode_report, decode_status_update

T = TypeVar("T")

DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of cases and the token for the next."""

    cases: list[CaseView]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class OverduePolicy:
    """When a takedown counts as overdue: NOTICE_SENT longer ago than ``after``."""

    after: timedelta = DEFAULT_OVERDUE_AFTER

    def is_overdue(self, row: CaseRecord, now: datetime) -> bool:
        """True when the case's notice is older than the deadline and not resolved."""
        return notice_overdue(CaseStatus(row.status), row.notice_sent_at, now, self.after)


def _history(
    signed: Sequence[bytes],
) -> tuple[tuple[StatusUpdate, ...], tuple[Envelope, ...]]:
    envelopes = tuple(decode_envelope(e) for e in signed)
    return tuple(decode_status_update(e.payload) for e in envelopes), envelopes


def _report_view(
    report_id: ReportId, origin: MemberId, at: datetime, envelope_bytes: bytes
) -> CaseReportView:
    envelope = decode_envelope(envelope_bytes)
    return CaseReportView(report_id, origin, at, decode_report(envelope.payload), envelope)


def local_view(session: Session, row: CaseRecord, now: datetime, policy: OverduePolicy) -> CaseView:
    """A case this node is responsible for, with its (bounded) reports, links and history."""
    return local_views(session, [row], now, policy)[0]


def local_views(
    session: Session,
    rows: Sequence[CaseRecord],
    now: datetime,
    policy: OverduePolicy,
    *,
    report_limit: int = MAX_CASE_REPORTS,
) -> list[CaseView]:
    """:func:`local_view` of many cases, with a few queries for all of them (a
    liaison stream or a page shows hundreds of cases at once). Each list is
    bounded (see federation.core.case); ``report_limit`` 0 leaves the reports
    out (a case event carries only the one it is about)."""
    ids = [row.case_id for row in rows]
    counts = store.report_counts(session, ids)
    reports = store.earliest_reports(session, counts, report_limit) if report_limit else {}
    link_counts = store.link_counts(session, ids)
    links = store.first_links(session, link_counts, MAX_CASE_LINKS)
    history_counts = status_store.applied_counts(session, ids)
    updates = status_store.bounded_history(session, history_counts, HISTORY_HEAD, HISTORY_TAIL)
    return [
        _local_view(
            row,
            reports.get(row.case_id, []),
            links[row.case_id],
            updates[row.case_id],
            overdue=policy.is_overdue(row, now),
            counts=(counts[row.case_id], history_counts[row.case_id], link_counts[row.case_id]),
        )
        for row in yielding(rows)
    ]


def yielding(items: Sequence[T]) -> Iterator[T]:
    """``items``, letting other threads take the interpreter between two.

    A page of hundreds of cases is built in pure Python; with the default
    switch interval a thread that wants the interpreter back (a peer's
    Deliver between two C calls) waits up to 5 ms each time while the page
    holds it. Giving it up voluntarily after each case costs about a
    microsecond when nobody waits (spec section 10.6: a liaison's reads must
    not stall a peer).
    """
    for item in items:
        yield item
        time.sleep(0)


def _local_view(
    row: CaseRecord,
    report_rows: Sequence[ReportRecord] = (),
    links: Sequence[CaseId] = (),
    update_envelopes: Sequence[bytes] = (),
    *,
    overdue: bool = False,
    counts: tuple[int, int, int] = (0, 0, 0),
) -> CaseView:
    """The view of a case held here, showing the reports, links and history
    given; ``counts``: how many reports, history entries and links it has."""
    history, envelopes = _history(update_envelopes)
    report_count, history_count, link_count = counts
    return CaseView(
        case_id=row.case_id,
        canonical_url=row.canonical_url,
        hosting_country=row.hosting_country,
        responsible_member_id=row.responsible_member_id,
        status=CaseStatus(row.status),
        reports=tuple(report_view(r) for r in report_rows),
        known_content_case_ids=tuple(links),
        reappearance_of_case_id=row.reappearance_of_case_id or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=history,
        history_envelopes=envelopes,
        police_acknowledged_at=row.police_acknowledged_at,
        police_reference=row.police_reference or "",
        hold_until=row.hold_until,
        hold_reason=row.hold_reason or "",
        overdue=overdue,
        first_reported_at=row.first_reported_at,
        removed_at=row.removed_at,
        report_count=report_count,
        history_count=history_count,
        link_count=link_count,
    )


def report_view(record: ReportRecord) -> CaseReportView:
    """The view of one stored report of a case held here."""
    return _report_view(
        record.report_id, record.origin_member_id, record.joined_at, record.envelope
    )


def _tracked_reports(
    session: Session, report_ids: Sequence[ReportId]
) -> tuple[CaseReportView, ...]:
    """Our own reports (stored as we sent them), in the order given."""
    stored = inbound.find_envelopes(session, report_ids)
    return tuple(
        _report_view(
            rid,
            MemberId(decode_envelope(stored[rid][0]).signer_member_id),
            stored[rid][1],
            stored[rid][0],
        )
        for rid in report_ids
        if rid in stored
    )


def _tracked_view(
    session: Session, tracked: TrackedRecord, via_report: ReportId | Literal[""] = ""
) -> CaseView:
    """A case at another member, seen from a reporter: our reports in it (the
    first hundred by id, and their count) and its history. Looked up by one
    of our reports, the history also holds the cases that report went
    through before a MOVED (the chain)."""
    report_count = status_store.linked_report_count(session, tracked.case_id)
    reports = _tracked_reports(
        session, status_store.linked_report_page(session, tracked.case_id, "", MAX_CASE_REPORTS)
    )
    chain = [tracked.case_id]
    if via_report:
        earlier = status_store.linked_cases_of_report(session, via_report)
        chain = [c for c in earlier if c != tracked.case_id and _moved(session, c)] + chain
    signed, history_count = _chain_history(session, chain)
    history, envelopes = _history(signed)
    first = reports[0].report if reports else None
    return CaseView(
        case_id=tracked.case_id,
        canonical_url=_canonical_or_empty(first.url) if first else "",
        hosting_country=_hosting_country(history, first.hosting_country if first else ""),
        responsible_member_id=tracked.responsible_member_id,
        status=CaseStatus(tracked.status) if tracked.status else CaseStatus.RECEIVED,
        reports=reports,
        known_content_case_ids=(),
        reappearance_of_case_id="",
        created_at=tracked.first_seen_at,
        updated_at=tracked.updated_at,
        history=history,
        history_envelopes=envelopes,
        report_count=report_count,
        history_count=history_count,
    )


def _hosting_country(history: Sequence[StatusUpdate], reported: str) -> str:
    """Where the content is hosted as last signed: the newest MOVED update's
    country (the reporter's view shows the new owner, so the new country with
    it), else the country as we reported it."""
    moved = [u.new_hosting_country for u in history if u.status is CaseStatus.MOVED]
    return next((c for c in reversed(moved) if c), reported)


def _chain_history(session: Session, chain: Sequence[CaseId]) -> tuple[list[bytes], int]:
    """The applied updates of the cases of a MOVED chain, oldest case first,
    bounded as one history (its first and latest updates), and their total."""
    counts = status_store.applied_counts(session, chain)
    total = sum(counts.values())
    if total <= HISTORY_HEAD + HISTORY_TAIL:
        held = status_store.applied_envelopes(session, chain)
        return [e for case_id in chain for e in held[case_id]], total
    head: list[bytes] = []
    for case_id in chain:
        wanted = HISTORY_HEAD - len(head)
        if wanted <= 0:
            break
        head += [e for _, e in status_store.applied_page(session, case_id, 0, wanted)]
    tail: list[bytes] = []  # newest first while collecting
    for case_id in reversed(chain):
        wanted = HISTORY_TAIL - len(tail)
        if wanted <= 0:
            break
        page = status_store.applied_page(session, case_id, 0, wanted, newest_first=True)
        tail += [e for _, e in page]
    return head + tail[::-1], total


def _moved(session: Session, case_id: CaseId) -> bool:
    tracked = status_store.tracked(session, case_id)
    return tracked is not None and tracked.status == CaseStatus.MOVED


def _canonical_or_empty(url: str) -> str:
    try:
        return canonical_url(url)
    except UrlError:
        return ""


def get_case(
    db: Database,
    now: datetime,
    policy: OverduePolicy,
    *,
    case_id: CaseId | Literal[""] = "",
    report_id: ReportId | Literal[""] = "",
) -> CaseView:
    """A case by its id or by the id of one of its reports (ours or tracked)."""
    with db.read() as session:
        if report_id:
            case_id = _case_of_report(session, report_id)
        row = store.get_case(session, case_id) if case_id else None
        if row is not None:
            return local_view(session, row, now, policy)
        tracked = status_store.tracked(session, case_id) if case_id else None
        if tracked is not None:
            return _tracked_view(session, tracked, report_id)
    raise NotFoundError(UNKNOWN_CASE, "no such case")


def _case_of_report(session: Session, report_id: ReportId) -> CaseId | Literal[""]:
    """The case a report is in now: ours, unless we moved it away and its new
    owner has written to us since; else the remote case it was linked to last."""
    local = store.get_case(session, store.case_id_of_report(session, report_id) or "")
    latest = status_store.latest_link(session, report_id)
    if latest is None:
        return local.case_id if local else ""
    if local is None or (local.status == CaseStatus.MOVED and latest[1] > local.created_at):
        return latest[0]
    return local.case_id


#: Page sizes of ListCaseReports and ListCaseHistory: the default, and the
#: most one page holds (larger requests are served this many).
ITEM_PAGE_DEFAULT = 50
ITEM_PAGE_MAX = 100


@dataclass(frozen=True, slots=True)
class ReportPage:
    """One page of a case's reports, the token for the next, and their total."""

    reports: list[CaseReportView]
    next_page_token: str
    report_count: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a case's applied updates (with their signed forms)."""

    history: tuple[StatusUpdate, ...]
    envelopes: tuple[Envelope, ...]
    next_page_token: str
    history_count: int


def _bad_token(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(BAD_PAGE_TOKEN, message, field="page_token")


def item_page_size(requested: int) -> int:
    """The page size served for a request: the default for 0, at most ITEM_PAGE_MAX."""
    if requested < 0:
        raise InvalidArgumentError(
            BAD_PAGE_SIZE, "page_size must not be negative", field="page_size"
        )
    return min(requested or ITEM_PAGE_DEFAULT, ITEM_PAGE_MAX)


def _item_token(kind: str, case_id: CaseId, position: str) -> str:
    """Opaque token naming where the next page of one case's list starts."""
    return base64.urlsafe_b64encode(f"{kind}|{case_id}|{position}".encode()).decode()


def _item_position(token: str, kind: str, case_id: CaseId) -> str | None:
    """The position in a token made by _item_token for this list of this case
    (None for an empty token); INVALID_ARGUMENT for anything else."""
    if not token:
        return None
    try:
        made_for, case, position = base64.urlsafe_b64decode(token.encode()).decode().split("|", 2)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        made_for, case, position = "", "", ""
    if made_for != kind or case != case_id:
        raise _bad_token("page_token is not valid for this case")
    return position


def _report_key(position: str | None) -> store.ReportKey | None:
    if position is None:
        return None
    joined, _, report_id = position.partition("|")
    try:
        at = datetime.fromisoformat(joined)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not report_id:
        raise _bad_token("page_token is not valid for this case")
    return at, ReportId(report_id)


def local_report_page(session: Session, case_id: CaseId, page_size: int, token: str) -> ReportPage:
    """A page of the reports of a case held here, in the order they joined."""
    size = item_page_size(page_size)
    after = _report_key(_item_position(token, "r1", case_id))
    rows = store.report_page(session, case_id, after, size + 1)
    more = rows[size] if len(rows) > size else None
    last = rows[size - 1] if more is not None else None
    next_token = (
        _item_token("r1", case_id, f"{last.joined_at.isoformat()}|{last.report_id}")
        if last is not None
        else ""
    )
    count = store.report_counts(session, [case_id])[case_id]
    return ReportPage([report_view(r) for r in rows[:size]], next_token, count)


def _tracked_report_page(
    session: Session, case_id: CaseId, page_size: int, token: str
) -> ReportPage:
    size = item_page_size(page_size)
    after = _item_position(token, "t1", case_id) or ""
    ids = status_store.linked_report_page(session, case_id, after, size + 1)
    next_token = _item_token("t1", case_id, ids[size - 1]) if len(ids) > size else ""
    count = status_store.linked_report_count(session, case_id)
    return ReportPage(list(_tracked_reports(session, ids[:size])), next_token, count)


def case_reports(db: Database, case_id: CaseId, page_size: int, token: str) -> ReportPage:
    """A page of a case's reports: every report of a case held here, or our
    own reports in another member's case."""
    item_page_size(page_size)  # a bad size is refused before any read
    with db.read() as session:
        if case_id and store.get_case(session, case_id) is not None:
            return local_report_page(session, case_id, page_size, token)
        if case_id and status_store.tracked(session, case_id) is not None:
            return _tracked_report_page(session, case_id, page_size, token)
    raise NotFoundError(UNKNOWN_CASE, "no such case")


def history_page(session: Session, case_id: CaseId, page_size: int, token: str) -> HistoryPage:
    """A page of a case's applied updates, in sequence order (a case held
    here or tracked; the caller has checked which and that it may see it)."""
    size = item_page_size(page_size)
    position = _item_position(token, "h1", case_id)
    if position is not None and not position.isdigit():
        raise _bad_token("page_token is not valid for this case")
    rows = status_store.applied_page(session, case_id, int(position or 0), size + 1)
    next_token = _item_token("h1", case_id, str(rows[size - 1][0])) if len(rows) > size else ""
    history, envelopes = _history([e for _, e in rows[:size]])
    count = status_store.applied_counts(session, [case_id])[case_id]
    return HistoryPage(history, envelopes, next_token, count)


def case_history(db: Database, case_id: CaseId, page_size: int, token: str) -> HistoryPage:
    """A page of the applied history of a case held or tracked here."""
    item_page_size(page_size)
    with db.read() as session:
        known = case_id and (
            store.get_case(session, case_id) is not None
            or status_store.tracked(session, case_id) is not None
        )
        if known:
            return history_page(session, case_id, page_size, token)
    raise NotFoundError(UNKNOWN_CASE, "no such case")


def encode_token(created_at: datetime, case_id: CaseId) -> str:
    """Opaque keyset cursor for the next page."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{case_id}".encode()).decode()


#: A page token is a short text; anything longer was not made here.
MAX_TOKEN_CHARS = 256
#: Says what to do, never why the token failed (it may be a probe).
_NOT_OURS = "page_token is not valid: pass a next_page_token of this node unchanged"


def decode_token(token: str) -> tuple[datetime, CaseId] | None:
    """Read a page token; INVALID_ARGUMENT when it was not made by us.

    Everything the token carries is checked here, before any query: the
    time must name its zone (the store holds aware UTC times only) and the
    case id must be one this node could have issued.
    """
    if not token:
        return None
    if len(token) > MAX_TOKEN_CHARS:
        raise _bad_token(_NOT_OURS)
    try:
        created, case_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        moment = datetime.fromisoformat(created)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad_token(_NOT_OURS) from None
    if moment.tzinfo is None or not is_uuid(case_id):
        raise _bad_token(_NOT_OURS)
    try:
        return moment.astimezone(UTC), CaseId(case_id)
    except OverflowError:  # an offset that moves the time past year 1 or 9999
        raise _bad_token(_NOT_OURS) from None


def list_cases(
    db: Database,
    where: CaseFilter,
    page_size: int,
    token: str,
    now: datetime,
    policy: OverduePolicy,
) -> CasePage:
    """A page of the cases this node is responsible for, newest first."""
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    after = decode_token(token)
    overdue_before = now - policy.after if where.overdue_only else None
    with db.read() as session:
        rows = store.list_cases(session, where, size + 1, after, overdue_before)
        views = local_views(session, rows[:size], now, policy)
    more = len(rows) > size
    next_token = encode_token(rows[size - 1].created_at, rows[size - 1].case_id) if more else ""
    return CasePage(views, next_token)


def stats(
    db: Database, since: datetime | None, until: datetime | None, now: datetime
) -> TakedownStats:
    """Takedown statistics over our cases first reported in [since, until)."""
    with db.read() as session:
        cases = [_local_view(r) for r in store.cases_reported_between(session, since, until)]
    return takedown_stats(cases, now)
