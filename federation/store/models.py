"""The schema. Changed only together with a migration under migrations/."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, LargeBinary, MetaData, SmallInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from federation.store.types import UTCDateTime

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
    payload_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    outcome: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    #: Serialized signed receipt (hfp.v1.SignedEnvelope of a Receipt).
    receipt: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
