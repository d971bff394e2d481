"""Outcomes and refusal reasons of delivered items (mirrors hfp.v1 enums)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

REPORT_TYPE = "hfp.v1.Report"
STATUS_UPDATE_TYPE = "hfp.v1.StatusUpdate"
RECEIPT_TYPE = "hfp.v1.Receipt"
ROSTER_TYPE = "hfp.v1.Roster"


class Outcome(enum.IntEnum):
    """What a receiver did with an item. Values equal the wire enum's."""

    ACCEPTED = 1
    DUPLICATE = 2
    FORWARDED = 3
    REJECTED = 4


class RejectReason(enum.IntEnum):
    """Why an item was refused. Values equal the wire enum's."""

    BAD_SIGNATURE = 1
    UNKNOWN_SIGNER = 2
    KEY_NOT_VALID = 3
    MALFORMED_PAYLOAD = 4
    UNSUPPORTED_PAYLOAD_TYPE = 5
    LIMIT_EXCEEDED = 6
    MEDIA_NOT_ALLOWED = 7
    LOOP_DETECTED = 8
    CLOCK_SKEW = 9
    NOT_RESPONSIBLE = 10
    ILLEGAL_TRANSITION = 11
    AUTHOR_MISMATCH = 12
    SENDER_MISMATCH = 13


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal: the machine-readable reason and a short public explanation.

    ``detail`` goes to the sender as is, so it must never quote internals.
    """

    reason: RejectReason
    detail: str
