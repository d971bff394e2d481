"""Copy every row of one node database into another, empty one (``hfed db copy``):
how a node moves from its SQLite file to PostgreSQL (or back).

Both databases must be at the schema this code has (the target is upgraded to
it first). Rows go table by table in foreign-key order through SQLAlchemy
Core, so each backend's column types (timestamps, JSON, binary) are written
the way its repositories read them; on PostgreSQL the id sequences are then
moved past the copied ids. The whole copy is one transaction on the target:
it is all there, or nothing is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, select, text

from federation.core.errors import SetupError
from federation.store.database import Database
from federation.store.migrate import require_current, upgrade
from federation.store.models import Base

#: Rows read and inserted at a time.
CHUNK = 1000


class CopyError(SetupError):
    """The copy must not go ahead (the message says why)."""


def _chunks(conn: Connection, table: Table) -> Iterator[Sequence[Any]]:
    result = conn.execution_options(stream_results=True).execute(select(table))
    while rows := result.mappings().fetchmany(CHUNK):
        yield [dict(r) for r in rows]


def _require_empty(conn: Connection) -> None:
    for table in Base.metadata.sorted_tables:
        if conn.execute(select(func.count()).select_from(table)).scalar_one():
            raise CopyError(f"the target database is not empty (table {table.name} has rows)")


def _advance_sequences(conn: Connection) -> None:
    # Inserting explicit ids does not move PostgreSQL's sequences; without this
    # the node's next insert would take an id that is already used.
    for table in Base.metadata.sorted_tables:
        column = table.c.get("id")
        if column is None or not column.autoincrement or not column.primary_key:
            continue
        top = conn.execute(select(func.max(column))).scalar() or 0
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :next, false)"),
            {"table": table.name, "next": int(top) + 1},
        )


def copy_rows(source: Database, target: Database) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; rows per table."""
    require_current(source)
    upgrade(target)
    counts: dict[str, int] = {}
    with source.engine.connect() as src, target.engine.begin() as dst:
        _require_empty(dst)
        for table in Base.metadata.sorted_tables:
            counts[table.name] = 0
            for rows in _chunks(src, table):
                dst.execute(table.insert(), rows)
                counts[table.name] += len(rows)
        if target.is_postgresql:
            _advance_sequences(dst)
    return counts
