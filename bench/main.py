"""bench/run: the benchmark suite of issue 8, one command, one table of figures.

Measures, on this machine, against real node processes started as
``hfed devnet up`` starts them:

  ceiling   Ed25519 verifies and signs per second per core (PyNaCl, cryptography)
            and the ceiling they set: cores / (1/verify_rate + 1/sign_rate) items/s
  grpc      the same Deliver traffic against an empty gRPC handler (transport only)
  ingest    signed reports accepted per second by hotline-nl through batched
            Deliver, at a small and a large database (10k / 1M cases; quick: 10k / 100k)
  sweep     ingest at 1, 10, 100 and 500 reports per Deliver (small database), and
            the fixed cost of one call: the intercept of time per call against batch size
  scaleout  ingest on PostgreSQL by one and by two processes of hotline-nl (one
            database, a throwaway cluster; needs PostgreSQL's server binaries)
  medallion the same number of STIX objects posted to medallion (OASIS TAXII 2.1
            server, memory backend) in bundles of the batch size
  e2e       report submitted at hotline-dk, hosted in NL, until police-nl's
            WatchReferrals stream at hotline-nl shows it, at 200 reports/s offered,
            and the CPU per report of each of the two node processes
  import    `hfed report import` of a synthetic CSV (5k rows; full 30k) through
            SubmitReports, rows per second for the whole command
  catchup   backlog drain rate after an outage of hotline-nl (100k queued; quick 10k)
  dedup     exact-hash lookup p99 over 10M stored hashes (quick 1M) and PDQ
            near-match p99 over 1M
  startup   start-up time of `hfed --help`, `hfed case --help` and `hfed case
            list` against a running node (median of 10 runs; quick: 5)

Figures are printed, never asserted (the exit status is 1 only when a step
failed to run). The first run creates medallion's own virtual environment
under bench/.work/ (pip install medallion, about half a minute, once); later
runs reuse it, and --quick then finishes in under two minutes on a 2-core
machine. Full mode takes 10 to 20 minutes. Progress goes to stderr.
See docs/benchmarks.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import importlib
import random
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.report import Results, table, write_json

STEPS = (
    "ceiling",
    "grpc",
    "ingest",
    "sweep",
    "scaleout",
    "medallion",
    "e2e",
    "import",
    "catchup",
    "dedup",
    "startup",
)
DEFAULT_WORK = Path(__file__).resolve().parent / ".work"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under two minutes")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help=f"comma-separated steps to run (default all: {','.join(STEPS)})",
    )
    parser.add_argument("--threads", type=int, default=3, help="client threads (2-4)")
    parser.add_argument("--batch", type=int, default=500, help="items per Deliver batch")
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="scratch and cache directory"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    if not 1 <= args.threads <= 16:
        parser.error("--threads must be between 1 and 16")
    return args


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table (and write the JSON)."""
    args = parse_args(argv)
    # Imported only now, so that --help answers without loading the node's code.
    steps = importlib.import_module("bench.steps")
    plan = steps.make_plan(args.quick, args.threads, args.batch)
    args.work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)  # noqa: S311 - reproducible test data, not secrets
    ctx = steps.Context(plan, Results(), args.work.resolve(), rng)
    ctx.results.add("quick", 1 if plan.quick else 0, "bool")
    # Explicitly, also for SIGINT: a shell starts background jobs with SIGINT
    # ignored, and the nodes must be stopped whatever ends the run.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    chosen = [s for s in STEPS if s in args.only.split(",")]
    try:
        failed = steps.run_steps(ctx, chosen)
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); stopping the nodes", file=sys.stderr)
        return 130
    finally:
        steps.netctl.stop_all()
    steps.derive(ctx.results)
    print(table(ctx.results.figures.values()))
    if args.json:
        write_json(ctx.results, args.json)
    if failed:
        print(f"steps that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
