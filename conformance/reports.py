"""The per-run reports besides JUnit: JSON (for machines) and Markdown (for people).

Both carry the same facts: harness and vector versions, the target, the
counts by family and group with the must-reject share, every case with its
status, and the cases not passing with the rule they check and the node's
actual answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import HARNESS_VERSION
from conformance.registry import FAMILIES, GROUP_TITLES
from conformance.results import FAIL, PASS, SKIP, XFAIL, XPASS, Result


@dataclass(frozen=True)
class ReportPaths:
    """Where to write the reports (either may be None)."""

    json: Path | None = None
    markdown: Path | None = None


@dataclass(frozen=True)
class RunInfo:
    """What the reports say about the run itself."""

    target: str
    endpoint: str
    vectors_version: str
    seconds: float


def counts(results: Sequence[Result]) -> dict[str, Any]:
    """Case, must-reject and status counts of some results."""
    rejects = sum(r.case.must_reject for r in results)
    return {
        "cases": len(results),
        "must_reject": rejects,
        "must_reject_share": round(rejects / len(results), 4) if results else 0.0,
        "passed": sum(r.status == PASS for r in results),
        "failed": sum(r.status == FAIL for r in results),
        "xfail": sum(r.status == XFAIL for r in results),
        "xpass": sum(r.status == XPASS for r in results),
        "skipped": sum(r.status == SKIP for r in results),
    }


def _by(results: Sequence[Result], key: str) -> dict[str, list[Result]]:
    grouped: dict[str, list[Result]] = {}
    for result in results:
        name = result.case.family if key == "family" else result.case.group
        grouped.setdefault(name, []).append(result)
    return grouped


def _case_entry(result: Result) -> dict[str, Any]:
    case = result.case
    return {
        "id": case.id,
        "section": case.section,
        "group": case.group,
        "family": case.family,
        "kind": "must-reject" if case.must_reject else "must-accept",
        "rule": case.description,
        "status": result.status,
        "message": result.message,
        "answer": result.answer,
        "seconds": round(result.seconds, 3),
    }


def report_data(results: Sequence[Result], meta: RunInfo) -> dict[str, Any]:
    """The JSON report as a dictionary."""
    return {
        "harness_version": HARNESS_VERSION,
        "vectors_version": meta.vectors_version,
        "target": meta.target,
        "endpoint": meta.endpoint,
        "seconds": round(meta.seconds, 3),
        "totals": counts(results),
        "families": {name: counts(items) for name, items in _by(results, "family").items()},
        "groups": {
            name: {"title": GROUP_TITLES.get(name, ""), **counts(items)}
            for name, items in _by(results, "group").items()
        },
        "cases": [_case_entry(r) for r in results],
        "not_passing": [_case_entry(r) for r in results if r.status in (FAIL, XFAIL, XPASS)],
    }


def write_json_report(path: Path, results: Sequence[Result], meta: RunInfo) -> None:
    """Write the JSON report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_data(results, meta), indent=2) + "\n")


def _row(name: str, title: str, c: dict[str, Any]) -> str:
    share = f"{100 * c['must_reject_share']:.0f} %"
    return (
        f"| {name} | {title} | {c['cases']} | {c['must_reject']} ({share}) | {c['passed']} "
        f"| {c['failed']} | {c['xfail']} | {c['xpass']} | {c['skipped']} |"
    )


def markdown_report(results: Sequence[Result], meta: RunInfo) -> str:
    """The Markdown report."""
    data = report_data(results, meta)
    header = "| | area | cases | must-reject | pass | fail | xfail | xpass | skip |"
    rule = "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    lines = [
        f"# HFP v1 conformance: {meta.target}",
        "",
        f"Harness {HARNESS_VERSION}, vectors {meta.vectors_version}, target {meta.target} "
        f"at {meta.endpoint}, {meta.seconds:.1f} s.",
        "",
        "## By family",
        "",
        header,
        rule,
        *(_row(n, FAMILIES.get(n, n), c) for n, c in data["families"].items()),
        _row("total", "", data["totals"]),
        "",
        "## By group",
        "",
        header,
        rule,
        *(_row(n, c["title"], c) for n, c in data["groups"].items()),
        "",
        "## Not passing",
        "",
    ]
    failing = data["not_passing"]
    if not failing:
        lines.append("Every case passed.")
    for entry in failing:
        lines.append(
            f"- **{entry['status']} {entry['id']}** (§{entry['section']}) {entry['rule']}. "
            f"Node answered: {entry['answer'] or entry['message']}"
        )
    return "\n".join(lines) + "\n"


def write_markdown_report(path: Path, results: Sequence[Result], meta: RunInfo) -> None:
    """Write the Markdown report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_report(results, meta))
