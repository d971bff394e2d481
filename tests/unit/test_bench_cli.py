"""The benchmark command's interface: help, and a JSON file of numbers only.

No benchmark runs here and nothing is timed: figures are printed by
``bench/run``, never asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from bench.report import Results, table, write_json

ROOT = Path(__file__).resolve().parents[2]


def test_help_explains_the_command() -> None:
    """Run `bench/run --help`, expect exit 0 and the options explained, nothing started."""
    done = subprocess.run(
        [str(ROOT / "bench" / "run"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for word in ("--quick", "--json", "--only", "medallion", "docs/benchmarks.md"):
        assert word in done.stdout


def test_json_holds_one_number_per_figure(tmp_path: Path) -> None:
    """Write figures of every kind, expect a flat object of numbers, nothing lost."""
    results = Results()
    results.add("ingest_reports_per_s", 1234.5, "items/s", 6000.0)
    results.add("e2e_p99_ms", 87.25, "ms", 100.0, at_most=True)
    results.add("stored_hashes_exact", 1_000_000, "hashes")
    results.add("quick", 1, "bool")
    path = tmp_path / "figures.json"
    write_json(results, path)
    data = json.loads(path.read_text())
    assert list(data) == list(results.figures)
    assert all(type(v) in (int, float) for v in data.values())
    assert data == {
        "ingest_reports_per_s": 1234.5,
        "e2e_p99_ms": 87.25,
        "stored_hashes_exact": 1_000_000,
        "quick": 1,
    }
    assert "ingest_reports_per_s" in table(results.figures.values())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_figure_that_is_not_a_number_is_refused(bad: float) -> None:
    """Record NaN or an infinity, expect a refusal, so the JSON never holds one."""
    with pytest.raises(ValueError, match="not a finite number"):
        Results().add("broken", bad, "ms")


def test_ratio_reads_the_same_way_for_both_kinds_of_target() -> None:
    """Compare figures to at-least and at-most targets, expect >= 1 to mean met."""
    results = Results()
    results.add("fast", 12_000, "items/s", 6000.0)
    results.add("slow_latency", 200.0, "ms", 100.0, at_most=True)
    assert results.figures["fast"].ratio == 2.0
    assert results.figures["fast"].verdict == "ok"
    assert results.figures["slow_latency"].ratio == 0.5
    assert results.figures["slow_latency"].verdict == "below"
