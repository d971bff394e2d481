"""Alembic migrations produce exactly the models' schema, on every backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from federation.store.database import Database
from federation.store.migrate import (
    SchemaError,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from federation.store.models import Base


def test_migrations_match_models(new_database_url: Callable[[], str]) -> None:
    db = Database(new_database_url())
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ on {db.dialect}: {diff}"
        assert current_revision(db) == head_revision(db.url)
    finally:
        db.dispose()


def test_partial_unique_index_and_triggers_exist(new_database_url: Callable[[], str]) -> None:
    """What compare_metadata cannot see: the partial index's WHERE and the triggers."""
    db = Database(new_database_url())
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            indexes = {i["name"]: i for i in inspect(conn).get_indexes("cases")}
            assert indexes["uq_cases_open_url"]["unique"]
            if db.dialect == "postgresql":
                where = conn.scalar(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_cases_open_url'")
                )
                triggers = set(
                    conn.scalars(
                        text(
                            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                            "AND tgrelid = 'audit_log'::regclass"
                        )
                    )
                )
            else:
                where = conn.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = 'uq_cases_open_url'")
                )
                triggers = set(
                    conn.scalars(
                        text(
                            "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                            "AND tbl_name = 'audit_log'"
                        )
                    )
                )
        assert "WHERE is_open" in str(where)
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
