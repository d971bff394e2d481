"""Run and check Alembic migrations from code (``hfed db upgrade``, node start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

import migrations
from federation.core.errors import SetupError
from federation.store.database import Database


class SchemaError(SetupError):
    """The database schema does not match this version of the code."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision(url: str) -> str | None:
    """The newest migration this code knows."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(db: Database) -> str | None:
    """The migration the database is at (None for an empty database)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database) -> None:
    """Bring the database to the newest migration."""
    config = alembic_config(db.url)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def upgrade_url(url: str) -> str | None:
    """Migrate the database at ``url`` to the newest revision and close the
    connections opened for it (none outlives the call); the revision."""
    database = Database(url)
    try:
        upgrade(database)
        return current_revision(database)
    finally:
        database.dispose()


def require_current(db: Database) -> None:
    """Refuse to run on a schema older (or newer) than the code."""
    current, head = current_revision(db), head_revision(db.url)
    if current != head:
        raise SchemaError(
            f"database schema is at revision {current or 'none (empty database)'} but this "
            f"version of hfed needs {head}: run `hfed db upgrade --config FILE` first"
        )


def can_upgrade_from(url: str, revision: str) -> bool:
    """True when ``revision`` is one of the migrations this code knows (so that
    ``upgrade`` can bring a database at it to the head)."""
    scripts = ScriptDirectory.from_config(alembic_config(url))
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False
