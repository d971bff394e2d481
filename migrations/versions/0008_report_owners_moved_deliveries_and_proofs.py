"""expected owners, moved deliveries, hand-over proofs, refused held updates

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:00:00.000000

Spec section 10 (second edition):
- inbound_items.expected_owner_member_id: for each report this node authored,
  the member responsible for it when it was taken in. Filled for existing
  rows from the stored receipt of our own intake (FORWARDED -> forwarded_to,
  else this node).
- moved_deliveries: reports re-routed after a MOVED, keyed by report id and
  the MOVED update's id (a new routing decision, never answered with the
  receipt of an earlier delivery of the same report).
- case_reports: keyed by (report_id, case_id), so a report moved back to a
  node that held it joins a new case; moved_chain keeps the MOVED chain.
- outbox.moved_by becomes outbox.proofs, a ForwardedItem holding only its
  proof fields; existing values (one SignedEnvelope) are wrapped as moved_by.
- status_updates.refused_reason: a held update found illegal when applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from federation.store.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: ForwardedItem field 3 (moved_by), wire type 2 (length-delimited).
_MOVED_BY_TAG = b"\x1a"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def upgrade() -> None:
    with op.batch_alter_table("inbound_items") as batch:
        batch.add_column(sa.Column("expected_owner_member_id", sa.String(63), nullable=True))
    _fill_expected_owners()
    op.create_table(
        "moved_deliveries",
        sa.Column("report_id", sa.String(36), primary_key=True),
        sa.Column("move_update_id", sa.String(36), primary_key=True),
        sa.Column("sender_member_id", sa.String(63), nullable=False),
        sa.Column("via_member_ids", sa.JSON(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("proofs", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("case_reports", recreate="always") as batch:
        batch.add_column(sa.Column("moved_chain", sa.LargeBinary(), nullable=True))
        batch.drop_constraint("pk_case_reports", type_="primary")
        batch.create_primary_key("pk_case_reports", ["report_id", "case_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("moved_by", new_column_name="proofs")
    _wrap_outbox_proofs()
    with op.batch_alter_table("status_updates") as batch:
        batch.add_column(sa.Column("refused_reason", sa.SmallInteger(), nullable=True))


def _fill_expected_owners() -> None:
    # Local import: the generated protobuf code is needed for this step only.
    from hfp.v1 import envelope_pb2, receipt_pb2

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT item_id, signer_member_id, receipt FROM inbound_items"
            " WHERE payload_type = 'hfp.v1.Report' AND signer_member_id = sender_member_id"
        )
    ).fetchall()
    owners = []
    for item_id, signer, receipt in rows:
        answer = receipt_pb2.Receipt.FromString(
            envelope_pb2.SignedEnvelope.FromString(bytes(receipt)).payload
        )
        # Our own intake is the one item whose receipt we signed as its author.
        if answer.receiver_member_id == signer:
            owners.append({"owner": answer.forwarded_to or signer, "item_id": item_id})
    if owners:
        bind.execute(
            sa.text(
                "UPDATE inbound_items SET expected_owner_member_id = :owner"
                " WHERE item_id = :item_id"
            ),
            owners,
        )


def _wrap_outbox_proofs() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, proofs FROM outbox WHERE proofs IS NOT NULL")).fetchall()
    wrapped = [
        {"id": row_id, "proofs": _MOVED_BY_TAG + _varint(len(value)) + bytes(value)}
        for row_id, value in rows
    ]
    if wrapped:
        bind.execute(sa.text("UPDATE outbox SET proofs = :proofs WHERE id = :id"), wrapped)


def downgrade() -> None:
    with op.batch_alter_table("status_updates") as batch:
        batch.drop_column("refused_reason")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("proofs", new_column_name="moved_by")
    with op.batch_alter_table("case_reports", recreate="always") as batch:
        batch.drop_constraint("pk_case_reports", type_="primary")
        batch.create_primary_key("pk_case_reports", ["report_id"])
        batch.drop_column("moved_chain")
    op.drop_table("moved_deliveries")
    with op.batch_alter_table("inbound_items") as batch:
        batch.drop_column("expected_owner_member_id")
