"""The case state machine, exactly as the protocol's table allows."""

from __future__ import annotations

import itertools

import pytest

from federation.core.case_status import TERMINAL, CaseStatus, is_open, may_follow

S = CaseStatus
ALLOWED = {
    (None, S.RECEIVED),
    (S.RECEIVED, S.ASSESSED_ILLEGAL),
    (S.RECEIVED, S.ASSESSED_NOT_ILLEGAL),
    (S.RECEIVED, S.CONTENT_GONE),
    (S.RECEIVED, S.MOVED),
    (S.ASSESSED_ILLEGAL, S.LEA_NOTIFIED),
    (S.ASSESSED_ILLEGAL, S.NOTICE_SENT),
    (S.ASSESSED_ILLEGAL, S.CONTENT_REMOVED),
    (S.ASSESSED_ILLEGAL, S.CONTENT_GONE),
    (S.ASSESSED_ILLEGAL, S.MOVED),
    (S.LEA_NOTIFIED, S.LEA_HOLD),
    (S.LEA_NOTIFIED, S.NOTICE_SENT),
    (S.LEA_NOTIFIED, S.CONTENT_REMOVED),
    (S.LEA_NOTIFIED, S.CONTENT_GONE),
    (S.LEA_NOTIFIED, S.MOVED),
    (S.LEA_HOLD, S.NOTICE_SENT),
    (S.LEA_HOLD, S.CONTENT_REMOVED),
    (S.LEA_HOLD, S.CONTENT_GONE),
    (S.LEA_HOLD, S.MOVED),
    (S.NOTICE_SENT, S.NOTICE_SENT),
    (S.NOTICE_SENT, S.CONTENT_REMOVED),
    (S.NOTICE_SENT, S.CONTENT_GONE),
    (S.NOTICE_SENT, S.MOVED),
}
ALL_PAIRS = set(itertools.product([None, *S], S))


@pytest.mark.parametrize(("before", "after"), sorted(ALLOWED, key=str))
def test_allowed_transitions(before: CaseStatus | None, after: CaseStatus) -> None:
    assert may_follow(before, after)


@pytest.mark.parametrize(("before", "after"), sorted(ALL_PAIRS - ALLOWED, key=str))
def test_every_other_transition_is_forbidden(before: CaseStatus | None, after: CaseStatus) -> None:
    assert not may_follow(before, after)


def test_terminal_statuses() -> None:
    assert {S.ASSESSED_NOT_ILLEGAL, S.CONTENT_REMOVED, S.CONTENT_GONE, S.MOVED} == TERMINAL
    assert [s for s in S if not is_open(s)] == sorted(TERMINAL)
