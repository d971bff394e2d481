"""Read side for analysts: cases by id, by report, filtered pages, statistics."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from crypto.dsse import Envelope
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.case import CaseFilter, CaseReportView, CaseView
from federation.core.case_status import CaseStatus
from federation.core.ids import is_uuid
from federation.core.stats import CaseFacts, TakedownStats, takedown_stats
from federation.core.status_update import StatusUpdate
from federation.errors import InvalidArgumentError, NotFoundError
from federation.store import cases as store
from federation.store import inbound
from federation.store import status as status_store
from federation.store.database import Database
from federation.store.models import CaseRow, TrackedCaseRow
from federation.wire.convert import decode_envelope, decode_report, decode_status_update

DEFAULT_PAGE = 50
MAX_PAGE = 500


class ShownCase(Protocol):
    """What a case's view is made from: an ORM case row, or a CaseRecord read
    without the ORM on the busy paths (liaison streams)."""

    @property
    def case_id(self) -> str: ...
    @property
    def canonical_url(self) -> str: ...
    @property
    def hosting_country(self) -> str: ...
    @property
    def responsible_member_id(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def reappearance_of_case_id(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def notice_sent_at(self) -> datetime | None: ...
    @property
    def police_acknowledged_at(self) -> datetime | None: ...
    @property
    def police_reference(self) -> str | None: ...
    @property
    def hold_until(self) -> datetime | None: ...
    @property
    def hold_reason(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of cases and the token for the next."""

    cases: list[CaseView]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class OverduePolicy:
    """When a takedown counts as overdue: NOTICE_SENT longer ago than ``after``."""

    after: timedelta = timedelta(hours=72)

    def is_overdue(self, row: ShownCase, now: datetime) -> bool:
        """True when the case's notice is older than the deadline and not resolved."""
        return (
            row.status == CaseStatus.NOTICE_SENT
            and row.notice_sent_at is not None
            and now - row.notice_sent_at > self.after
        )


def _history(
    signed: Sequence[bytes],
) -> tuple[tuple[StatusUpdate, ...], tuple[Envelope, ...]]:
    envelopes = tuple(decode_envelope(e) for e in signed)
    return tuple(decode_status_update(e.payload) for e in envelopes), envelopes


def _report_view(
    report_id: str, origin: str, at: datetime, envelope_bytes: bytes
) -> CaseReportView:
    envelope = decode_envelope(envelope_bytes)
    return CaseReportView(report_id, origin, at, decode_report(envelope.payload), envelope)


def local_view(session: Session, row: CaseRow, now: datetime, policy: OverduePolicy) -> CaseView:
    """A case this node is responsible for, with reports, links and history."""
    return local_views(session, [row], now, policy)[0]


def local_views(
    session: Session, rows: Sequence[ShownCase], now: datetime, policy: OverduePolicy
) -> list[CaseView]:
    """:func:`local_view` of many cases, with one query per table for all of them
    (a liaison stream or a page shows hundreds of cases at once)."""
    ids = [row.case_id for row in rows]
    reports = store.report_records(session, ids)
    links = store.links_of_cases(session, ids)
    updates = status_store.applied_envelopes(session, ids)
    return [
        _local_view(
            row, reports[row.case_id], links[row.case_id], updates[row.case_id], now, policy
        )
        for row in rows
    ]


def _local_view(
    row: ShownCase,
    report_rows: list[store.ReportRecord],
    links: list[str],
    update_envelopes: list[bytes],
    now: datetime,
    policy: OverduePolicy,
) -> CaseView:
    reports = tuple(
        _report_view(r.report_id, r.origin_member_id, r.joined_at, r.envelope) for r in report_rows
    )
    history, envelopes = _history(update_envelopes)
    return CaseView(
        case_id=row.case_id,
        canonical_url=row.canonical_url,
        hosting_country=row.hosting_country,
        responsible_member_id=row.responsible_member_id,
        status=CaseStatus(row.status),
        reports=reports,
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
        overdue=policy.is_overdue(row, now),
    )


