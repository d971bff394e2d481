"""The schema. Changed only together with a migration under migrations/."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from federation.core.report import HashAlgorithm
from federation.store.types import UTCDateTime

#: The rows of case_hashes that its look-up index holds (see CaseHashRow).
EXACT_HASHES_ONLY = f"algorithm != {int(HashAlgorithm.PDQ)}"

# Explicit constraint names keep migrations identical across backends.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING)


class RosterRow(Base):
    """Every roster this node installed; the highest version is current."""

    __tablename__ = "rosters"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: The serialized hfp.v1.SignedRoster exactly as verified.
    signed_roster: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class InboundItemRow(Base):
    """A delivered item that was accepted, with the receipt that answered it.

    The envelope is kept exactly as received so anyone holding the roster can
    re-verify it; the receipt is kept so a redelivery gets the same bytes.
    """

    __tablename__ = "inbound_items"

    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payload_type: Mapped[str] = mapped_column(String(64), nullable=False)
    signer_member_id: Mapped[str] = mapped_column(String(63), nullable=False)
    key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The TLS peer that handed the item to us (the signer, or the last forwarder).
    sender_member_id: Mapped[str] = mapped_column(String(63), nullable=False)
    via_member_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    #: Serialized hfp.v1.SignedEnvelope with the payload bytes as received.
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    #: Tells a redelivery of this item from another item reusing its id.
    #: Not indexed: every item is found by its id (see delivery), and an
    #: index of random digests costs a page write per item in a large store.
    payload_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    outcome: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    #: Serialized signed receipt (hfp.v1.SignedEnvelope of a Receipt).
    receipt: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    #: For a report this node authored: the member responsible for it when it
    #: was taken in (this node, or the member it was forwarded to). Only that
    #: member, or one it handed the report to by signed MOVED updates, may
    #: send us its status (spec section 10.1). NULL for other items.
    expected_owner_member_id: Mapped[str | None] = mapped_column(String(63))


class MovedDeliveryRow(Base):
    """A report re-routed to us after a MOVED, with the receipt that answered it.

    Kept apart from inbound_items: a moved delivery is a new routing decision
    for a report this node may already hold (as its author, a forwarder or an
    earlier owner), so its idempotency key is the report id together with
    the update id of the MOVED that sent it.
    """

    __tablename__ = "moved_deliveries"

    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    move_update_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_member_id: Mapped[str] = mapped_column(String(63), nullable=False)
    via_member_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    #: The report's SignedEnvelope as received.
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    #: The proofs it came with (see OutboxRow.proofs).
    proofs: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    payload_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    outcome: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    receipt: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class CaseRow(Base):
    """One location to take down, owned by this node (it is responsible)."""

    __tablename__ = "cases"
    __table_args__ = (
        # One index on the URL's SHA-256 serves two needs: finding every case
        # of a URL (open or closed), and allowing at most one OPEN case per
        # URL, which the database (not the code) guarantees under concurrent
        # submissions. The second column is 1 for an open case and NULL for a
        # closed one, and a unique index treats NULLs as distinct (both
        # backends). Filing thus updates one index with a random key instead
        # of two (a plain index plus a partial unique one, as before 0006).
        # The SHA-256 is indexed rather than the URL (up to 4096 characters,
        # too wide for a PostgreSQL btree entry).
        Index(
            "uq_cases_url_open",
            "url_sha256",
            text("(CASE WHEN is_open THEN 1 END)"),
            unique=True,
        ),
    )

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    canonical_url: Mapped[str] = mapped_column(Text, nullable=False)
    url_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    hosting_country: Mapped[str] = mapped_column(String(2), nullable=False, index=True)
    responsible_member_id: Mapped[str] = mapped_column(String(63), nullable=False)
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False, index=True)
    is_open: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reappearance_of_case_id: Mapped[str | None] = mapped_column(String(36))
    #: Sequence number of the last status update this node authored for the case.
    last_sequence: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: Earliest created_at of the case's reports: where takedown time starts.
    first_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: observed_at of the latest NOTICE_SENT (repeat notices restart the clock).
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: observed_at of CONTENT_REMOVED.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    police_acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    police_reference: Mapped[str | None] = mapped_column(String(128))
    hold_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hold_reason: Mapped[str | None] = mapped_column(String(500))


class StatusUpdateRow(Base):
    """A signed status update: authored here for our cases, or received for
    cases of other members that hold our reports (then applied in sequence
    order; one past a gap waits with ``applied`` false)."""

    __tablename__ = "status_updates"
    __table_args__ = (Index("uq_status_updates_case_sequence", "case_id", "sequence", unique=True),)

    update_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), nullable=False)
    author_member_id: Mapped[str] = mapped_column(String(63), nullable=False)
    sequence: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: Serialized hfp.v1.SignedEnvelope, as signed (ours) or received.
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    applied: Mapped[bool] = mapped_column(Boolean, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: Set (a RejectReason value) for a received update that was held for a
    #: sequence gap and turned out illegal when its turn came: it is never
    #: applied, and its sequence number is used up (spec section 10.3).
    refused_reason: Mapped[int | None] = mapped_column(SmallInteger)


class TrackedCaseRow(Base):
    """A case at another member that holds reports we authored."""

    __tablename__ = "tracked_cases"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    responsible_member_id: Mapped[str] = mapped_column(String(63), nullable=False)
    #: Status of the last applied update (None until sequence 1 arrives).
    status: Mapped[int | None] = mapped_column(SmallInteger)
    last_applied_sequence: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ReportCaseLinkRow(Base):
    """Which remote case(s) one of our reports belongs to (a move makes a chain)."""

    __tablename__ = "report_case_links"
    __table_args__ = (
        # Our reports in one remote case, in id order (the reporter's view
        # of that case reads one page of them).
        Index("ix_report_case_links_case", "case_id", "report_id"),
    )

    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class CaseReportRow(Base):
    """A report linked to a case held here."""

    __tablename__ = "case_reports"
    __table_args__ = (
        # A case's reports in the order they joined: its views read the first
        # hundred and ListCaseReports pages on from a (joined_at, report_id)
        # key, each read stopped after one page however large the case. It
        # also serves every look-up by case_id alone.
        Index("ix_case_reports_case_order", "case_id", "joined_at", "report_id"),
    )

    #: A report is in one case at a time here, but one that comes back after
    #: MOVED (sent away, then moved back) joins a new case beside the old one.
    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), ForeignKey("cases.case_id"), primary_key=True)
    origin_member_id: Mapped[str] = mapped_column(String(63), nullable=False, index=True)
    #: Serialized hfp.v1.SignedEnvelope of the report, as received.
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: For a report moved here: the MOVED chain it came with (a serialized
    #: ForwardedItem holding only moved_by), which every status update sent
    #: to its author carries as proof that this node now owns it.
    moved_chain: Mapped[bytes | None] = mapped_column(LargeBinary)


class CaseHashRow(Base):
    """A content hash seen in a case's reports, for known-content links."""

    __tablename__ = "case_hashes"
    __table_args__ = (
        # Exact look-ups only: PDQ hashes are matched by distance in memory
        # (core/pdq_index.py), so their rows stay out of this index, which
        # saves filing a second random-key index insert per report.
        # Queries must repeat the condition word for word (EXACT_HASHES_ONLY)
        # for SQLite to use a partial index.
        Index(
            "ix_case_hashes_lookup",
            "algorithm",
            "value",
            sqlite_where=text(EXACT_HASHES_ONLY),
            postgresql_where=text(EXACT_HASHES_ONLY),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    case_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cases.case_id"), nullable=False, index=True
    )
    algorithm: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    value: Mapped[bytes] = mapped_column(LargeBinary(144), nullable=False)


class CaseLinkRow(Base):
    """Two cases that showed the same content (stored once per direction)."""

    __tablename__ = "case_links"

    case_id: Mapped[str] = mapped_column(String(36), ForeignKey("cases.case_id"), primary_key=True)
    linked_case_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cases.case_id"), primary_key=True
    )


