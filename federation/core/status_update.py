"""The StatusUpdate domain type, its checks, and the receiver's ordering rule."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from federation.core.case_status import CaseStatus, may_follow
from federation.core.ids import (
    CaseId,
    MemberId,
    ReportId,
    UpdateId,
    is_country,
    is_member_id,
    is_uuid,
)
from federation.core.limits import MAX_STORED_INT, Limits
from federation.core.reasons import Rejection, RejectReason

#: A case can be answered to this many reports per update; beyond that a
#: payload would also exceed the envelope cap.
MAX_REPORT_IDS = 1000


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status change of a case, as signed by its responsible member."""

    update_id: UpdateId
    case_id: CaseId
    report_ids: tuple[ReportId, ...]
    member_id: MemberId
    status: CaseStatus
    sequence: int
    observed_at: datetime
    note: str = ""
    new_hosting_country: str = ""


def check_status_update(update: StatusUpdate, now: datetime, limits: Limits) -> Rejection | None:
    """Semantic checks of an authenticated status update."""
    malformed = RejectReason.MALFORMED_PAYLOAD
    if update.observed_at > now + limits.max_clock_skew:
        return Rejection(RejectReason.CLOCK_SKEW, "observed_at is too far in the future")
    if not (is_uuid(update.update_id) and is_uuid(update.case_id)):
        return Rejection(malformed, "update_id and case_id must be canonical UUIDs")
    if not is_member_id(update.member_id):
        return Rejection(malformed, "member_id is not a member id")
    if update.sequence < 1:
        return Rejection(malformed, "sequence starts at 1")
    if update.sequence > MAX_STORED_INT:
        # uint64 on the wire, but no storage backend holds more than int64:
        # refused here, so that the value never reaches a transaction.
        return Rejection(RejectReason.LIMIT_EXCEEDED, "sequence is above 2^63-1")
    if len(update.report_ids) > MAX_REPORT_IDS:
        return Rejection(RejectReason.LIMIT_EXCEEDED, f"more than {MAX_REPORT_IDS} report_ids")
    if not all(is_uuid(r) for r in update.report_ids):
        return Rejection(malformed, "report_ids must be canonical UUIDs")
    if len(update.note) > limits.max_note_chars:
        return Rejection(RejectReason.LIMIT_EXCEEDED, "note too long")
    moved = update.status is CaseStatus.MOVED
    if moved != bool(update.new_hosting_country):
        return Rejection(malformed, "new_hosting_country is required for MOVED and only then")
    if moved and not is_country(update.new_hosting_country):
        return Rejection(malformed, "new_hosting_country must be ISO alpha-2 or ZZ")
    return None


class Placement(enum.Enum):
    """Where a received update stands relative to what was applied."""

    STALE = "stale"  # already applied, or older: acknowledge and ignore
    NEXT = "next"  # the very next one: apply now
    AHEAD = "ahead"  # past a gap: keep, apply once the gap is filled


def place(sequence: int, last_applied: int) -> Placement:
    """Where an update with ``sequence`` goes, given the last applied sequence."""
    if sequence <= last_applied:
        return Placement.STALE
    return Placement.NEXT if sequence == last_applied + 1 else Placement.AHEAD


def check_transition(previous: CaseStatus | None, update: StatusUpdate) -> Rejection | None:
    """ILLEGAL_TRANSITION unless ``update.status`` may follow ``previous``.

    ``previous`` is None for the first update of a case (which must be
    RECEIVED at sequence 1).
    """
    if previous is None and update.sequence != 1:
        return None  # the predecessor is unknown yet; checked when it arrives
    if may_follow(previous, update.status):
        return None
    before = previous.name if previous else "(new case)"
    return Rejection(
        RejectReason.ILLEGAL_TRANSITION, f"{update.status.name} may not follow {before}"
    )
