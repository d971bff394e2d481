"""Alembic migrations: the only way the schema changes (see federation.store.migrate)."""
