"""Ingest: signed reports accepted per second by one node through batched Deliver.

Only hotline-nl runs (a real ``devnet up`` process with its SQLite default);
the client, on the same machine, sends pre-signed batches from hotline-dk over
mutual TLS from a few threads. 90% of the reports are hosted in NL (filed into
cases; 5% of them repeat a URL of their batch and join its case), 10% in DE
(forwarded: queued in the outbox for hotline-de). Every receipt is counted by
outcome and a sample of their signatures is verified.

Each run is preceded by an untimed warm-up batch per thread, whose rate sizes
the timed run (enough pre-signed batches for the run's seconds). The same is
measured at two database sizes: before each run the stopped node gets a copy
of a database preloaded by ``bench.preload`` (cached in the work directory).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from bench import netctl, preload
from bench.netctl import DK, NL, BenchNet
from bench.progress import say
from bench.report import Results
from bench.sender import Sent, Tally, describe, send_batches, tally
from bench.workload import Batch, plan_items, presign

TARGET_PER_S = 6000.0
TARGET_SLOWDOWN_PCT = 20.0
#: Pre-sign this much more than the warm-up rate predicts for the run.
HEADROOM = 2.0


@dataclass(frozen=True)
class IngestPlan:
    """Sizes of the ingest measurement."""

    small: int
    large: int
    seconds: float
    threads: int
    batch: int
    #: Cap on the items pre-signed for one run.
    max_items: int
    workers: int


@dataclass(frozen=True)
class RunResult:
    """One timed run at one database size."""

    stored: int
    sent: Sent
    checked: Tally
    peak_rss_mib: float

    @property
    def rate(self) -> float:
        """Items taken in per second."""
        return self.checked.taken / self.sent.elapsed


def presigned(
    net: BenchNet, plan: IngestPlan, count: int, tag: str, rng: random.Random
) -> list[Batch]:
    """``count`` reports from hotline-dk, signed, in DeliverRequests of ``plan.batch``."""
    items = plan_items(count, tag, rng, batch_size=plan.batch)
    return presign(net.signing_key_path(DK), DK, items, plan.batch, plan.workers)


def run_once(
    net: BenchNet, plan: IngestPlan, tag: str, prior: float, rng: random.Random
) -> RunResult:
    """Warm up, size and time one run against the running node.

    The run is sized for the warm-up's rate or ``prior`` (an earlier run's),
    whichever is higher: a warm-up on a cold database underestimates.
    """
    stored = preload.count_cases(net.db_path(NL))
    warm = presigned(net, plan, plan.threads * plan.batch, f"{tag}-warm", rng)
    roster = net.roster()
    with net.channel(DK, NL) as channel:
        warmed = send_batches(channel, warm, plan.threads, seconds=math.inf)
        guess = tally(warmed.replies, roster).taken / warmed.elapsed
        wanted = max(guess, prior) * plan.seconds * HEADROOM
        count = plan.batch * max(2 * plan.threads, math.ceil(wanted / plan.batch))
        count = min(count, max(plan.max_items, 2 * plan.threads * plan.batch))
        say(f"ingest {tag}: warm-up {guess:,.0f}/s; pre-signing {count:,} reports")
        batches = presigned(net, plan, count, tag, rng)
        say(f"ingest {tag}: sending for up to {plan.seconds:.0f}s, {plan.threads} threads")
        sent = send_batches(channel, batches, plan.threads, plan.seconds)
    checked = tally(sent.replies, roster)
    say(f"ingest {tag}: {sent.items:,} items in {sent.elapsed:.1f}s; {describe(checked)}")
    return RunResult(stored, sent, checked, netctl.peak_rss_mib(net.pid(NL)))


def install_database(net: BenchNet, work: Path, cases: int) -> None:
    """Give the stopped node a database holding ``cases`` preloaded cases."""
    preload.install_copy(preload.template(work, cases, say), net.db_path(NL))


def _session(
    net: BenchNet,
    plan: IngestPlan,
    work: Path,
    cases: int,
    tag: str,
    prior: float,
    rng: random.Random,
) -> RunResult:
    """Install a database of ``cases`` cases, start the node, run, stop it."""
    install_database(net, work, cases)
    netctl.start(net, [NL])
    try:
        return run_once(net, plan, tag, prior, rng)
    finally:
        netctl.stop(net, [NL])


def measure(
    results: Results, plan: IngestPlan, net: BenchNet, work: Path, rng: random.Random
) -> None:
    """Ingest at ``plan.small`` then at ``plan.large`` stored cases."""
    small = _session(net, plan, work, plan.small, "small", 0.0, rng)
    large = _session(net, plan, work, plan.large, "large", small.rate, rng)
    results.add("ingest_reports_per_s", small.rate, "items/s", TARGET_PER_S)
    results.add("ingest_reports_per_s_at_10k", small.rate, "items/s", TARGET_PER_S)
    results.add("ingest_reports_per_s_at_large", large.rate, "items/s", TARGET_PER_S)
    slowdown = (1 - large.rate / small.rate) * 100
    results.add("ingest_slowdown_pct", slowdown, "%", TARGET_SLOWDOWN_PCT, at_most=True)
    results.add("ingest_small_stored_cases", small.stored, "cases")
    results.add("ingest_large_stored_cases", large.stored, "cases")
    results.add("ingest_items_small", small.sent.items, "items")
    results.add("ingest_items_large", large.sent.items, "items")
    results.add("ingest_batch_items", plan.batch, "items")
    results.add("ingest_client_threads", plan.threads, "threads")
    for name, run in (("small", small), ("large", large)):
        results.add(f"ingest_unexpected_outcomes_{name}", run.checked.unexpected, "items")
    results.add(
        "ingest_bad_receipt_signatures",
        small.checked.bad_signatures + large.checked.bad_signatures,
        "receipts",
    )
    results.add("node_peak_rss_mib", max(small.peak_rss_mib, large.peak_rss_mib), "MiB")
