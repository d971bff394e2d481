"""INSERT ... ON CONFLICT DO NOTHING for the backends we support."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows, silently skipping those whose key already exists.

    Lets concurrent writers of the same idempotency key race safely: the
    first commit wins and the others read its row back.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    session.execute(module.insert(table).on_conflict_do_nothing(), list(rows))
