"""Read side for analysts: cases by id, by report, and filtered pages."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from federation.core.case import CaseFilter, CaseReportView, CaseView
from federation.core.case_status import CaseStatus
from federation.errors import InvalidArgumentError, NotFoundError
from federation.store import cases as store
from federation.store.database import Database
from federation.store.models import CaseRow
from federation.wire.convert import decode_envelope, decode_report

DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of cases and the token for the next."""

    cases: list[CaseView]
    next_page_token: str


def _view(session: Session, row: CaseRow) -> CaseView:
    reports = []
    for r in store.case_reports(session, row.case_id):
        envelope = decode_envelope(r.envelope)
        reports.append(
            CaseReportView(
                r.report_id,
                r.origin_member_id,
                r.joined_at,
                decode_report(envelope.payload),
                envelope,
            )
        )
    return CaseView(
        case_id=row.case_id,
        canonical_url=row.canonical_url,
        hosting_country=row.hosting_country,
        responsible_member_id=row.responsible_member_id,
        status=CaseStatus(row.status),
        reports=tuple(reports),
        known_content_case_ids=tuple(store.linked_cases(session, row.case_id)),
        reappearance_of_case_id=row.reappearance_of_case_id or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def get_case(db: Database, *, case_id: str = "", report_id: str = "") -> CaseView:
    """A case by its id or by the id of one of its reports."""
    with db.read() as session:
        if report_id:
            case_id = store.case_id_of_report(session, report_id) or ""
        row = store.get_case(session, case_id) if case_id else None
        if row is None:
            raise NotFoundError("no such case")
        return _view(session, row)


def encode_token(created_at: datetime, case_id: str) -> str:
    """Opaque keyset cursor for the next page."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{case_id}".encode()).decode()


def decode_token(token: str) -> tuple[datetime, str] | None:
    """Read a page token; INVALID_ARGUMENT when it was not made by us."""
    if not token:
        return None
    try:
        created, case_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), case_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError("page_token is not valid") from None


def list_cases(db: Database, where: CaseFilter, page_size: int, token: str) -> CasePage:
    """A page of cases, newest first."""
    size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
    after = decode_token(token)
    with db.read() as session:
        rows = store.list_cases(session, where, size + 1, after)
        views = [_view(session, row) for row in rows[:size]]
    more = len(rows) > size
    next_token = encode_token(rows[size - 1].created_at, rows[size - 1].case_id) if more else ""
    return CasePage(views, next_token)
