"""Crashing, restarting and auditing node processes, for the reliability suite.

Helpers shared by the crash, outage, lost-reply, shutdown and storage-fault
tests (tests/reliability/): kill -9 and restart one node (optionally with
extra environment such as a crash point, see federation/runtime/faultpoints.py),
read a node's SQLite file read-only, a sender client that retries each batch
until it holds receipts, and the final set check (lost = 0, duplicated = 0).
Everything is bounded in time; every gRPC call carries a deadline.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from federation.devnet import processes
from federation.runtime.faultpoints import CRASH_ENV, ENABLE_ENV
from federation.store.outbox import OutboxState
from hfp.v1 import envelope_pb2
from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.net import BULK_DEADLINE, Network, wait_exited

#: gRPC codes after which a sender may simply try the same batch again.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)
#: How long a killed node may take to disappear, and a restarted one to serve.
EXIT_TIMEOUT = 15.0
START_TIMEOUT = 60.0


# --- a node's SQLite file, read-only -------------------------------------------


def query(
    network: Network, member_id: str, sql: str, params: Sequence[object] = ()
) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the node's SQLite file (safe while it runs)."""
    uri = f"file:{network.db_path(member_id)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30.0)) as conn:
        return list(conn.execute(sql, params).fetchall())


def scalar(network: Network, member_id: str, sql: str, params: Sequence[object] = ()) -> int:
    """The single integer a read-only query returns."""
    return int(query(network, member_id, sql, params)[0][0])


def stored_receipts(network: Network, member_id: str) -> dict[str, bytes]:
    """Every item the node stored (inbound_items), with the receipt it answered."""
    rows = query(network, member_id, "SELECT item_id, receipt FROM inbound_items")
    return {str(r[0]): bytes(r[1]) for r in rows}


def stored_receipts_of(
    network: Network, member_id: str, item_ids: Iterable[str]
) -> dict[str, bytes]:
    """The stored receipts of the given items (those the node has)."""
    wanted = list(item_ids)
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):  # SQLite caps bound parameters
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = query(
            network,
            member_id,
            f"SELECT item_id, receipt FROM inbound_items WHERE item_id IN ({marks})",
            chunk,
        )
        found.update({str(r[0]): bytes(r[1]) for r in rows})
    return found


def id_counts(network: Network, member_id: str, table: str, column: str) -> Counter[str]:
    """How often each id occurs in ``table.column`` of the node's database."""
    rows = query(network, member_id, f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}")
    return Counter({str(r[0]): int(r[1]) for r in rows})


def integrity_ok(network: Network, member_id: str) -> bool:
    """SQLite's own integrity check of the node's database file."""
    return bool(query(network, member_id, "PRAGMA integrity_check")[0][0] == "ok")


@dataclass(frozen=True)
class OutboxRecord:
    """One row of a sender's outbox, as the tests look at it."""

    item_id: str
    destination: str
    state: OutboxState
    receipt: bytes | None
    attempts: int
    leased: bool


def outbox_rows(network: Network, member_id: str) -> list[OutboxRecord]:
    """Every row of the node's outbox."""
    rows = query(
        network,
        member_id,
        "SELECT item_id, destination, state, receipt, attempts, lease_until IS NOT NULL "
        "FROM outbox ORDER BY id",
    )
    return [
        OutboxRecord(
            str(r[0]),
            str(r[1]),
            OutboxState(r[2]),
            bytes(r[3]) if r[3] is not None else None,
            int(r[4]),
            bool(r[5]),
        )
        for r in rows
    ]


def pending_outbox(network: Network, member_id: str) -> int:
    """Items still pending in the node's outbox."""
    return scalar(
        network, member_id, "SELECT COUNT(*) FROM outbox WHERE state = ?", [OutboxState.PENDING]
    )


# --- waiting -------------------------------------------------------------------


def holds(network: Network, member_id: str, item_id: str) -> Callable[[], bool]:
    """A predicate: the node has stored ``item_id`` (for ``wait_until``)."""
    return lambda: bool(stored_receipts_of(network, member_id, [item_id]))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- node processes ------------------------------------------------------------


