"""The reporter's read side: what happened to the reports this node sent.

Reads, for every report of our own intake in a period, where it went (filed
here, or queued for and delivered to its expected owner), every case it
reached (ours, the owner's, and after MOVED the next owners') and what the
applied, signed history of each case says; the rules that turn that into a
list line, a page and totals are in ``federation.core.authored``.

The cost of one call grows with the number of our reports in the period
(the totals cover the whole filter): a few indexed queries per thousand
reports, and one decoded envelope per report for its URL and country.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.orm import Session

from federation.cases.queries import OverduePolicy
from federation.core.authored import (
    AuthoredFilter,
    AuthoredPage,
    AuthoredReport,
    AuthoredView,
    CaseStep,
    Delivery,
    PageKey,
    ReporterStats,
    authored_view,
    case_facts,
    page_of,
    reporter_stats,
)
from federation.core.canonical_url import UrlError, canonical_url
from federation.core.case_status import CaseStatus
from federation.core.errors import BAD_PAGE_TOKEN, INVALID_TIMESTAMP, InvalidArgumentError
from federation.core.ids import CaseId, ItemId, MemberId, ReportId, is_uuid
from federation.core.reasons import REPORT_TYPE
from federation.runtime.clock import Clock, utc_now
from federation.store import cases as case_store
from federation.store import inbound
from federation.store import outbox as outbox_store
from federation.store import status as status_store
from federation.store.database import Database
from federation.store.inbound import AuthoredRecord
from federation.store.outbox import OutboxState
from federation.wire.convert import decode_envelope, decode_receipt, decode_report
from federation.wire.convert import decode_status_update as decode_update
from federation.wire.errors import MalformedMessageError

DEFAULT_PAGE = 50
MAX_PAGE = 500

_DELIVERY = {
    OutboxState.PENDING: Delivery.QUEUED,
    OutboxState.DELIVERED: Delivery.DELIVERED,
    OutboxState.REJECTED: Delivery.REJECTED,
}


class AuthoredReports:
    """Lists the reports this node authored, and the reporter's statistics."""

    def __init__(
        self, db: Database, me: MemberId, overdue: OverduePolicy, clock: Clock = utc_now
    ) -> None:
        self._db = db
        self._me = me
        self._overdue = overdue
        self._clock = clock

    def page(self, where: AuthoredFilter, page_size: int, token: str) -> AuthoredPage:
        """A page of our reports in the filter (overdue first, then newest
        sent first), with the filter's totals."""
        after = decode_token(token)
        since, until = where.sent_since, where.sent_until
        if since is not None and until is not None and since >= until:
            raise InvalidArgumentError(
                INVALID_TIMESTAMP,
                "sent_since must be before sent_until",
                field="filters.sent_since",
            )
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        views = self._views(where.sent_since, where.sent_until)
        return page_of(views, where, after, size)

    def stats(self, since: datetime | None, until: datetime | None) -> ReporterStats:
        """The reporter's statistics over our reports sent in [since, until)."""
        return reporter_stats(self._views(since, until))

    def _views(self, since: datetime | None, until: datetime | None) -> list[AuthoredView]:
        now = self._clock()
        with self._db.read() as session:
            reports = load_authored(session, self._me, since, until)
        return [authored_view(r, now, self._overdue.after) for r in reports]


def load_authored(
    session: Session, me: MemberId, since: datetime | None, until: datetime | None
) -> list[AuthoredReport]:
    """Our reports taken in within [since, until), each with the cases it reached."""
    records = inbound.authored_reports(session, me, since, until)
    ids = [r.item_id for r in records]
    steps = _steps(session, me, ids)
    sent = outbox_store.report_deliveries(session, ids, REPORT_TYPE)
    return [_authored(record, steps.get(record.item_id, ()), sent) for record in records]


def _authored(
    record: AuthoredRecord,
    steps: Sequence[CaseStep],
    sent: Mapping[ItemId, tuple[OutboxState, bytes | None]],
) -> AuthoredReport:
    report = decode_report(decode_envelope(record.envelope).payload)
    state, receipt = sent.get(record.item_id, (None, None))
    if record.expected_owner_member_id == report.origin_member_id:
        delivery = Delivery.FILED_HERE
    else:
        delivery = _DELIVERY[state] if state is not None else Delivery.UNKNOWN
    return AuthoredReport(
        report_id=record.item_id,
        canonical_url=_canonical(report.url),
        hosting_country=report.hosting_country,
        sent_at=record.received_at,
        first_owner_member_id=record.expected_owner_member_id,
        delivery=delivery,
        steps=tuple(steps),
        # The receipt is read only while no update has named the case.
        receipt_case_id=_receipt_case(receipt) if receipt and not steps else "",
    )


def _steps(
    session: Session, me: MemberId, ids: Sequence[ReportId]
) -> dict[ReportId, list[CaseStep]]:
    """Every case each report reached: ours (filed here) and remote ones."""
    local = case_store.placements_of_reports(session, ids)
    remote = status_store.links_of_reports(session, ids)
    case_ids = {c for _, c, _ in local} | {c for _, c, _ in remote}
    owners: dict[CaseId, MemberId] = {c: me for _, c, _ in local}
    owners.update(
        (t.case_id, t.responsible_member_id)
        for t in status_store.tracked_records(session, case_ids)
    )
    history = status_store.applied_steps(session, case_ids)
    moved = status_store.applied_envelopes_of_status(session, case_ids, CaseStatus.MOVED)
    found: dict[ReportId, list[CaseStep]] = defaultdict(list)
    for report_id, case_id, reached_at in sorted([*local, *remote], key=lambda p: p[2]):
        found[report_id].append(
            CaseStep(
                case_id,
                owners.get(case_id, ""),
                reached_at,
                case_facts(history.get(case_id, ())),
                _moved_to(moved.get(case_id)),
            )
        )
    return found


def _moved_to(envelope: bytes | None) -> str:
    if envelope is None:
        return ""
    return decode_update(decode_envelope(envelope).payload).new_hosting_country


def _receipt_case(receipt: bytes) -> CaseId | Literal[""]:
    try:
        return decode_receipt(decode_envelope(receipt).payload).case_id
    except MalformedMessageError:  # checked when it was stored; this only shows it
        return ""


def _canonical(url: str) -> str:
    try:
        return canonical_url(url)
    except UrlError:
        return url


# --- page tokens ---------------------------------------------------------------

#: A page token is a short text; anything longer was not made here.
MAX_TOKEN_CHARS = 256
_NOT_OURS = "page_token is not valid: pass a next_page_token of this call unchanged"


def encode_token(key: PageKey) -> str:
    """Opaque cursor naming the last line of a page."""
    overdue, sent_at, report_id = key
    text = f"a1|{int(overdue)}|{sent_at.isoformat()}|{report_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_token(token: str) -> PageKey | None:
    """The key in a token made by encode_token (None for an empty one);
    INVALID_ARGUMENT for anything else, checked before any read."""
    if not token:
        return None
    try:
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(token)
        kind, overdue, sent, report_id = base64.urlsafe_b64decode(token).decode().split("|")
        moment = datetime.fromisoformat(sent)
        if kind != "a1" or overdue not in ("0", "1") or moment.tzinfo is None:
            raise ValueError(token)
        if not is_uuid(report_id):
            raise ValueError(token)
        return overdue == "1", moment.astimezone(UTC), ReportId(report_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidArgumentError(BAD_PAGE_TOKEN, _NOT_OURS, field="page_token") from None
