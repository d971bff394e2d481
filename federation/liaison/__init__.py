"""Liaison: what national police see of this node, and the audit of what they did.

Owns referrals (cases hosted in the liaison's jurisdictions, and only on a
node responsible for one of them), acknowledgements and holds, the batched
audit of refused calls, and the bell that wakes waiting referral streams.

May use: ``core``, ``store``, ``cases`` (reading and filing), ``status``
(acknowledgements become status updates), ``runtime``.
"""

from federation.liaison.audit import MAX_AUDITED_CASES, CallAudit, RefusalAudit
from federation.liaison.bell import Bell
from federation.liaison.referrals import (
    ReferralDesk,
    ReferralEvent,
    decode_cursor,
    encode_cursor,
)

__all__ = [
    "MAX_AUDITED_CASES",
    "Bell",
    "CallAudit",
    "ReferralDesk",
    "ReferralEvent",
    "RefusalAudit",
    "decode_cursor",
    "encode_cursor",
]
