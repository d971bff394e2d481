"""Two writers of one owned case at once, as two node processes on one
database run them (each storage backend, no server).

A write that decides from a case's state (its status, its next sequence,
an active police hold) must decide on the state the other writer leaves,
not on what it read before that writer committed: an analyst's takedown
notice and a police hold at the same moment must never both succeed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from crypto.dsse import Envelope, sign_envelope
from crypto.keys import SigningKey
from federation.cases import CaseActions, CaseChanges, StatusChange
from federation.cases.filing import CaseBook, Filing, FilingBatch
from federation.cases.queries import OverduePolicy
from federation.core.canonical_url import canonical_url
from federation.core.case_status import CaseStatus
from federation.core.errors import FailedPreconditionError
from federation.core.ids import new_uuid7
from federation.core.limits import Limits
from federation.core.reasons import REPORT_TYPE
from federation.core.report import Report
from federation.core.roster import Member, MemberKey, Role, Roster
from federation.liaison.referrals import ReferralDesk
from federation.status.issuing import StatusBook
from federation.store import cases as store
from federation.store.database import Database
from federation.wire.convert import encode_envelope, encode_report

T0 = datetime(2026, 6, 1, tzinfo=UTC)
#: When the second round starts: the first hold (until T0 + 1 h) has expired.
LATER = T0 + timedelta(hours=2)
KEY = SigningKey.generate()
ME = "hotline-nl"
S = CaseStatus
#: Bound of every wait between the two writers (seconds).
WAIT = 10.0

pytestmark = pytest.mark.timeout(60)


def _member(member_id: str, role: Role = Role.HOTLINE) -> Member:
    key = MemberKey(KEY.key_id, KEY.public_key)
    return Member(member_id, role, endpoint="127.0.0.1:1", keys={key.key_id: key})


ROSTER = Roster.build(
    1, T0 - timedelta(days=1), T0 + timedelta(days=30), [_member(ME), _member("hotline-dk")], ME
)


def _sign(payload_type: str, payload: bytes) -> Envelope:
    return sign_envelope(KEY, ME, payload_type, payload)


class _Paused:
    """A signer that, once armed, stops inside the transaction that signs:
    the writer holds its transaction open until the test releases it."""

    def __init__(self) -> None:
        self.armed = False
        self.inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, payload_type: str, payload: bytes) -> Envelope:
        if self.armed:
            self.inside.set()
            self.release.wait(WAIT)
        return _sign(payload_type, payload)


def _open_case(db: Database, statuses: StatusBook) -> str:
    book = CaseBook(ME, statuses)
    report = Report(
        new_uuid7(), "hotline-dk", T0, f"https://locks.example.com/{new_uuid7()}", (), 1, 1, "NL"
    )
    envelope = encode_envelope(sign_envelope(KEY, "hotline-dk", REPORT_TYPE, encode_report(report)))
    filing = Filing(report, canonical_url(report.url), envelope)
    with db.write() as session:
        [filed] = book.file_many(session, [filing], T0, FilingBatch())
    return filed.case_id


def _changes(db: Database, statuses: StatusBook, now: datetime) -> CaseChanges:
    return CaseChanges(db, statuses, lambda: ROSTER, lambda _destination: None, lambda: now)


def _record(db: Database, statuses: StatusBook, case_id: str, status: S, now: datetime) -> None:
    actions = CaseActions(_changes(db, statuses, now), Limits())
    actions.record_status(StatusChange(case_id, status))


def _desk(db: Database, statuses: StatusBook, now: datetime) -> ReferralDesk:
    return ReferralDesk(_changes(db, statuses, now), OverduePolicy())


def _race(
    first: Callable[[], object], second: Callable[[], object], paused: _Paused
) -> dict[str, object]:
    """Run ``first`` until it pauses inside its transaction, then ``second``;
    release ``first`` once ``second`` has run (or has waited a while for it).
    What each returned or raised."""
    outcomes: dict[str, object] = {}

    def run(name: str, work: Callable[[], object]) -> None:
        try:
            outcomes[name] = work()
        except Exception as exc:  # the outcome under test
            outcomes[name] = exc

    one = threading.Thread(target=run, args=("first", first))
    one.start()
    assert paused.inside.wait(WAIT)
    two = threading.Thread(target=run, args=("second", second))
    two.start()
    two.join(0.5)  # time to run past the open transaction, if nothing stops it
    paused.release.set()
    one.join(WAIT)
    two.join(WAIT)
    assert not one.is_alive() and not two.is_alive()
    return outcomes


def test_a_hold_renewed_while_a_notice_is_recorded_is_refused(db: Database) -> None:
    """A case on police hold whose hold has run out: process A records
    NOTICE_SENT (its transaction still open) while process B's liaison
    renews the hold. Expect the notice recorded and the hold refused as too
    late: never a hold granted on a case whose notice went out."""
    paused = _Paused()
    process_a = StatusBook(ME, paused)
    process_b = StatusBook(ME, _sign)
    case_id = _open_case(db, process_a)
    _record(db, process_a, case_id, S.ASSESSED_ILLEGAL, T0)
    _desk(db, process_b, T0).request_hold(
        frozenset({"NL"}), case_id, "ongoing investigation", T0 + timedelta(hours=1)
    )
    paused.armed = True
    outcomes = _race(
        lambda: _record(db, process_a, case_id, S.NOTICE_SENT, LATER),
        lambda: _desk(db, process_b, LATER).request_hold(
            frozenset({"NL"}), case_id, "renewed", LATER + timedelta(hours=1)
        ),
        paused,
    )
    assert outcomes["first"] is None
    assert isinstance(outcomes["second"], FailedPreconditionError), outcomes["second"]
    with db.read() as session:
        case = store.get_case(session, case_id)
        assert case is not None
        assert S(case.status) is S.NOTICE_SENT
        assert case.hold_until is None or case.hold_until <= LATER


def test_a_notice_recorded_while_a_hold_is_granted_is_refused(db: Database) -> None:
    """Process A's liaison requests a hold (its transaction still open) while
    an analyst at process B records NOTICE_SENT. Expect the hold granted and
    the notice refused, not an internal error for either."""
    paused = _Paused()
    process_a = StatusBook(ME, paused)
    process_b = StatusBook(ME, _sign)
    case_id = _open_case(db, process_b)
    _record(db, process_b, case_id, S.ASSESSED_ILLEGAL, T0)
    paused.armed = True
    outcomes = _race(
        lambda: _desk(db, process_a, T0).request_hold(
            frozenset({"NL"}), case_id, "ongoing investigation", T0 + timedelta(hours=1)
        ),
        lambda: _record(db, process_b, case_id, S.NOTICE_SENT, T0),
        paused,
    )
    assert not isinstance(outcomes["first"], Exception), outcomes["first"]
    assert isinstance(outcomes["second"], FailedPreconditionError), outcomes["second"]
    with db.read() as session:
        case = store.get_case(session, case_id)
        assert case is not None
        assert S(case.status) is S.LEA_HOLD and case.hold_until is not None
