"""CI: the harness against a fresh test network of our own node passes.

"Passes" means exit status 0 with ``tests/conformance/known-failures.txt``
as the xfail list: every case not listed there passes, and the listed ones
(node bugs, each with file:line in that file) are reported as expected
failures.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.runner import load_xfail
from tests.conformance.support import KNOWN_FAILURES, hfed, run_harness

pytestmark = pytest.mark.timeout(400)

LAST_LINE = re.compile(r"(\d+) passed, (\d+) failed")


def test_harness_passes_against_our_node(network: Path, tmp_path: Path) -> None:
    junit = tmp_path / "conformance.xml"
    run = run_harness(network, "--junit", junit, "--xfail", KNOWN_FAILURES)
    assert run.returncode == 0, run.explain()
    match = LAST_LINE.fullmatch(run.last_line)
    assert match, f"last line is {run.last_line!r}"
    passed, failed = int(match[1]), int(match[2])
    progress = [line for line in run.lines if re.match(r"[A-Z]+ [A-Z]{3}-\d{3} ", line)]
    statuses = [line.split(" ", 1)[0] for line in progress]
    assert passed + failed == len(statuses) - statuses.count("SKIP") >= 60
    assert "FAIL" not in statuses, run.explain()
    assert failed == statuses.count("XFAIL")
    assert set(load_xfail(KNOWN_FAILURES)) >= {
        line.split()[1] for line in run.lines if line.startswith("XFAIL ")
    }
    tree = ET.parse(junit).getroot()
    assert tree.tag == "testsuites"
    assert int(tree.attrib["tests"]) == len(statuses)
    assert int(tree.attrib["failures"]) == 0


def test_harness_runs_again_on_the_same_network(network: Path) -> None:
    """A second run (roster already rotated once, cases left by the first) passes too."""
    run = run_harness(
        network, "--xfail", KNOWN_FAILURES, "--only", "ROS-*,KEY-*,FWD-*,STS-*,DUP-00[1-3]"
    )
    assert run.returncode == 0, run.explain()
    assert run.last_line.endswith(" 0 failed"), run.explain()


def test_known_failures_fail_without_the_xfail_list(network: Path) -> None:
    """Without --xfail the node's known bugs fail the run, each naming what was wrong."""
    known = sorted(load_xfail(KNOWN_FAILURES))
    if not known:
        pytest.skip("no known failures")
    run = run_harness(network, "--only", ",".join(known))
    assert run.returncode == 1, run.explain()
    assert run.last_line == f"0 passed, {len(known)} failed"
    for case_id in known:
        line = run.line_of(case_id)
        assert line.startswith(f"FAIL {case_id} §")
        assert re.search(r" — expected .+, got .+", line), line


def test_other_targets(network: Path) -> None:
    """The fallback member as target: routing expectations adapt to the roster."""
    run = run_harness(
        network, "--target", "secretariat", "--xfail", KNOWN_FAILURES, "--only", "RTE-*,ENV-00*"
    )
    assert run.returncode == 0, run.explain()


def test_list_and_usage_errors(tmp_path: Path) -> None:
    listing = hfed("conformance", "--list")
    assert listing.returncode == 0
    assert re.search(r"^\d+ cases, \d+ must-reject$", listing.stdout.splitlines()[-1])
    assert hfed("conformance", "--list", "--only", "NOPE-*").returncode == 2
    assert hfed("conformance").returncode == 2  # --network is required
    assert hfed("conformance", "--network", tmp_path).returncode == 2  # no manifest there


def test_network_vectors(network: Path, tmp_path: Path) -> None:
    out = tmp_path / "vectors"
    done = hfed("conformance", "vectors", "--network", network, "--out", out)
    assert done.returncode == 0, done.stderr
    assert (out / "index.json").exists()
    assert len(list((out / "items").glob("*_fail.json"))) >= 25
