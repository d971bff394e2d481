"""trace context of outbox items and case events

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 04:01:06.725628

With tracing on (docs/operations.md, "Tracing"), an outbox item keeps the
W3C traceparent of the call that queued it, and a case event the one of the
call that logged it, so that the later send and the liaison stream's span
continue the same trace. Both NULL with tracing off and for older rows.

Plain ADD COLUMNs, not batch (copy-and-move) alterations: nullable columns
need no copy, and a copy would drop triggers on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("outbox", "case_events")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        op.drop_column(table, "traceparent")
