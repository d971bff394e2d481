"""The harness's per-run reports and its target files, without a network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cases import all_cases
from conformance.reports import RunInfo, markdown_report, report_data
from conformance.results import FAIL, PASS, XFAIL, XPASS, Result
from conformance.target import Target, TargetError

META = RunInfo("hotline-dk", "127.0.0.1:7101", "1.0", 1.5)


def _results() -> list[Result]:
    cases = {c.id: c for c in all_cases()}
    return [
        Result(
            cases["OWN-002"], FAIL, "expected REJECTED/NOT_RESPONSIBLE, got ACCEPTED case x", 0.1
        ),
        Result(cases["OWN-001"], PASS, "", 0.1),
        Result(cases["HLD-001"], XFAIL, "expected A, got B [expected: known]", 0.1),
        Result(cases["RPL-004"], XPASS, "listed as an expected failure but passed", 0.1),
    ]


def test_the_answer_is_what_the_node_said() -> None:
    assert _results()[0].answer == "ACCEPTED case x"
    assert _results()[1].answer == ""


def test_json_report_counts_families_groups_and_failures() -> None:
    data = report_data(_results(), META)
    assert data["totals"]["cases"] == 4
    assert data["totals"]["must_reject"] == 2
    assert data["totals"]["must_reject_share"] == 0.5
    assert data["families"]["§10"]["cases"] == 4
    assert set(data["groups"]) == {"OWN", "HLD", "RPL"}
    failing = {e["id"]: e for e in data["not_passing"]}
    assert set(failing) == {"OWN-002", "HLD-001", "RPL-004"}
    assert failing["OWN-002"]["rule"].startswith("a non-owner's update")
    assert failing["OWN-002"]["section"] == "10.1"
    json.dumps(data)  # serialisable


def test_markdown_report_lists_failures_with_rule_and_answer() -> None:
    text = markdown_report(_results(), META)
    assert "| §10 |" in text and "| OWN |" in text
    assert "**FAIL OWN-002** (§10.1)" in text
    assert "Node answered: ACCEPTED case x" in text
    assert "**XPASS RPL-004**" in text


def _files(base: Path) -> dict[str, str]:
    for name in ("ca.pem", "tls.pem", "tls.key", "signing.pem", "root-1.pem", "op.pem", "op.key"):
        (base / name).write_text("x")
    return {
        "node": {"member_id": "n", "endpoint": "127.0.0.1:1", "ca_cert": "ca.pem"},
        "harness": {
            "member_id": "conformance",
            "endpoint": "127.0.0.1:2",
            "tls_cert": "tls.pem",
            "tls_key": "tls.key",
            "signing_key": "signing.pem",
        },
        "roster": {
            "root_public_keys": ["00" * 32],
            "root_threshold": 1,
            "root_keys": ["root-1.pem"],
        },
        "operator": {"tls_cert": "op.pem", "tls_key": "op.key"},
    }


def _toml(table: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def test_toml_and_json_target_files_say_the_same(tmp_path: Path) -> None:
    table = _files(tmp_path)
    (tmp_path / "t.toml").write_text(_toml(table))
    (tmp_path / "t.json").write_text(json.dumps(table))
    by_toml, by_json = Target.load(tmp_path / "t.toml"), Target.load(tmp_path / "t.json")
    assert by_toml.member_id == by_json.member_id == "n"
    assert by_toml.harness == by_json.harness
    assert by_toml.operator.tls_cert == (tmp_path / "op.pem").resolve()
    assert by_toml.liaison is None and by_toml.third_parties == ()


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("node", "endpoint", "192.0.2.1:7101", "not on loopback"),
        ("harness", "tls_cert", "missing.pem", "no such file"),
        ("roster", "root_threshold", 2, "root_threshold 2 with 1 roots"),
        ("operator", "tls_key", "", "non-empty string"),
    ],
)
def test_unusable_target_files_say_why(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    table = _files(tmp_path)
    table[section][key] = value  # type: ignore[index]
    (tmp_path / "t.json").write_text(json.dumps(table))
    with pytest.raises(TargetError, match=message):
        Target.load(tmp_path / "t.json")


def test_a_missing_section_is_named(tmp_path: Path) -> None:
    table = _files(tmp_path)
    del table["operator"]
    (tmp_path / "t.json").write_text(json.dumps(table))
    with pytest.raises(TargetError, match=r"\[operator\] is missing"):
        Target.load(tmp_path / "t.json")
