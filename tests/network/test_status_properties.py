"""Property-based test of the status flow across real nodes (spec sections 6, 7, 10).

A hypothesis state machine drives a running four-node network with random
sequences of reports, duplicates from other hotlines, legal status steps
(MOVED chains included) recorded at whichever node owns the case, forged
updates from a member that owns nothing, and repeated, reordered
redeliveries of genuine updates. After each run, once every outbox has
drained, it checks:

* every report has exactly one responsible member, which holds it in an
  open case (nothing accepted is lost, nothing left without an owner);
* every reporter's view of its report shows histories that follow the
  transition table case by case, each update signed by that case's owner;
* no forged update is visible anywhere.

Runs and steps are few and every wait is bounded: each run costs a few
seconds of real traffic on loopback.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import grpc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from federation.core.case_status import TRANSITIONS, CaseStatus
from federation.core.ids import new_uuid7
from federation.wire.convert import decode_envelope
from hfp.v1 import case_pb2, receipt_pb2, status_pb2
from tests.network.test_hostile_status import assert_signed_by, send, update_item
from tests.support.hotline import get_case, record, submit_url
from tests.support.net import Network, item, running_network

HOTLINES = ("hotline-dk", "hotline-nl", "hotline-de")
NODES = (*HOTLINES, "secretariat")
#: Hosting country -> the member responsible for it in the default devnet.
OWNER_OF = {"DK": "hotline-dk", "NL": "hotline-nl", "DE": "hotline-de", "FR": "secretariat"}
FORGER = "conformance"  # a hotline member (jurisdiction XA) that owns none of these
SETTLE = 45.0


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("status-props") / "net") as net:
        yield net


@dataclass
class _Report:
    report_id: str
    origin: str
    url: str


@dataclass
class _Model:
    reports: list[_Report] = field(default_factory=list)
    forged_update_ids: set[str] = field(default_factory=set)


def _pending_outbox(net: Network) -> int:
    total = 0
    for member in NODES:
        with closing(sqlite3.connect(net.db_path(member))) as db:
            total += db.execute(
                "SELECT count(*) FROM outbox WHERE state = 0 AND destination != ?", (FORGER,)
            ).fetchone()[0]
    return total


def _settle(net: Network) -> None:
    deadline = time.monotonic() + SETTLE
    while _pending_outbox(net):
        assert time.monotonic() < deadline, "outboxes never drained"
        time.sleep(0.2)


def _find(net: Network, member: str, report_id: str) -> case_pb2.Case | None:
    try:
        return get_case(net, member, report_id=report_id)
    except grpc.RpcError as exc:
        assert exc.code() is grpc.StatusCode.NOT_FOUND, exc
        return None


def _owner_case(net: Network, report_id: str) -> tuple[str, case_pb2.Case] | None:
    """The node holding the report in an open case of its own, if exactly one does."""
    found = []
    for member in NODES:
        case = _find(net, member, report_id)
        if case and case.responsible_member_id == member and case.status != CaseStatus.MOVED:
            found.append((member, case))
    assert len(found) <= 1, f"{report_id} has several owners: {[m for m, _ in found]}"
    return found[0] if found else None


def _wait_owner(
    net: Network, report_id: str, timeout: float = 3.0
) -> tuple[str, case_pb2.Case] | None:
    """The report's owner and case, waiting a little for a forward or a move to land."""
    deadline = time.monotonic() + timeout
    while (owned := _owner_case(net, report_id)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return owned


def _check_history(net: Network, case: case_pb2.Case, forged: set[str]) -> None:
    """Case by case, the history follows the table and is signed by an owner."""
    previous: dict[str, CaseStatus | None] = {}
    for update in case.history:
        assert update.update_id not in forged, "a forged update is visible"
        before = previous.get(update.case_id)
        status = CaseStatus(update.status)
        allowed = {CaseStatus.RECEIVED} if before is None else TRANSITIONS.get(before, set())
        assert status in allowed, f"{before} -> {status} applied"
        previous[update.case_id] = status
    assert_signed_by(net, case, [u.member_id for u in case.history])
    assert not {u.member_id for u in case.history} & {FORGER}


class StatusFlow(RuleBasedStateMachine):
    """Random traffic against one shared network; each run uses fresh URLs."""

    net: Network

    def __init__(self) -> None:
        super().__init__()
        self.model = _Model()
        self.rng = random.Random(0)
        self.moves = 0
        self.advances = 0

    @initialize(origin=st.sampled_from(HOTLINES), country=st.sampled_from(sorted(OWNER_OF)))
    def first_report(self, origin: str, country: str) -> None:
        self.report(origin, country)

    @rule(origin=st.sampled_from(HOTLINES), country=st.sampled_from(sorted(OWNER_OF)))
    def report(self, origin: str, country: str) -> None:
        url = f"https://props.example.com/{os.urandom(6).hex()}"
        receipt = submit_url(self.net, origin, url, country)
        assert receipt.outcome != receipt_pb2.OUTCOME_REJECTED, receipt.detail
        self.model.reports.append(_Report(receipt.item_id, origin, url))

    @precondition(lambda self: self.model.reports)
    @rule(
        pick=st.integers(0, 10**6),
        origin=st.sampled_from(HOTLINES),
        country=st.sampled_from(sorted(OWNER_OF)),
    )
    def duplicate(self, pick: int, origin: str, country: str) -> None:
        earlier = self.model.reports[pick % len(self.model.reports)]
        receipt = submit_url(self.net, origin, earlier.url, country)
        assert receipt.outcome != receipt_pb2.OUTCOME_REJECTED, receipt.detail
        self.model.reports.append(_Report(receipt.item_id, origin, earlier.url))

    @precondition(lambda self: self.model.reports)
    @rule(pick=st.integers(0, 10**6), step=st.integers(0, 10**6), where=st.integers(0, 10**6))
    def advance(self, pick: int, step: int, where: int) -> None:
        """Record a legal next status at the report's current owner, if it has
        one yet. Everything is drawn up front: what the network answers must
        not change what hypothesis draws."""
        report = self.model.reports[pick % len(self.model.reports)]
        owned = _wait_owner(self.net, report.report_id)
        self.advances += 1
        if owned is None:
            return  # still on its way: nothing to record yet
        owner, case = owned
        choices = sorted(TRANSITIONS.get(CaseStatus(case.status), set()) - {CaseStatus.LEA_HOLD})
        if not choices:
            return
        if CaseStatus.MOVED in choices:  # moves are what this test is most about
            choices += [CaseStatus.MOVED] * 3 * len(choices)
        status = choices[step % len(choices)]
        extra = {}
        if status is CaseStatus.MOVED:
            elsewhere = sorted(c for c, m in OWNER_OF.items() if m != owner)
            extra["new_hosting_country"] = elsewhere[where % len(elsewhere)]
        self.moves += status is CaseStatus.MOVED
        try:
            record(self.net, owner, case.case_id, int(status), **extra)
        except grpc.RpcError as exc:  # the case moved on since it was read
            assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION, exc

    @precondition(lambda self: self.model.reports)
    @rule(
        pick=st.integers(0, 10**6),
        invent=st.booleans(),
        status=st.sampled_from(list(CaseStatus)),
        sequence=st.integers(min_value=1, max_value=6),
    )
    def forge(self, pick: int, invent: bool, status: CaseStatus, sequence: int) -> None:
        """A member that owns nothing writes about a report, to its author."""
        report = self.model.reports[pick % len(self.model.reports)]
        seen = _find(self.net, report.origin, report.report_id)
        case_id = new_uuid7() if invent or seen is None else seen.case_id
        extra = {"new_hosting_country": "XA"} if status is CaseStatus.MOVED else {}
        forged = update_item(
            self.net, FORGER, case_id, [report.report_id], int(status), sequence, **extra
        )
        self.model.forged_update_ids.add(
            status_pb2.StatusUpdate.FromString(forged.envelope.payload).update_id
        )
        [answer] = send(self.net, FORGER, report.origin, [forged])
        assert answer.outcome == receipt_pb2.OUTCOME_REJECTED, answer

    @precondition(lambda self: self.model.reports)
    @rule(pick=st.integers(0, 10**6))
    def redeliver(self, pick: int) -> None:
        """An owner's stored updates delivered again to a reporter, shuffled."""
        report = self.model.reports[pick % len(self.model.reports)]
        owned = _wait_owner(self.net, report.report_id)
        if owned is None or owned[0] == report.origin:
            return
        owner, case = owned
        with closing(sqlite3.connect(self.net.db_path(owner))) as db:
            rows = db.execute(
                "SELECT envelope FROM status_updates WHERE case_id = ?", (case.case_id,)
            ).fetchall()
        items = [item(decode_envelope(bytes(row[0]))) for row in rows]
        self.rng.shuffle(items)
        if items:
            send(self.net, owner, report.origin, items * 2)

    @invariant()
    def nothing_forged_is_visible_to_reporters(self) -> None:
        for report in self.model.reports[-3:]:
            seen = _find(self.net, report.origin, report.report_id)
            if seen is not None:
                _check_history(self.net, seen, self.model.forged_update_ids)

    def teardown(self) -> None:
        print(
            f"run: {len(self.model.reports)} reports, {self.advances} steps, {self.moves} moves,"
            f" {len(self.model.forged_update_ids)} forged"
        )
        _settle(self.net)
        for report in self.model.reports:
            owned = _owner_case(self.net, report.report_id)
            assert owned is not None, f"{report.report_id} has no responsible member"
            owner, _ = owned
            seen = _find(self.net, report.origin, report.report_id)
            assert seen is not None, f"{report.origin} lost sight of {report.report_id}"
            _check_history(self.net, seen, self.model.forged_update_ids)
            if report.origin != owner:
                assert seen.responsible_member_id == owner, (report, seen.responsible_member_id)


@pytest.mark.timeout(900)
def test_status_flow_properties(network: Network) -> None:
    StatusFlow.net = network
    runner = StatusFlow.TestCase
    runner.settings = settings(
        max_examples=int(os.environ.get("HFED_STATUS_EXAMPLES", "40")),
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    runner().runTest()
