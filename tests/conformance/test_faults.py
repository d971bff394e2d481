"""The harness catches a node with a deliberate fault, and says what is wrong.

Needs the node's test-only fault hook (requested in conformance/README.md):

    [testing]
    faults = ["skip-signature-check", "accept-stale-roster"]

honoured only with HFED_ENABLE_TEST_FAULTS=1 in the node's environment, and
refused (the node does not start) without it. Skipped until
``federation.node.config`` has ``TestingConfig``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.conformance.support import KNOWN_FAILURES, devnet, hfed, run_harness

_config = importlib.import_module("federation.node.config")
HOOK = hasattr(_config, "TestingConfig")

pytestmark = [
    pytest.mark.skipif(
        not HOOK,
        reason="the node has no test fault hook yet (federation.node.config.TestingConfig)",
    ),
    pytest.mark.timeout(400),
]

TARGET = "hotline-dk"
ENABLE = {"HFED_ENABLE_TEST_FAULTS": "1"}

#: Cases whose signature is 64 bytes but wrong: a node that skips the check accepts them.
WRONG_SIGNATURE_CASES = ("ENV-001", "ENV-002", "ENV-006", "ENV-007", "ENV-008")
#: Wrong signature lengths are refused at the limits step, before the signature check.
LENGTH_CASES = ("ENV-003", "ENV-004", "ENV-005")
#: Rosters that are not newer than the installed one.
STALE_ROSTER_CASES = ("ROS-004", "ROS-016")


def _faults(*names: str) -> tuple[str, str]:
    listed = ", ".join(f'"{n}"' for n in names)
    return TARGET, f"\n[testing]\nfaults = [{listed}]\n"


def test_skip_signature_check_is_caught(tmp_path: Path) -> None:
    with devnet(tmp_path / "net", env=ENABLE, edit=_faults("skip-signature-check")) as net:
        log = (net / "members" / TARGET / "node.log").read_text()
        assert "skip-signature-check" in log, "the node must log an active fault loudly"
        run = run_harness(
            net, "--target", TARGET, "--xfail", KNOWN_FAILURES, "--only", "ENV-00*,RTE-001"
        )
    assert run.returncode == 1, run.explain()
    for case_id in WRONG_SIGNATURE_CASES:
        line = run.line_of(case_id)
        assert line.startswith(f"FAIL {case_id} "), line
        assert "expected REJECTED/BAD_SIGNATURE, got " in line, line
        assert "got REJECTED/BAD_SIGNATURE" not in line, line
    for case_id in (*LENGTH_CASES, "RTE-001"):
        assert run.status_of(case_id) == "PASS", run.line_of(case_id)


def test_accept_stale_roster_is_caught(tmp_path: Path) -> None:
    with devnet(tmp_path / "net", env=ENABLE, edit=_faults("accept-stale-roster")) as net:
        run = run_harness(net, "--target", TARGET, "--xfail", KNOWN_FAILURES, "--only", "ROS-*")
    assert run.returncode == 1, run.explain()
    for case_id in STALE_ROSTER_CASES:
        line = run.line_of(case_id)
        assert line.startswith(f"FAIL {case_id} "), line
        # OK when the node installs it; any other answer is wrong too.
        assert "expected FAILED_PRECONDITION, got " in line, line
        assert "got FAILED_PRECONDITION" not in line, line
    for case_id in ("ROS-001", "ROS-003", "ROS-005", "ROS-006", "ROS-011", "ROS-013"):
        assert run.status_of(case_id) == "PASS", run.line_of(case_id)


def test_faults_need_the_environment_switch(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    init = hfed("devnet", "init", directory)
    assert init.returncode == 0, init.stderr
    member, text = _faults("skip-signature-check")
    config = directory / "members" / member / "node.toml"
    config.write_text(config.read_text() + text)
    try:
        up = hfed("devnet", "up", directory, TARGET, env={"HFED_ENABLE_TEST_FAULTS": ""})
        assert up.returncode != 0, "a node with faults configured must not start without the switch"
    finally:
        hfed("devnet", "down", directory)


#: Section 10 faults: the cases that must catch each one (and name its rule).
SECTION_10_FAULTS = {
    "accept-non-owner-update": (
        "10.1",
        ("OWN-002", "OWN-003", "OWN-004", "OWN-008", "OWN-018", "MOV-002", "MOV-005", "MOV-007"),
    ),
    "replay-receipt-unchecked": ("10.7", ("RPL-001", "RPL-002", "RPL-003", "RPL-007")),
    "apply-held-unchecked": ("10.3", ("HLD-001", "HLD-003", "HLD-009")),
}
#: Cases that pass under every one of those faults (they test other rules).
UNAFFECTED = ("OWN-001", "MOV-001", "HLD-002", "NUM-001", "BND-001")


@pytest.mark.parametrize("fault", sorted(SECTION_10_FAULTS))
def test_section_10_fault_is_caught(tmp_path: Path, fault: str) -> None:
    section, cases = SECTION_10_FAULTS[fault]
    with devnet(tmp_path / "net", env=ENABLE, edit=_faults(fault)) as net:
        log = (net / "members" / TARGET / "node.log").read_text()
        assert fault in log, "the node must log an active fault loudly"
        only = ",".join((*cases, *UNAFFECTED))
        run = run_harness(net, "--target", TARGET, "--xfail", KNOWN_FAILURES, "--only", only)
    assert run.returncode == 1, run.explain()
    for case_id in cases:
        line = run.line_of(case_id)
        assert line.startswith(f"FAIL {case_id} §{section} "), line
        assert " — expected " in line and ", got " in line, line
    for case_id in UNAFFECTED:
        assert run.status_of(case_id) == "PASS", run.line_of(case_id)
