"""Intake: every signed item that reaches this node, from a peer or our own analysts.

Owns the Deliver pipeline (verify before parse, the post-parse checks in the
protocol's order, one shared write transaction, a signed receipt per item),
payload parsing per item type, and the group commit that lets concurrent
callers share one transaction.

May use: ``core`` (rules), ``store`` (repositories), ``wire`` (decoding
payloads), ``trust`` (the current roster), ``cases`` (filing reports we are
responsible for), ``status`` (applying updates about our reports),
``runtime``. Never grpc or generated code: the API layer decodes requests.
"""

from federation.intake.delivery import (
    Books,
    DeliveryOptions,
    DeliveryService,
    IncomingItem,
)
from federation.intake.identity import NodeIdentity, NoSigningKeyError
from federation.intake.payloads import NO_PROOFS, Proofs

__all__ = [
    "NO_PROOFS",
    "Books",
    "DeliveryOptions",
    "DeliveryService",
    "IncomingItem",
    "NoSigningKeyError",
    "NodeIdentity",
    "Proofs",
]