@contextmanager
def environment(extra: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for processes started inside the block, then restore.

    Node processes inherit the test's environment (devnet up spawns them).
    """
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def crash_env(point: str) -> dict[str, str]:
    """The environment that arms a crash point (``name`` or ``name:n``)."""
    return {CRASH_ENV: point, ENABLE_ENV: "1"}


def start_node(network: Network, member_id: str, env: Mapping[str, str] | None = None) -> int:
    """Start one node (``devnet up DIR MEMBER``) and wait until it serves; its pid."""
    with environment(env or {}):
        processes.up(network.directory, timeout=START_TIMEOUT, only=[member_id])
    return network.pid(member_id)


def kill9(network: Network, member_id: str) -> None:
    """SIGKILL the node (no shutdown at all) and wait until it is gone."""
    pid = network.pid(member_id)
    os.kill(pid, signal.SIGKILL)
    assert wait_exited(pid, EXIT_TIMEOUT), f"{member_id} (pid {pid}) survived SIGKILL"


def log_text(network: Network, member_id: str) -> str:
    """The node's log (stdout and stderr of every run)."""
    return (network.directory / "members" / member_id / "node.log").read_text(errors="replace")


def crashed_at(network: Network, member_id: str, point: str) -> bool:
    """True when the node's log shows it killed itself at crash point ``point``."""
    return f"crash point {point} reached" in log_text(network, member_id)


# --- a sender that retries until it holds receipts -----------------------------


@dataclass
class Attempt:
    """One Deliver attempt of a batch and how it ended."""

    batch: int
    code: grpc.StatusCode
    #: Items of the batch the receiver had already stored before this attempt.
    stored_before: dict[str, bytes] = field(default_factory=dict)


@dataclass
class RetryingSender:
    """Delivers batches as one member, retrying each batch until it gets receipts.

    A call that fails with a retryable code (the node is down, restarting,
    or lost the reply) is simply sent again, unchanged, as a real sender
    does. Before a retry the sender notes which of the batch's items the
    receiver had already stored (``Attempt.stored_before``), so a test can
    check that the retry was answered with the very receipts stored then.
    """

    network: Network
    caller: str
    target: str
    #: Give up (and fail the test) when a batch has not gone through by then.
    batch_timeout: float = 180.0
    receipts: dict[str, bytes] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    #: Index of the batch being sent now (set before its first attempt).
    current: int = -1
    started: threading.Condition = field(default_factory=threading.Condition)

    def send(self, index: int, items: Sequence[fed_pb.ForwardedItem], ids: Sequence[str]) -> None:
        """Send one batch until it is answered with one receipt per item."""
        with self.started:
            self.current = index
            self.started.notify_all()
        request = fed_pb.DeliverRequest(items=list(items))
        deadline = time.monotonic() + self.batch_timeout
        stored_before: dict[str, bytes] = {}
        while True:
            code, reply = self._call(request)
            self.attempts.append(Attempt(index, code, stored_before))
            if reply is not None:
                assert len(reply.receipts) == len(ids)
                for item_id, receipt in zip(ids, reply.receipts, strict=True):
                    self.receipts[item_id] = receipt.SerializeToString()
                return
            assert code in RETRYABLE, f"batch {index}: {code} is not retryable"
            assert time.monotonic() < deadline, f"batch {index} not answered in time"
            time.sleep(0.2)
            stored_before = stored_receipts_of(self.network, self.target, ids)

    def _call(
        self, request: fed_pb.DeliverRequest
    ) -> tuple[grpc.StatusCode, fed_pb.DeliverResponse | None]:
        # A fresh channel per attempt: after a kill the old connection is dead.
        try:
            with self.network.stub(self.caller, self.target) as stub:
                return grpc.StatusCode.OK, stub.Deliver(request, timeout=BULK_DEADLINE)
        except grpc.RpcError as exc:
            return exc.code(), None

    def wait_for_batch(self, index: int, timeout: float) -> bool:
        """Wait (bounded) until the sender has started batch ``index``."""
        with self.started:
            return self.started.wait_for(lambda: self.current >= index, timeout)

    def retried_receipts_match(self) -> tuple[int, list[str]]:
        """Items retried after the receiver had stored them, and those of them whose
        final receipt differs from the one stored before the retry."""
        checked: set[str] = set()
        differ: set[str] = set()
        for attempt in self.attempts:
            for item_id, stored in attempt.stored_before.items():
                checked.add(item_id)
                if self.receipts.get(item_id) != stored:
                    differ.add(item_id)
        return len(checked), sorted(differ)


# --- the set check -------------------------------------------------------------


@dataclass(frozen=True)
class SetCheck:
    """Jepsen-style set check of what a receiver holds against what was sent."""

    expected: int
    lost: list[str]
    duplicated: list[str]
    unexpected: list[str]

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing stored twice, nothing that was never sent."""
        return not (self.lost or self.duplicated or self.unexpected)

    def summary(self) -> str:
        """One line for the test output."""
        return (
            f"expected = {self.expected}, lost = {len(self.lost)}, "
            f"duplicated = {len(self.duplicated)}, unexpected = {len(self.unexpected)}"
        )


def set_check(expected: Iterable[str], *stored: Counter[str]) -> SetCheck:
    """Every expected id stored exactly once in each of the ``stored`` tallies."""
    wanted = set(expected)
    lost: set[str] = set()
    duplicated: set[str] = set()
    unexpected: set[str] = set()
    for tally in stored:
        lost |= wanted - set(tally)
        duplicated |= {k for k, n in tally.items() if n > 1}
        unexpected |= set(tally) - wanted
    return SetCheck(len(wanted), sorted(lost), sorted(duplicated), sorted(unexpected))


def receipt_envelope(data: bytes) -> envelope_pb2.SignedEnvelope:
    """A stored or received receipt (serialized SignedEnvelope) as a message."""
    return envelope_pb2.SignedEnvelope.FromString(data)
