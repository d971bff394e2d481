"""CI: the harness against a fresh test network of our own node passes.

"Passes" means exit status 0 with ``tests/conformance/known-failures.txt``
as the xfail list: every case not listed there passes, and the listed ones
(node bugs, each with file:line in that file) are reported as expected
failures.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.runner import load_xfail
from conformance.vectors_manifest import VECTORS_VERSION
from tests.conformance.support import HARNESS_TIMEOUT, KNOWN_FAILURES, hfed, run_harness

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
    assert hfed("conformance").returncode == 2  # --target or --network is required
    assert hfed("conformance", "--network", tmp_path).returncode == 2  # no manifest there


def test_network_vectors(network: Path, tmp_path: Path) -> None:
    out = tmp_path / "vectors"
    done = hfed("conformance", "vectors", "--network", network, "--out", out)
    assert done.returncode == 0, done.stderr
    assert (out / "index.json").exists()
    assert len(list((out / "items").glob("*_fail.json"))) >= 25


def _hand_written_target(network: Path, out: Path) -> Path:
    """A target file for hotline-dk written out by hand (not through --network):
    only the endpoints are read from the manifest, since the ports are random."""
    members = json.loads((network / "manifest.json").read_text())["members"]
    roots = json.loads((network / "manifest.json").read_text())["root_public_keys"]
    net = network.resolve()
    root_files = ", ".join(f'"{p}"' for p in sorted((net / "root").glob("root-*.pem")))
    root_hex = ", ".join(f'"{k}"' for k in roots)
    text = f"""
# hotline-dk of a devnet, described for the harness by hand.
[node]
member_id = "hotline-dk"
endpoint = "{members["hotline-dk"]["endpoint"]}"
ca_cert = "{net}/ca.pem"
ca_key = "{net}/ca.key"

[harness]
member_id = "conformance"
endpoint = "{members["conformance"]["endpoint"]}"
tls_cert = "{net}/members/conformance/tls.pem"
tls_key = "{net}/members/conformance/tls.key"
signing_key = "{net}/members/conformance/signing.pem"

[roster]
root_public_keys = [{root_hex}]
root_threshold = 2
root_keys = [{root_files}]

[operator]
tls_cert = "{net}/members/hotline-dk/tls.pem"
tls_key = "{net}/members/hotline-dk/tls.key"

[liaison]
member_id = "police-dk"
tls_cert = "{net}/members/police-dk/tls.pem"
tls_key = "{net}/members/police-dk/tls.key"

[[third_party]]
member_id = "hotline-nl"
signing_key = "{net}/members/hotline-nl/signing.pem"
"""
    out.write_text(text)
    return out


def _statuses(report: Path) -> dict[str, str]:
    return {c["id"]: c["status"] for c in json.loads(report.read_text())["cases"]}


def test_hand_written_target_file_gives_the_same_result(network: Path, tmp_path: Path) -> None:
    target = _hand_written_target(network, tmp_path / "hotline-dk.toml")
    by_file = hfed(
        "conformance",
        "--target",
        target,
        "--xfail",
        KNOWN_FAILURES,
        "--json",
        tmp_path / "file.json",
        "--markdown",
        tmp_path / "file.md",
        timeout=HARNESS_TIMEOUT,
    )
    assert by_file.returncode == 0, by_file.stdout[-3000:] + by_file.stderr[-2000:]
    assert "(vectors " in by_file.stdout.splitlines()[0]
    by_network = run_harness(network, "--xfail", KNOWN_FAILURES, "--json", tmp_path / "net.json")
    assert by_network.returncode == 0, by_network.explain()
    from_file, from_network = _statuses(tmp_path / "file.json"), _statuses(tmp_path / "net.json")
    assert from_file == from_network
    assert len(from_file) >= 220
    assert set(from_file.values()) == {"PASS"}
    report = json.loads((tmp_path / "file.json").read_text())
    assert report["totals"]["must_reject_share"] >= 0.6
    assert report["vectors_version"] == VECTORS_VERSION
    assert "## Not passing" in (tmp_path / "file.md").read_text()


def test_bad_target_files_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "target.toml"
    bad.write_text('[node]\nmember_id = "x"\n')
    assert hfed("conformance", "--target", bad).returncode == 2
    bad.write_text("not toml at all [")
    assert hfed("conformance", "--target", bad).returncode == 2
