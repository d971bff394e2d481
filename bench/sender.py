"""Send pre-serialized Deliver batches from a few client threads, and check the answers.

The client sends the DeliverRequest bytes as they are and keeps the reply
bytes unparsed while the clock runs (gRPC with no serializers), so that the
client's share of the two cores stays as small as possible. Receipts are
parsed and their signatures checked after the timing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from bench.workload import Batch
from crypto.dsse import Envelope
from federation.core.reasons import RECEIPT_TYPE
from federation.core.roster import Roster
from federation.trust.holder import signed_by_member
from federation.wire.convert import envelope_from_proto
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import receipt_pb2

DELIVER = "/hfp.v1.FederationService/Deliver"
#: Deadline of one Deliver call carrying a full batch (a slow node under load
#: takes seconds per batch; the deadline only guards against a hung node).
BATCH_DEADLINE = 300.0
#: Outcomes that mean the item was taken in.
TAKEN = frozenset({"OUTCOME_ACCEPTED", "OUTCOME_DUPLICATE", "OUTCOME_FORWARDED"})


@dataclass
class Sent:
    """What a timed send produced."""

    replies: list[tuple[Batch, bytes]]
    #: From the first request to the last reply, in seconds.
    elapsed: float

    @property
    def items(self) -> int:
        """Items sent (and answered)."""
        return sum(batch.size for batch, _ in self.replies)


def send_batches(
    channel: grpc.Channel, batches: Sequence[Batch], threads: int, seconds: float
) -> Sent:
    """Send ``batches`` from ``threads`` threads until they run out or ``seconds`` pass.

    A batch already started is always finished, so the run may last one
    batch longer than ``seconds``.
    """
    call = channel.unary_unary(DELIVER, request_serializer=None, response_deserializer=None)
    lock = threading.Lock()
    queue = iter(batches)
    replies: list[tuple[Batch, bytes]] = []
    start = time.perf_counter()
    stop_at = start + seconds

    def worker() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                batch = next(queue, None)
            if batch is None:
                return
            reply = call(batch.data, timeout=BATCH_DEADLINE)
            with lock:
                replies.append((batch, reply))

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return Sent(replies, time.perf_counter() - start)


@dataclass
class Tally:
    """The receipts of a run, counted and checked."""

    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    verified: int = 0
    bad_signatures: int = 0

    @property
    def taken(self) -> int:
        """Items accepted, joined to a case or forwarded."""
        return sum(n for outcome, n in self.outcomes.items() if outcome in TAKEN)

    @property
    def unexpected(self) -> int:
        """Items whose outcome differs from the one planned."""
        return sum((self.expected - self.outcomes).values())


def _check_signature(envelope: Envelope, roster: Roster) -> bool:
    return envelope.payload_type == RECEIPT_TYPE and signed_by_member(envelope, roster)


def tally(replies: Sequence[tuple[Batch, bytes]], roster: Roster, verify_every: int = 10) -> Tally:
    """Count outcomes; verify the signature of every ``verify_every``-th receipt
    and of every receipt that is not a plain acceptance."""
    result = Tally()
    position = 0
    for batch, data in replies:
        result.expected.update(batch.expected)
        response = fed_pb.DeliverResponse.FromString(data)
        if len(response.receipts) != batch.size:
            raise RuntimeError(f"{len(response.receipts)} receipts for {batch.size} items")
        for signed in response.receipts:
            envelope = envelope_from_proto(signed)
            receipt = receipt_pb2.Receipt.FromString(envelope.payload)
            outcome = receipt_pb2.Outcome.Name(receipt.outcome)
            result.outcomes[outcome] += 1
            if outcome not in TAKEN:
                result.reasons[receipt_pb2.RejectReason.Name(receipt.reject_reason)] += 1
            if position % verify_every == 0 or outcome not in TAKEN:
                result.verified += 1
                result.bad_signatures += not _check_signature(envelope, roster)
            position += 1
    return result


def describe(result: Tally) -> str:
    """One line: outcomes, refusals with reasons, and the signature check."""
    outcomes = ", ".join(
        f"{k.removeprefix('OUTCOME_')} {v}" for k, v in sorted(result.outcomes.items())
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.reasons.items())) or "none"
    return (
        f"outcomes: {outcomes}; refusal reasons: {reasons}; "
        f"unexpected outcomes: {result.unexpected}; "
        f"receipt signatures checked: {result.verified}, bad: {result.bad_signatures}"
    )
