"""one url index and exact-only hash index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:48:40.226430

Filing a report inserted into four indexes keyed by random digests; two of
those inserts were avoidable, and at a million stored cases such inserts
dominate the cost of a commit (each lands on its own page):

- cases kept a plain index on url_sha256 (every case of a URL) beside a
  partial unique one (at most one open case per URL). One unique index on
  (url_sha256, 1 if open else NULL) does both: NULLs are distinct in a
  unique index on SQLite and PostgreSQL alike.
- case_hashes indexed PDQ rows by value, which nothing looks up (PDQ hashes
  are matched by distance in memory): the look-up index now leaves them out.

Written by hand: autogenerate cannot compare expression indexes on SQLite
nor the WHERE of partial ones (tests/unit/test_migrations.py checks both).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_MARK = '(CASE WHEN is_open THEN 1 END)'
EXACT_ONLY = 'algorithm != 4'  # HashAlgorithm.PDQ


def upgrade() -> None:
    op.create_index(
        'uq_cases_url_open', 'cases', ['url_sha256', sa.text(OPEN_MARK)], unique=True
    )
    op.drop_index(
        'uq_cases_open_url',
        table_name='cases',
        sqlite_where=sa.text('is_open'),
        postgresql_where=sa.text('is_open'),
    )
    op.drop_index('ix_cases_url_sha256', table_name='cases')
    op.drop_index('ix_case_hashes_lookup', table_name='case_hashes')
    op.create_index(
        'ix_case_hashes_lookup',
        'case_hashes',
        ['algorithm', 'value'],
        sqlite_where=sa.text(EXACT_ONLY),
        postgresql_where=sa.text(EXACT_ONLY),
    )


def downgrade() -> None:
    op.drop_index('ix_case_hashes_lookup', table_name='case_hashes')
    op.create_index('ix_case_hashes_lookup', 'case_hashes', ['algorithm', 'value'])
    op.create_index('ix_cases_url_sha256', 'cases', ['url_sha256'])
    op.create_index(
        'uq_cases_open_url',
        'cases',
        ['url_sha256'],
        unique=True,
        sqlite_where=sa.text('is_open'),
        postgresql_where=sa.text('is_open'),
    )
    op.drop_index('uq_cases_url_open', table_name='cases')