class CaseEventRow(Base):
    """The durable, ordered log of case changes (liaison streams read it)."""

    __tablename__ = "case_events"

    sequence: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    case_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cases.case_id"), nullable=False, index=True
    )
    kind: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    hosting_country: Mapped[str] = mapped_column(String(2), nullable=False, index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: The report that opened (CASE_OPENED) or joined (REPORT_JOINED) the
    #: case; the event carries it instead of the case's whole report list.
    #: NULL for other kinds, and for events logged before migration 0009.
    report_id: Mapped[str | None] = mapped_column(String(36))
    #: The W3C traceparent of the call that logged the event, so that the
    #: liaison stream's span joins that trace; NULL with tracing off.
    traceparent: Mapped[str | None] = mapped_column(String(64))


class OutboxRow(Base):
    """An item waiting to be delivered to a peer (transactional outbox).

    Written in the same transaction as the change that caused it; removed from
    the queue (state DELIVERED or REJECTED) only when the peer's verified
    receipt is stored with it as proof.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_queue", "destination", "state", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    destination: Mapped[str] = mapped_column(String(63), nullable=False)
    item_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    payload_type: Mapped[str] = mapped_column(String(64), nullable=False)
    #: Serialized hfp.v1.SignedEnvelope, sent unchanged.
    envelope: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    via_member_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    state: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: Hand-over proofs sent beside the envelope: a serialized
    #: hfp.v1.ForwardedItem holding only ``moved_by`` (the MOVED chain of a
    #: re-routed report, or of the reporter's report for a status update) and
    #: ``joined_receipts`` (see federation_service.proto). Unset for most items.
    proofs: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The peer's signed receipt (serialized SignedEnvelope): proof of delivery.
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The node process that claimed the item to send it (several processes
    #: may share one PostgreSQL outbox); kept after delivery as a record of
    #: who sent it.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    #: Until when that claim holds. A pending item whose lease has run out
    #: (its process crashed or gave up) may be claimed again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The W3C traceparent of the call that queued the item, restored when
    #: the item is sent (one trace across the queue); NULL with tracing off.
    traceparent: Mapped[str | None] = mapped_column(String(64))


class PeerBackoffRow(Base):
    """Persisted retry schedule of one destination peer (survives restarts)."""

    __tablename__ = "peer_backoff"

    destination: Mapped[str] = mapped_column(String(63), primary_key=True)
    #: Consecutive failed attempts; 0 once a delivery succeeds.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Do not try this peer again before this instant.
    retry_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(500))


class AuditRow(Base):
    """Append-only record of every call a police liaison makes (and its outcome).

    The migration adds triggers that refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    member_id: Mapped[str] = mapped_column(String(63), nullable=False, index=True)
    rpc: Mapped[str] = mapped_column(String(64), nullable=False)
    #: Case ids the call touched or returned (capped; see audit.MAX_CASES).
    case_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    #: "OK" or the gRPC status code name of the refusal.
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(String(500), nullable=False)
    #: Calls the entry stands for: 1, or the number of identical refusals
    #: (same liaison, call, outcome and cause) written as one entry, ``at``
    #: being the first of them (see federation.liaison.audit).
    calls: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")


class OperatorAuditRow(Base):
    """Append-only record of what an analyst did through the node's own
    operator identity (HotlineService calls naming an analyst), and its outcome.

    The migration adds triggers that refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "operator_audit"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    #: The analyst the operator identity named (federation.wire.metadata).
    analyst: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    rpc: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The case the call concerned, "" when none (a list, a refused submission).
    case_id: Mapped[str] = mapped_column(String(36), nullable=False, default="")
    #: "OK" or the gRPC status code name of the refusal.
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(String(500), nullable=False)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class (for bulk inserts without the ORM)."""
    return Base.metadata.tables[model.__tablename__]
