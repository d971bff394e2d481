"""Store: the node's database, reached only through repository functions.

Owns the SQLAlchemy 2 models, engine and transaction set-up (SQLite's single
writer, PostgreSQL's row locks), migrations and one repository module per
concern (cases, inbound items, outbox, status updates, rosters, audit,
gauges). The driver-level bulk reads and writes used on the hot path stay
private to this package.

May use: ``core`` and third-party storage libraries only.
"""
