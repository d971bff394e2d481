"""The operator's read side: queues, refusals, lifetimes and the audits."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from federation.core.ids import ItemId, MemberId
from federation.core.reasons import RejectReason
from federation.core.roster import Roster
from federation.store import audit, operator_audit, outbox
from federation.store.database import Database
from federation.store.outbox import PeerQueueState
from federation.wire.convert import decode_envelope, decode_receipt
from federation.wire.errors import MalformedMessageError


@dataclass(frozen=True, slots=True)
class RefusedItem:
    """An item a peer refused, with what its signed receipt said."""

    member_id: MemberId
    item_id: ItemId
    reason: RejectReason | None
    detail: str
    refused_at: datetime | None


def refused_items(session: Session, limit: int) -> tuple[list[RefusedItem], bool]:
    """Up to ``limit`` refused items, newest first, and whether more exist."""
    rows = outbox.rejected_items(session, limit + 1)
    items = []
    for destination, item_id, receipt_bytes, finished in rows[:limit]:
        try:
            receipt = decode_receipt(decode_envelope(receipt_bytes).payload)
            reason, detail = receipt.reject_reason, receipt.detail
        except MalformedMessageError:
            # Stored only after verification, so this means a damaged row:
            # show the refusal anyway rather than hide it.
            reason, detail = None, "(stored receipt unreadable)"
        items.append(RefusedItem(destination, item_id, reason, detail, finished))
    return items, len(rows) > limit


class AuditLog(enum.Enum):
    """Which audit an entry comes from (BOTH selects either)."""

    BOTH = "both"
    LIAISON = "liaison"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of either audit, in one shape."""

    at: datetime
    log: AuditLog
    who: str
    rpc: str
    outcome: str
    calls: int
    case_ids: tuple[str, ...]
    detail: str


def audit_entries(
    session: Session,
    which: AuditLog,
    since: datetime | None,
    who: str,
    limit: int,
    newest_first: bool = False,
) -> tuple[list[AuditEntry], bool]:
    """Up to ``limit`` entries of the chosen audit(s), merged by time, and
    whether more match. ``who`` is a liaison member id or an analyst name."""
    merged: list[AuditEntry] = []
    if which in (AuditLog.BOTH, AuditLog.LIAISON):
        merged += [
            AuditEntry(
                e.at,
                AuditLog.LIAISON,
                e.member_id,
                e.rpc,
                e.outcome,
                e.calls,
                tuple(e.case_ids),
                e.detail,
            )
            for e in audit.entries(session, since, who, limit + 1, newest_first)
        ]
    if which in (AuditLog.BOTH, AuditLog.OPERATOR):
        merged += [
            AuditEntry(
                e.at,
                AuditLog.OPERATOR,
                e.analyst,
                e.rpc,
                e.outcome,
                1,
                (e.case_id,) if e.case_id else (),
                e.detail,
            )
            for e in operator_audit.entries(session, since, who, limit + 1, newest_first)
        ]
    merged.sort(key=lambda e: e.at, reverse=newest_first)
    return merged[:limit], len(merged) > limit


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """The installed roster and the node's certificate, as an operator checks them."""

    roster_version: int
    roster_issued_at: datetime
    roster_expires_at: datetime
    roster_members: int
    certificate_not_after: datetime | None


class Oversight:
    """Read-only answers for the node's operators (HotlineService)."""

    def __init__(
        self,
        db: Database,
        roster: Callable[[], Roster],
        certificate_not_after: Callable[[], datetime | None],
    ) -> None:
        self._db = db
        self._roster = roster
        self._certificate_not_after = certificate_not_after

    def queues(self) -> list[PeerQueueState]:
        """Every peer's outbox queue and retry schedule."""
        with self._db.read() as session:
            return outbox.queue_states(session)

    def refused(self, limit: int) -> tuple[list[RefusedItem], bool]:
        """Refused items, newest first (see ``refused_items``)."""
        with self._db.read() as session:
            return refused_items(session, limit)

    def audit(
        self, which: AuditLog, since: datetime | None, who: str, limit: int
    ) -> tuple[list[AuditEntry], bool]:
        """Audit entries, newest first (see ``audit_entries``)."""
        with self._db.read() as session:
            return audit_entries(session, which, since, who, limit, newest_first=True)

    def lifetimes(self) -> Lifetimes:
        """The installed roster's version and lifetime, and the certificate's expiry."""
        roster = self._roster()
        return Lifetimes(
            roster.version,
            roster.issued_at,
            roster.expires_at,
            len(roster.members),
            self._certificate_not_after(),
        )
