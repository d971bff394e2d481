"""Batch-size sweep: ingest rate at 1, 10, 100 and 500 reports per Deliver,
and the fixed cost of one call.

On the small database (as the ingest step's first run), one timed run per
batch size against a running hotline-nl. The node is the bottleneck, so
``elapsed / calls`` is the node's time per call; fitting it against the batch
size by least squares gives a line ``time = fixed + per_report * size``, whose
intercept is the fixed cost of a Deliver call (the issue 21 target: at most
3 ms) and whose slope is the cost of one more report in a call.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench import ingest, netctl
from bench.ingest import IngestPlan
from bench.netctl import NL, BenchNet
from bench.progress import say
from bench.report import Results

SIZES = (1, 10, 100, 500)
#: Targets of issue 21 by batch size (reports/s); others have none.
TARGETS = {100: 4500.0, 500: 6000.0}
TARGET_FIXED_MS = 3.0


def measure(
    results: Results,
    plan: IngestPlan,
    net: BenchNet,
    work: Path,
    rng: random.Random,
    seconds: float,
    env: Mapping[str, str],
) -> None:
    """One run per batch size on a database of ``plan.small`` cases, the node
    started with ``env`` (the raised admission limit: at one report per call
    the default 50 calls/s per member would be what is measured)."""
    ingest.install_database(net, work, plan.small)
    netctl.start(net, [NL], env)
    points: list[tuple[int, float]] = []
    try:
        for size in SIZES:
            sized = dataclasses.replace(plan, batch=size, seconds=seconds)
            run = ingest.run_once(net, sized, f"sweep{size}", 0.0, rng)
            calls = len(run.sent.replies)
            per_call_ms = run.sent.elapsed / calls * 1000
            say(f"sweep: batch {size}: {run.rate:,.0f}/s, {per_call_ms:.2f} ms per call")
            results.add(f"sweep_batch_{size}_per_s", run.rate, "items/s", TARGETS.get(size))
            results.add(f"sweep_batch_{size}_ms_per_call", per_call_ms, "ms")
            points.append((size, per_call_ms))
    finally:
        netctl.stop(net, [NL])
    sizes = np.array([p[0] for p in points], dtype=float)
    times = np.array([p[1] for p in points])
    slope, intercept = np.polyfit(sizes, times, 1)
    results.add("deliver_fixed_cost_ms", float(intercept), "ms", TARGET_FIXED_MS, at_most=True)
    results.add("deliver_cost_per_report_us", float(slope) * 1000, "us")
