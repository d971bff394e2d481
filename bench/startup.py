"""How long ``hfed`` takes to start: ``hfed --help``, ``hfed case --help`` and
one real simple command (``hfed case list --limit 1`` against a running node).

Each command runs ``runs`` times in a fresh interpreter, as an analyst's shell
runs it; the median wall time is reported (the first run also warms the
operating system's file cache, which the median discounts). Target 0.3 s
(issue 19): a command that loads what it does not need shows here first.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import netctl
from bench.progress import say
from bench.report import Results

TARGET_SECONDS = 0.3
HFED = [sys.executable, "-m", "federation.cli.main"]


def wall_seconds(args: Sequence[str], runs: int) -> float:
    """Median wall time of ``hfed ARGS`` over ``runs`` runs (each must succeed)."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([*HFED, *args], capture_output=True, timeout=60, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(results: Results, work: Path, runs: int) -> None:
    """Record the start-up figures (seconds; lower is better)."""
    for key, args in (("startup_help_s", ["--help"]), ("startup_case_help_s", ["case", "--help"])):
        seconds = wall_seconds(args, runs)
        results.add(key, seconds, "s", TARGET_SECONDS, at_most=True)
        say(f"hfed {' '.join(args)}: {seconds:.3f} s")
    net = netctl.create(work / "startup-net")
    netctl.start(net, [netctl.NL])
    try:
        where = ["--devnet", str(net.directory), "--member", netctl.NL]
        seconds = wall_seconds(["case", "list", "--limit", "1", *where], runs)
    finally:
        netctl.stop(net)
    results.add("startup_case_list_s", seconds, "s", TARGET_SECONDS, at_most=True)
    say(f"hfed case list --limit 1: {seconds:.3f} s")
