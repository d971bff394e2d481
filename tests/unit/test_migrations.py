"""Alembic migrations produce exactly the models' schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from federation.store.database import Database
from federation.store.migrate import (
    SchemaError,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from federation.store.models import Base


def test_migrations_match_models(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    assert current_revision(db) == head_revision(db.url)
    db.dispose()


def test_node_refuses_an_old_schema(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaError, match="hfed db upgrade"):
        require_current(db)
    upgrade(db)
    require_current(db)
    db.dispose()
