"""inbound items without the payload digest index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:40:00.000000

inbound_items.payload_sha256 was indexed only to recognise the retry of an
item accepted before a roster change (its key revoked or dropped, its
signer removed) made it fail verification. Such a retry is now found by its
item id: from the payload once a key the signer held in an installed roster
verifies it (federation/intake/delivery.py). The index held random digests, so
every accepted item cost a write to a page of its own; at a million stored
items that was a third of the index cost of a commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_inbound_items_payload_sha256", table_name="inbound_items")


def downgrade() -> None:
    op.create_index("ix_inbound_items_payload_sha256", "inbound_items", ["payload_sha256"])