def _tracked_view(session: Session, tracked: TrackedCaseRow, via_report: str = "") -> CaseView:
    """A case at another member, seen from a reporter: our reports in it and
    its history. Looked up by one of our reports, the history also holds the
    cases that report went through before a MOVED (the chain)."""
    report_ids = status_store.reports_linked_to(session, [tracked.case_id])
    stored = inbound.find_envelopes(session, report_ids)
    reports = tuple(
        _report_view(rid, decode_envelope(env).signer_member_id, at, env)
        for rid, (env, at) in sorted(stored.items())
    )
    chain = [tracked.case_id]
    if via_report:
        earlier = status_store.linked_cases_of_report(session, via_report)
        chain = [c for c in earlier if c != tracked.case_id and _moved(session, c)] + chain
    rows = status_store.updates_of(session, chain)
    rows.sort(key=lambda r: (chain.index(r.case_id), r.sequence))
    history, envelopes = _history([r.envelope for r in rows])
    first = reports[0].report if reports else None
    return CaseView(
        case_id=tracked.case_id,
        canonical_url=_canonical_or_empty(first.url) if first else "",
        hosting_country=first.hosting_country if first else "",
        responsible_member_id=tracked.responsible_member_id,
        status=CaseStatus(tracked.status) if tracked.status else CaseStatus.RECEIVED,
        reports=reports,
        known_content_case_ids=(),
        reappearance_of_case_id="",
        created_at=tracked.first_seen_at,
        updated_at=tracked.updated_at,
        history=history,
        history_envelopes=envelopes,
    )


def _moved(session: Session, case_id: str) -> bool:
    tracked = status_store.tracked(session, case_id)
    return tracked is not None and tracked.status == CaseStatus.MOVED


def _canonical_or_empty(url: str) -> str:
    try:
        return canonical_url(url)
    except UrlError:
        return ""


def get_case(
    db: Database, now: datetime, policy: OverduePolicy, *, case_id: str = "", report_id: str = ""
) -> CaseView:
    """A case by its id or by the id of one of its reports (ours or tracked)."""
    with db.read() as session:
        if report_id:
            linked = status_store.linked_cases_of_report(session, report_id)
            case_id = store.case_id_of_report(session, report_id) or (linked[-1] if linked else "")
        row = store.get_case(session, case_id) if case_id else None
        if row is not None:
            return local_view(session, row, now, policy)
        tracked = status_store.tracked(session, case_id) if case_id else None
        if tracked is not None:
            return _tracked_view(session, tracked, report_id)
    raise NotFoundError("no such case")


def encode_token(created_at: datetime, case_id: str) -> str:
    """Opaque keyset cursor for the next page."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{case_id}".encode()).decode()


#: A page token is a short text; anything longer was not made here.
MAX_TOKEN_CHARS = 256
#: Says what to do, never why the token failed (it may be a probe).
_NOT_OURS = "page_token is not valid: pass a next_page_token of this node unchanged"


def decode_token(token: str) -> tuple[datetime, str] | None:
    """Read a page token; INVALID_ARGUMENT when it was not made by us.

    Everything the token carries is checked here, before any query: the
    time must name its zone (the store holds aware UTC times only) and the
    case id must be one this node could have issued.
    """
    if not token:
        return None
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidArgumentError(_NOT_OURS)
    try:
        created, case_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        moment = datetime.fromisoformat(created)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError(_NOT_OURS) from None
    if moment.tzinfo is None or not is_uuid(case_id):
        raise InvalidArgumentError(_NOT_OURS)
    try:
        return moment.astimezone(UTC), case_id
    except OverflowError:  # an offset that moves the time past year 1 or 9999
        raise InvalidArgumentError(_NOT_OURS) from None


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
        facts = [
            CaseFacts(
                r.case_id,
                CaseStatus(r.status),
                r.hosting_country,
                r.first_reported_at or r.created_at,
                r.removed_at,
                r.is_open,
            )
            for r in store.cases_reported_between(session, since, until)
        ]
    return takedown_stats(facts, now)
