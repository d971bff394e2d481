"""Alembic migrations produce exactly the models' schema, on every backend."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from federation.store.database import Database
from federation.store.migrate import (
    SchemaError,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from federation.store.models import Base

#: An expression index: SQLAlchemy cannot reflect it on SQLite, and on
#: PostgreSQL Alembic compares its pretty-printed text (line breaks, an added
#: ELSE NULL) and sees a difference where there is none. The next test
#: checks it on both backends instead.
EXPRESSION_INDEX = "uq_cases_url_open"
SKIPPED_REFLECTION = "ignore:Skipped unsupported reflection of expression-based index"


def _not_expression_index(_obj: object, name: str | None, *_rest: object) -> bool:
    return name != EXPRESSION_INDEX


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
@pytest.mark.filterwarnings(SKIPPED_REFLECTION)
def test_migrations_match_models(new_database_url: Callable[[], str]) -> None:
    db = Database(new_database_url())
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_object": _not_expression_index}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations differ on {db.dialect}: {diff}"
        assert current_revision(db) == head_revision(db.url)
    finally:
        db.dispose()


def _index_sql(conn: Connection, dialect: str, name: str) -> str:
    if dialect == "postgresql":
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    else:
        query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
    return str(conn.scalar(text(query), {"name": name}))


@pytest.mark.filterwarnings(SKIPPED_REFLECTION)
def test_indexes_and_triggers_compare_metadata_cannot_see(
    new_database_url: Callable[[], str],
) -> None:
    """The URL index's expression, the hash index's WHERE and the triggers."""
    db = Database(new_database_url())
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            url_index = " ".join(_index_sql(conn, db.dialect, EXPRESSION_INDEX).split())
            hash_index = _index_sql(conn, db.dialect, "ix_case_hashes_lookup")
            if db.dialect == "postgresql":
                trigger_query = (
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                    "AND tgrelid = 'audit_log'::regclass"
                )
            else:
                trigger_query = (
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name = 'audit_log'"
                )
            triggers = set(conn.scalars(text(trigger_query)))
            other_url_indexes = [
                i["name"]
                for i in inspect(conn).get_indexes("cases")
                if "url_sha256" in i["column_names"] and i["name"] != EXPRESSION_INDEX
            ]
        assert "UNIQUE INDEX" in url_index
        expression = r"\(url_sha256, \( ?CASE WHEN is_open THEN 1 (ELSE NULL\S* )?END\)"
        assert re.search(expression, url_index), url_index
        assert other_url_indexes == []
        assert "algorithm <> 4" in hash_index or "algorithm != 4" in hash_index
        assert triggers, "audit_log has no append-only triggers"
    finally:
        db.dispose()


def test_node_refuses_an_old_schema(new_database_url: Callable[[], str]) -> None:
    db = Database(new_database_url())
    try:
        with pytest.raises(SchemaError, match="hfed db upgrade"):
            require_current(db)
        upgrade(db)
        require_current(db)
        upgrade(db)  # idempotent at head
        require_current(db)
    finally:
        db.dispose()
