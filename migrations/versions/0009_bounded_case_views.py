"""bounded case views: the report of an event, ordered report indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 18:30:00.000000

A case's views carry its first hundred reports and a count; the rest are
paged. case_reports gets an index in join order, (case_id, joined_at,
report_id), so those reads stop after one page however large the case; it
replaces the index on case_id alone, which it covers. report_case_links gets
one on (case_id, report_id) for the reporter's view of a remote case.
case_events.report_id names the report an opening or joining event is
about: the event carries that report instead of the whole case's list.
Events logged before this revision have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("case_events", sa.Column("report_id", sa.String(length=36), nullable=True))
    op.create_index(
        "ix_case_reports_case_order", "case_reports", ["case_id", "joined_at", "report_id"]
    )
    op.drop_index("ix_case_reports_case_id", table_name="case_reports")
    op.create_index("ix_report_case_links_case", "report_case_links", ["case_id", "report_id"])


def downgrade() -> None:
    op.drop_index("ix_report_case_links_case", table_name="report_case_links")
    op.create_index("ix_case_reports_case_id", "case_reports", ["case_id"])
    op.drop_index("ix_case_reports_case_order", table_name="case_reports")
    with op.batch_alter_table("case_events") as batch:
        batch.drop_column("report_id")
