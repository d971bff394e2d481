"""Repository of accepted inbound items and the receipts that answered them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from federation.core.ids import ItemId, MemberId, ReportId, UpdateId
from federation.core.reasons import REPORT_TYPE
from federation.store._driver import bind_value, fetch, insert_many, select_in
from federation.store.models import InboundItemRow, MovedDeliveryRow, table_of


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """What a redelivery of an item is answered with."""

    item_id: ItemId
    payload_sha256: bytes
    receipt: bytes


@dataclass(frozen=True, slots=True)
class NewInboundItem:
    """An accepted item and its signed receipt, ready to store."""

    item_id: ItemId | Literal[""]
    payload_type: str
    #: Copied from the envelope, whose fields crypto keeps as plain str:
    #: typing them would cost a call per item on the Deliver path.
    signer_member_id: str
    key_id: str
    sender_member_id: MemberId
    via_member_ids: tuple[MemberId, ...]
    envelope: bytes
    payload_sha256: bytes
    outcome: int
    receipt: bytes
    received_at: datetime
    #: For a report of our own intake: the member responsible for it then.
    expected_owner: MemberId | None = None
    #: For a report moved here: the update id of the MOVED that sent it, and
    #: the proofs it came with (stored in moved_deliveries, not here).
    move_id: UpdateId | Literal[""] = ""
    proofs: bytes | None = None


#: The key of a moved delivery: (report_id, update id of the MOVED).
MoveKey = tuple[str, str]


def find_receipts(session: Session, item_ids: Iterable[str]) -> dict[str, StoredReceipt]:
    """Stored receipts of the given items, in one query."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = select_in(
        session,
        "SELECT item_id, payload_sha256, receipt FROM inbound_items WHERE item_id IN ({in})",
        ids,
    )
    return {
        item_id: StoredReceipt(item_id, bytes(sha256), bytes(receipt))
        for item_id, sha256, receipt in rows
    }


def find_moved_receipts(session: Session, keys: Iterable[MoveKey]) -> dict[MoveKey, StoredReceipt]:
    """Stored receipts of moved deliveries, by (report_id, move update id)."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = select_in(
        session,
        "SELECT report_id, move_update_id, payload_sha256, receipt FROM moved_deliveries"
        " WHERE report_id IN ({in})",
        sorted({report_id for report_id, _ in wanted}),
    )
    return {
        (report_id, move_id): StoredReceipt(report_id, bytes(sha256), bytes(receipt))
        for report_id, move_id, sha256, receipt in rows
        if (report_id, move_id) in wanted
    }


def insert_items(session: Session, items: Sequence[NewInboundItem]) -> None:
    """Insert items (moved deliveries into their own table). An id that
    another transaction stored first raises IntegrityError, so the whole
    batch is retried and replays that row: a silent skip would commit this
    batch's side effects (cases, forwards) for an item that is already
    answered."""
    _insert_moved(session, [i for i in items if i.move_id])
    rows = [
        {
            "item_id": i.item_id,
            "payload_type": i.payload_type,
            "signer_member_id": i.signer_member_id,
            "key_id": i.key_id,
            "sender_member_id": i.sender_member_id,
            "via_member_ids": list(i.via_member_ids),
            "envelope": i.envelope,
            "payload_sha256": i.payload_sha256,
            "outcome": i.outcome,
            "receipt": i.receipt,
            "received_at": i.received_at,
            "expected_owner_member_id": i.expected_owner,
        }
        for i in items
        if not i.move_id
    ]
    insert_many(session, table_of(InboundItemRow), rows)


def _insert_moved(session: Session, items: Sequence[NewInboundItem]) -> None:
    rows = [
        {
            "report_id": i.item_id,
            "move_update_id": i.move_id,
            "sender_member_id": i.sender_member_id,
            "via_member_ids": list(i.via_member_ids),
            "envelope": i.envelope,
            "proofs": i.proofs or b"",
            "payload_sha256": i.payload_sha256,
            "outcome": i.outcome,
            "receipt": i.receipt,
            "received_at": i.received_at,
        }
        for i in items
    ]
    insert_many(session, table_of(MovedDeliveryRow), rows)


def count_items(session: Session) -> int:
    """How many inbound items are stored (for tests and operators)."""
    return int(session.scalar(select(func.count()).select_from(InboundItemRow)) or 0)


def find_answered(session: Session, item_ids: Iterable[str]) -> dict[str, StoredEnvelope]:
    """Stored items by id, with their envelopes and receipts, in one query."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = select_in(
        session, "SELECT item_id, envelope, receipt FROM inbound_items WHERE item_id IN ({in})", ids
    )
    return {
        item_id: StoredEnvelope(bytes(envelope), bytes(receipt))
        for item_id, envelope, receipt in rows
    }


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """A stored item's envelope bytes and the receipt that answered it."""

    envelope: bytes
    receipt: bytes


def find_envelopes(session: Session, item_ids: Iterable[str]) -> dict[str, tuple[bytes, datetime]]:
    """Stored envelopes (and arrival times) of the given items."""
    ids = sorted(set(item_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(InboundItemRow.item_id, InboundItemRow.envelope, InboundItemRow.received_at).where(
            InboundItemRow.item_id.in_(ids)
        )
    )
    return {r.item_id: (r.envelope, r.received_at) for r in rows}


class AuthoredRecord(NamedTuple):
    """A report of our own intake, as taken in (see authored_reports)."""

    item_id: ReportId
    #: The report's SignedEnvelope as we signed it.
    envelope: bytes
    received_at: datetime
    #: The member responsible for it when it was taken in.
    expected_owner_member_id: MemberId


def authored_reports(
    session: Session, member_id: str, since: datetime | None, until: datetime | None
) -> list[AuthoredRecord]:
    """Every report this node (``member_id``) took in from its own intake,
    taken in within [since, until), oldest first."""
    table = table_of(InboundItemRow)
    # Signed and handed over by us, with an expected owner: our intake's
    # reports (see intake.delivery), not items peers sent us.
    where = (
        "signer_member_id = ? AND sender_member_id = ? AND payload_type = ?"
        " AND expected_owner_member_id IS NOT NULL"
    )
    params: list[Any] = [member_id, member_id, REPORT_TYPE]
    for bound, clause in ((since, " AND received_at >= ?"), (until, " AND received_at < ?")):
        if bound is not None:
            where += clause
            params.append(bind_value(session, table, "received_at", bound))
    rows = fetch(session, table, AuthoredRecord._fields, where + " ORDER BY received_at", params)
    return [AuthoredRecord(*row) for row in rows]
