"""Intake through the importer: ``hfed report import`` of a synthetic CSV file
at hotline-dk (the flow network), rows per second for the whole command.

90% of the rows are hosted in DK (filed at hotline-dk), 10% in NL (forwarded);
every tenth row carries an exact hash. The command is timed from start to
exit, start-up included, as an analyst would experience it; its results file
is checked: every row must be ACCEPTED or FORWARDED.
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.netctl import DK, BenchNet
from bench.progress import say
from bench.report import Results
from federation.cli.csv_safe import write_csv

TARGET_ROWS_PER_S = 3000.0


def _write_rows(path: Path, rows: int, rng: random.Random) -> None:
    lines = []
    for n in range(rows):
        lines.append(
            {
                "url": f"https://import-{rng.getrandbits(64):016x}.example.com/{n}",
                "country": "NL" if n % 10 == 0 else "DK",
                "hashes": f"sha256:{rng.getrandbits(256):064x}" if n % 10 == 5 else "",
            }
        )
    with path.open("w", newline="", encoding="utf-8") as handle:
        write_csv(handle, ("url", "country", "hashes"), lines)


def measure(results: Results, net: BenchNet, work: Path, rows: int, rng: random.Random) -> None:
    """Import ``rows`` rows at hotline-dk; rows/s of the whole command."""
    source = work / f"import-{rng.getrandbits(32):08x}.csv"
    _write_rows(source, rows, rng)
    outcome = source.with_suffix(".results.csv")
    command = [
        sys.executable, "-m", "federation.cli.main", "report", "import",
        "--devnet", str(net.directory), "--member", DK,
        "--results", str(outcome), str(source),
    ]  # fmt: skip
    say(f"import: {rows:,} rows through hfed report import at {DK}")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"hfed report import failed: {done.stderr[-2000:]}")
    with outcome.open(newline="", encoding="utf-8-sig") as handle:
        outcomes = Counter(row["outcome"] for row in csv.DictReader(handle))
    unexpected = sum(n for name, n in outcomes.items() if name not in ("ACCEPTED", "FORWARDED"))
    say(f"import: {rows:,} rows in {elapsed:.1f}s; {dict(outcomes)}")
    results.add("import_rows_per_s", rows / elapsed, "rows/s", TARGET_ROWS_PER_S)
    results.add("import_rows", rows, "rows")
    results.add("import_unexpected_outcomes", unexpected, "rows")
