"""Core: the protocol's rules as pure functions and plain typed values.

Owns canonical URLs, identifiers, limits, reason codes, routing, the case
status table, roster decisions, envelope checks, receipts, MOVED hand-over
proofs, the PDQ index and statistics. No I/O of any kind.

May use: the standard library and ``crypto`` only (no gRPC, protobuf,
SQLAlchemy, structlog or generated code), so every rule is testable alone.
"""
