"""The steps of bench/run and the sizes of a quick and a full run (see bench.main)."""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import (
    catchup,
    ceiling,
    dedup,
    e2e,
    grpc_raw,
    import_rate,
    ingest,
    medallion,
    netctl,
    scaleout,
    startup,
    sweep,
)
from bench.catchup import CatchupPlan
from bench.ingest import IngestPlan
from bench.netctl import DK, NL, BenchNet
from bench.progress import say
from bench.report import Results
from bench.workload import plan_items, presign
from federation.node.config import NodeConfig

#: The flow network's nodes retry an unreachable peer after at most 1 s (the
#: devnet default is 5 s), so that the catch-up step does not wait out a
#: long backoff; the wait is reported as its own figure.
FLOW_ENV = {"HFED_OUTBOX__BACKOFF_CAP_SECONDS": "1"}
#: The node's admission rate limit (50 calls/s per member, bursts of 100)
#: refuses an analyst submitting 500 single reports per second, so the flow
#: network raises it (see docs/benchmarks.md); the limit of calls in flight
#: stays at its default, which the e2e client respects.
ADMISSION_ENV = {
    "HFED_ADMISSION__CALLS_PER_SECOND": "2000",
    "HFED_ADMISSION__BURST": "2000",
}
#: How long the e2e step waits for the last reports to reach the stream.
E2E_DRAIN = 60.0


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one run (quick or full)."""

    quick: bool
    ceiling_seconds: float
    grpc_seconds: float
    ingest: IngestPlan
    medallion_seconds: float
    e2e_seconds: float
    e2e_rate: float
    catchup_items: int
    catchup_seconds: float
    exact_hashes: int
    pdq_hashes: int
    queries: int
    #: Seconds of each batch size's run in the sweep.
    sweep_seconds: float
    #: Rows of the importer's file.
    import_rows: int
    #: Seconds of each PostgreSQL scale-out run (one, then two processes).
    scaleout_seconds: float


def make_plan(quick: bool, threads: int, batch: int) -> Plan:
    """The sizes of a quick or a full run."""
    workers = ceiling.cores()
    if quick:
        return Plan(
            quick=True,
            ceiling_seconds=0.5,
            grpc_seconds=3.0,
            ingest=IngestPlan(10_000, 100_000, 6.0, threads, batch, 60_000, workers),
            medallion_seconds=8.0,
            e2e_seconds=1.0,
            e2e_rate=200.0,
            catchup_items=10_000,
            catchup_seconds=3.0,
            exact_hashes=1_000_000,
            pdq_hashes=1_000_000,
            queries=1000,
            sweep_seconds=2.0,
            import_rows=5_000,
            scaleout_seconds=4.0,
        )
    return Plan(
        quick=False,
        ceiling_seconds=2.0,
        grpc_seconds=10.0,
        ingest=IngestPlan(10_000, 1_000_000, 30.0, threads, batch, 400_000, workers),
        medallion_seconds=120.0,
        e2e_seconds=10.0,
        e2e_rate=200.0,
        catchup_items=100_000,
        catchup_seconds=60.0,
        exact_hashes=10_000_000,
        pdq_hashes=1_000_000,
        queries=2000,
        sweep_seconds=8.0,
        import_rows=30_000,
        scaleout_seconds=15.0,
    )


@dataclass
class Context:
    """What the steps share."""

    plan: Plan
    results: Results
    work: Path
    rng: random.Random
    _ingest_net: BenchNet | None = None
    _flow_net: BenchNet | None = None

    def ingest_net(self) -> BenchNet:
        """The network of the ingest and raw gRPC steps (created once)."""
        if self._ingest_net is None:
            say("creating the ingest network (devnet init)")
            self._ingest_net = netctl.create(self.work / "ingest-net")
        return self._ingest_net

    def flow_net(self) -> BenchNet:
        """The network of the e2e and catch-up steps: hotline-dk and hotline-nl running."""
        if self._flow_net is None:
            say("creating the flow network (devnet init) and starting hotline-dk, hotline-nl")
            self._flow_net = netctl.create(self.work / "flow-net")
            env = dict(FLOW_ENV)
            if "admission" in NodeConfig.model_fields:
                env.update(ADMISSION_ENV)
            netctl.start(self._flow_net, [DK, NL], env)
        return self._flow_net


def step_ceiling(ctx: Context) -> None:
    """Crypto rates per core and the ceiling."""
    ceiling.measure(ctx.results, ctx.plan.ceiling_seconds)


def step_grpc(ctx: Context) -> None:
    """The empty-handler gRPC throughput."""
    net = ctx.ingest_net()
    plan = ctx.plan.ingest
    items = plan_items(plan.batch, "grpc", ctx.rng, batch_size=plan.batch)
    [batch] = presign(net.signing_key_path(DK), DK, items, plan.batch, 1)
    grpc_raw.measure(
        ctx.results, net, batch, plan.threads, ctx.plan.grpc_seconds, ctx.work / "grpc"
    )


def step_ingest(ctx: Context) -> None:
    """Ingest at two database sizes."""
    ingest.measure(ctx.results, ctx.plan.ingest, ctx.ingest_net(), ctx.work, ctx.rng)


#: Objects posted to medallion when the ingest step did not run.
MEDALLION_DEFAULT_OBJECTS = 5000


def step_sweep(ctx: Context) -> None:
    """Ingest at batch sizes 1, 10, 100, 500 and the fixed cost of a call."""
    plan = ctx.plan
    net, work = ctx.ingest_net(), ctx.work
    sweep.measure(ctx.results, plan.ingest, net, work, ctx.rng, plan.sweep_seconds, ADMISSION_ENV)


def step_import(ctx: Context) -> None:
    """hfed report import through SubmitReports, rows per second."""
    import_rate.measure(ctx.results, ctx.flow_net(), ctx.work, ctx.plan.import_rows, ctx.rng)


def step_scaleout(ctx: Context) -> None:
    """Ingest on PostgreSQL by one and by two node processes of one member."""
    scaleout.measure(ctx.results, ctx.plan.ingest, ctx.work, ctx.rng, ctx.plan.scaleout_seconds)


def step_medallion(ctx: Context) -> None:
    """The same number of objects into medallion."""
    plan = ctx.plan.ingest
    count = int(ctx.results.get("ingest_items_small") or MEDALLION_DEFAULT_OBJECTS)
    medallion.measure(
        ctx.results, ctx.work, count, plan.batch, plan.threads, ctx.plan.medallion_seconds
    )


def step_e2e(ctx: Context) -> None:
    """Submit at hotline-dk until police-nl's stream shows it."""
    plan = ctx.plan
    e2e.measure(ctx.results, ctx.flow_net(), plan.e2e_rate, plan.e2e_seconds, E2E_DRAIN)


