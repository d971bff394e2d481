"""audit log entries that stand for several identical refused calls

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00.000000

A flood of refused liaison calls used to write one audit entry, in a
transaction of its own, per call: each an fsync'd write competing with the
peers' Deliver transactions. Refusals are now queued in memory and written
in batches, identical ones (same liaison, call, outcome and cause) as one
entry with the number of calls in ``calls``. Every existing entry stands for
one call.

A plain ADD COLUMN, not a batch (copy-and-move) alteration: on SQLite the
copy would drop the append-only triggers of 0004 with the old table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_log", sa.Column("calls", sa.Integer(), nullable=False, server_default="1")
    )


def downgrade() -> None:
    op.drop_column("audit_log", "calls")
