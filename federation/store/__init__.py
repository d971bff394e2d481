"""Storage: SQLAlchemy 2 models, engine set-up and repositories.

Owns the schema (``models``, changed only with a migration), the engine and
its transactions (``database``), and one repository module per group of
tables (``cases``, ``status``, ``inbound``, ``outbox``, ``rosters``,
``audit``, ``gauges``). Repositories return storage records (named tuples
such as ``cases.CaseRecord``), never ORM objects; ``_driver`` (raw driver
cursors, multi-row inserts and updates: the measured hot path) and the ORM
row classes are private to this package.

May use: ``core`` and third-party storage libraries (SQLAlchemy, Alembic) only.
"""