def catchup_items(ctx: Context) -> int:
    """The backlog size: the plan's, or in quick mode what the node ingests in
    catchup_seconds at the rate just measured, if that is less (at least 2,000)."""
    items = ctx.plan.catchup_items
    rate = ctx.results.get("ingest_reports_per_s")
    if ctx.plan.quick and rate:
        batch = ctx.plan.ingest.batch
        fits = max(2000, round(rate * ctx.plan.catchup_seconds / batch) * batch)
        items = min(items, fits)
    return items


def step_catchup(ctx: Context) -> None:
    """Backlog drain after an outage of hotline-nl."""
    ingest_plan = ctx.plan.ingest
    items = catchup_items(ctx)
    plan = CatchupPlan(
        items, ingest_plan.threads, ingest_plan.batch, ingest_plan.workers, 60 + items / 200
    )
    catchup.measure(ctx.results, ctx.flow_net(), plan, ctx.rng)


def step_dedup(ctx: Context) -> None:
    """Exact and PDQ look-up latencies."""
    plan = ctx.plan
    dedup.measure_exact(ctx.results, ctx.work, plan.exact_hashes, plan.queries, ctx.rng)
    dedup.measure_pdq(ctx.results, plan.pdq_hashes, plan.queries, seed=1)


def step_startup(ctx: Context) -> None:
    """How long hfed takes to start."""
    startup.measure(ctx.results, ctx.work, 5 if ctx.plan.quick else 10)


STEP_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "ceiling": step_ceiling,
    "grpc": step_grpc,
    "ingest": step_ingest,
    "sweep": step_sweep,
    "scaleout": step_scaleout,
    "medallion": step_medallion,
    "e2e": step_e2e,
    "import": step_import,
    "catchup": step_catchup,
    "dedup": step_dedup,
    "startup": step_startup,
}


def derive(results: Results) -> None:
    """Figures computed from others: ingest as a share of its ceilings."""
    rate = results.get("ingest_reports_per_s")
    for key, ceiling_key in (
        ("ingest_share_of_ceiling_pct", "ceiling_items_per_s"),
        ("ingest_share_of_grpc_pct", "grpc_empty_items_per_s"),
    ):
        top = results.get(ceiling_key)
        if rate is not None and top:
            results.add(key, rate / top * 100, "%", 50.0)
    theirs = results.get("medallion_objects_per_s")
    if rate is not None and theirs:
        results.add("ratio_vs_medallion", rate / theirs, "x", 5.0)


def run_steps(ctx: Context, steps: list[str]) -> list[str]:
    """Run the chosen steps in order; the names of those that failed."""
    failed = []
    for name in steps:
        say(f"== {name}")
        try:
            STEP_FUNCTIONS[name](ctx)
        except Exception:  # one broken step must not hide the others
            traceback.print_exc()
            say(f"step {name} FAILED; its figures are missing")
            failed.append(name)
    return failed
