"""Oversight: what this node's operators read about the node itself.

Owns the read side an operator watches — each peer's outbox queue and retry
schedule, the items peers refused (decoded from their signed receipts), the
lifetimes of the installed roster and of the TLS certificate, and the two
audits (police liaison calls, analysts' actions) merged into one view. It
changes nothing; the console's operations and audit pages and the ``hfed
outbox`` / ``hfed audit`` commands read through it.

May use: ``core``, ``store``, ``wire`` (receipts are stored signed), ``runtime``.
"""

from federation.oversight.watch import (
    AuditEntry,
    AuditLog,
    Lifetimes,
    Oversight,
    RefusedItem,
    audit_entries,
    refused_items,
)
from federation.store.outbox import PeerQueueState

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Lifetimes",
    "Oversight",
    "PeerQueueState",
    "RefusedItem",
    "audit_entries",
    "refused_items",
]
