#!/usr/bin/env python3
"""Autogenerate a new Alembic migration from the models: ``make migration MSG="..."``.

Builds a scratch SQLite database at the current head, diffs it against
``federation.store.models`` and writes migrations/versions/<next>_<slug>.py
for review. Numbers are sequential (0001, 0002, ...) to keep history readable.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from federation.store.database import Database
from federation.store.migrate import alembic_config, upgrade


def main(message: str) -> None:
    """Create the next migration file."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scratch.db'}"
        db = Database(url)
        upgrade(db)
        config = alembic_config(url)
        head = ScriptDirectory.from_config(config).get_current_head()
        rev_id = f"{int(head or '0') + 1:04d}"
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        db.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit('usage: new_migration.py "what changes"')
    main(sys.argv[1])
