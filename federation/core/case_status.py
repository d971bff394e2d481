"""Case statuses and the transitions the protocol allows (the table in status.proto)."""

from __future__ import annotations

import enum


class CaseStatus(enum.IntEnum):
    """A case's status; values equal the wire enum's."""

    RECEIVED = 1
    ASSESSED_ILLEGAL = 2
    ASSESSED_NOT_ILLEGAL = 3
    LEA_NOTIFIED = 4
    LEA_HOLD = 5
    NOTICE_SENT = 6
    CONTENT_REMOVED = 7
    CONTENT_GONE = 8
    MOVED = 9


S = CaseStatus
_ENDINGS = frozenset({S.CONTENT_REMOVED, S.CONTENT_GONE, S.MOVED})

#: Allowed next statuses; a status absent as a key is terminal.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.RECEIVED: frozenset({S.ASSESSED_ILLEGAL, S.ASSESSED_NOT_ILLEGAL, S.CONTENT_GONE, S.MOVED}),
    S.ASSESSED_ILLEGAL: frozenset({S.LEA_NOTIFIED, S.NOTICE_SENT}) | _ENDINGS,
    S.LEA_NOTIFIED: frozenset({S.LEA_HOLD, S.NOTICE_SENT}) | _ENDINGS,
    S.LEA_HOLD: frozenset({S.NOTICE_SENT}) | _ENDINGS,
    S.NOTICE_SENT: frozenset({S.NOTICE_SENT}) | _ENDINGS,
}
TERMINAL = frozenset(set(CaseStatus) - set(TRANSITIONS))
#: A new report of the URL of a case that ended like this is a reappearance.
REAPPEARANCE_AFTER = frozenset({S.CONTENT_REMOVED, S.CONTENT_GONE})


def may_follow(current: CaseStatus | None, new: CaseStatus) -> bool:
    """True when ``new`` may follow ``current`` (None: the case is new)."""
    if current is None:
        return new is S.RECEIVED
    return new in TRANSITIONS.get(current, frozenset())


def is_open(status: CaseStatus) -> bool:
    """True while the case can still change."""
    return status not in TERMINAL
