"""Catch-up: how fast hotline-dk drains its queue for hotline-nl after an outage.

hotline-nl is stopped. hotline-de (not running; its identity and key are
used by the client) delivers N reports hosted in NL to hotline-dk, which
answers FORWARDED and queues each in its outbox for hotline-nl. The queue is
confirmed in hotline-dk's database, hotline-nl is started, and hotline-dk's
pending count for it is polled (every 0.1 s, read-only) until it is zero.

Figures: the wait from hotline-nl serving to the first delivery (hotline-dk's
backoff; the flow network's nodes run with a 1 s backoff cap, see bench.main),
and the drain rate from the first delivery until the queue is empty: the
items still queued at the first poll that saw a delivery, divided by the time
from that poll to the poll that saw it empty.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bench import netctl
from bench.netctl import DE, DK, NL, BenchNet
from bench.progress import say
from bench.report import Results
from bench.sender import describe, send_batches, tally
from bench.workload import plan_items, presign
from federation.store.outbox import OutboxState

TARGET_PER_S = 2000.0
POLL_SECONDS = 0.1
#: Give up when the queue has not shrunk for this long (the peer refuses or fails).
STALL_SECONDS = 30.0


@dataclass(frozen=True)
class CatchupPlan:
    """Sizes of the catch-up measurement."""

    items: int
    threads: int
    batch: int
    workers: int
    #: Give up waiting for the queue to drain after this long.
    drain_timeout: float


def pending(db_path: Path, destination: str) -> int:
    """Items the node still owes ``destination`` (read-only look at its database)."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10.0)) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE destination = ? AND state = ?",
            (destination, int(OutboxState.PENDING)),
        ).fetchone()
    return int(row[0])


def _queue_at_dk(results: Results, net: BenchNet, plan: CatchupPlan, rng: random.Random) -> int:
    """Deliver the reports from hotline-de to hotline-dk; the resulting queue length."""
    items = [
        dataclasses.replace(p, expect="OUTCOME_FORWARDED")
        for p in plan_items(plan.items, "catchup", rng, batch_size=plan.batch, away_share=0)
    ]
    batches = presign(net.signing_key_path(DE), DE, items, plan.batch, plan.workers)
    say(f"catchup: {NL} stopped; delivering {plan.items:,} NL reports from {DE} to {DK}")
    with net.channel(DE, DK) as channel:
        sent = send_batches(channel, batches, plan.threads, math.inf)
    checked = tally(sent.replies, net.roster())
    say(f"catchup: {DK} took {sent.items:,} in {sent.elapsed:.1f}s; {describe(checked)}")
    results.add("catchup_fill_items_per_s", checked.taken / sent.elapsed, "items/s")
    return pending(net.db_path(DK), NL)


def _drain(net: BenchNet, queued: int, timeout: float) -> tuple[float, float, int]:
    """Start hotline-nl and poll; (wait before first delivery, drain seconds, items drained)."""
    db = net.db_path(DK)
    netctl.start(net, [NL])
    serving = time.monotonic()
    first: tuple[float, int] | None = None
    left, moved = queued, serving
    while left and time.monotonic() - serving < timeout:
        time.sleep(POLL_SECONDS)
        now, before, left = time.monotonic(), left, pending(db, NL)
        if left < before:
            moved = now
        elif now - moved > STALL_SECONDS:
            raise RuntimeError(f"{left:,} items stuck in the queue: see {NL}'s node.log")
        if first is None and left < queued:
            first = (now, left)
    end = time.monotonic()
    if left:
        raise RuntimeError(f"{left:,} items still queued after {timeout:.0f}s")
    if first is None:
        raise RuntimeError("the queue emptied between two polls: too few items to time")
    return first[0] - serving, end - first[0], first[1]


def measure(results: Results, net: BenchNet, plan: CatchupPlan, rng: random.Random) -> None:
    """Outage of hotline-nl, backlog at hotline-dk, then the drain."""
    netctl.stop(net, [NL])
    queued = _queue_at_dk(results, net, plan, rng)
    if queued < plan.items:
        raise RuntimeError(f"only {queued:,} of {plan.items:,} items queued at {DK}")
    say(f"catchup: {queued:,} items queued at {DK} for {NL}; starting {NL}")
    wait, seconds, drained = _drain(net, queued, plan.drain_timeout)
    say(f"catchup: first delivery after {wait:.1f}s; {drained:,} more drained in {seconds:.1f}s")
    results.add("catchup_items_per_s", drained / seconds, "items/s", TARGET_PER_S)
    results.add("catchup_wait_before_first_s", wait, "s")
    results.add("catchup_items", queued, "items")
