"""The Receipt domain type: what a receiver answers for each delivered item."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from crypto.dsse import Envelope
from federation.core.ids import CaseId, ItemId, MemberId
from federation.core.reasons import Outcome, Rejection, RejectReason

MAX_DETAIL_CHARS = 500
MAX_ECHOED_TYPE_BYTES = 64


@dataclass(frozen=True, slots=True)
class Receipt:
    """An acknowledgement of one item, before it is signed."""

    #: Empty when the item was refused before its payload decoded.
    item_id: ItemId | Literal[""]
    payload_type: str
    outcome: Outcome
    received_at: datetime
    receiver_member_id: MemberId
    payload_sha256: bytes
    case_id: CaseId | Literal[""] = ""
    forwarded_to: MemberId | Literal[""] = ""
    reject_reason: RejectReason | None = None
    detail: str = ""


def _echo_type(payload_type: str) -> str:
    """The payload type to echo back, cut to a bounded, valid UTF-8 length."""
    return payload_type.encode()[:MAX_ECHOED_TYPE_BYTES].decode(errors="ignore")


def rejected(
    envelope: Envelope,
    rejection: Rejection,
    item_id: ItemId | Literal[""],
    receiver: MemberId,
    now: datetime,
) -> Receipt:
    """A REJECTED receipt for ``envelope``; ``item_id`` is empty before parsing."""
    return Receipt(
        item_id=item_id,
        payload_type=_echo_type(envelope.payload_type),
        outcome=Outcome.REJECTED,
        received_at=now,
        receiver_member_id=receiver,
        payload_sha256=hashlib.sha256(envelope.payload).digest(),
        reject_reason=rejection.reason,
        detail=rejection.detail[:MAX_DETAIL_CHARS],
    )


def accepted(
    envelope: Envelope,
    item_id: ItemId | Literal[""],
    outcome: Outcome,
    receiver: MemberId,
    now: datetime,
    *,
    case_id: CaseId | Literal[""] = "",
    forwarded_to: MemberId | Literal[""] = "",
    detail: str = "",
) -> Receipt:
    """A receipt for an item that was stored (accepted, duplicate or forwarded)."""
    return Receipt(
        item_id=item_id,
        payload_type=envelope.payload_type,
        outcome=outcome,
        received_at=now,
        receiver_member_id=receiver,
        payload_sha256=hashlib.sha256(envelope.payload).digest(),
        case_id=case_id,
        forwarded_to=forwarded_to,
        detail=detail,
    )
