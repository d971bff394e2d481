"""Running the cases: selection, expected failures, progress lines, summary, JUnit XML.

The last line printed is always ``N passed, M failed`` where ``failed``
counts every case that failed, including the ones the xfail file expects to
fail; the exit status is 0 only when every failing case is listed there.
"""

from __future__ import annotations

import fnmatch
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import grpc

from conformance import HARNESS_VERSION
from conformance.cases import all_cases
from conformance.context import Context, SetupError, rpc_text
from conformance.network import Manifest, ManifestError
from conformance.registry import GROUP_TITLES, Case, CaseFailedError, CaseSkippedError
from conformance.reports import (
    ReportPaths,
    RunInfo,
    write_json_report,
    write_markdown_report,
)
from conformance.results import FAIL, PASS, SKIP, XFAIL, XPASS, Result
from conformance.target import Target
from conformance.vectors_manifest import verify_shipped_vectors


class UsageError(ValueError):
    """Bad options (unknown pattern, unreadable xfail file); exit status 2."""


def matches(case_id: str, pattern: str) -> bool:
    """A glob (``ENV-*``) or a regular expression (``ENV-00[1-3]``) matching the whole id."""
    if fnmatch.fnmatchcase(case_id, pattern):
        return True
    try:
        return re.fullmatch(pattern, case_id) is not None
    except re.error:
        return False


def select(cases: Sequence[Case], patterns: Iterable[str]) -> list[Case]:
    """The cases matching any of the (comma-separated) patterns; all when none given."""
    wanted = [p.strip() for spec in patterns for p in spec.split(",") if p.strip()]
    if not wanted:
        return list(cases)
    chosen = [c for c in cases if any(matches(c.id, p) for p in wanted)]
    if not chosen:
        raise UsageError(f"no case id matches {', '.join(wanted)}")
    return chosen


def load_xfail(path: Path | None) -> dict[str, str]:
    """Case ids expected to fail, one per line; ``#`` starts a comment."""
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read xfail file {path}: {exc}") from exc
    known = {c.id for c in all_cases()}
    expected = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        body, _, comment = raw.partition("#")
        case_id = body.strip()
        if not case_id:
            continue
        if case_id not in known:
            raise UsageError(f"{path}:{number}: unknown case id {case_id!r}")
        expected[case_id] = comment.strip()
    return expected


def run_case(ctx: Context | None, case: Case, setup_error: str) -> tuple[str, str, float]:
    """Run one case; (PASS|FAIL|SKIP, message, seconds)."""
    started = time.monotonic()
    if ctx is None:
        return FAIL, f"setup failed: {setup_error}", 0.0
    try:
        case.run(ctx)
    except CaseFailedError as exc:
        status, message = FAIL, str(exc)
    except CaseSkippedError as exc:
        status, message = SKIP, str(exc)
    except grpc.RpcError as exc:
        status, message = FAIL, f"unexpected RPC failure: {rpc_text(exc)}"
    except Exception as exc:
        status, message = FAIL, f"harness error: {type(exc).__name__}: {exc}"
    else:
        status, message = PASS, ""
    return status, " ".join(message.split()), time.monotonic() - started


def classify(status: str, message: str, expected: dict[str, str], case_id: str) -> tuple[str, str]:
    """Apply the xfail list."""
    if case_id not in expected:
        return status, message
    note = expected[case_id]
    if status == FAIL:
        return XFAIL, message + (f" [expected: {note}]" if note else " [expected failure]")
    if status == PASS:
        return XPASS, "listed as an expected failure but passed: remove it from the xfail file"
    return status, message


def summary(results: Sequence[Result]) -> list[str]:
    """The summary table and the failures, without the last line."""
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.case.group, []).append(result)
    header = (
        f"{'GROUP':<6} {'AREA':<32} {'CASES':>5} {'PASS':>5} {'FAIL':>5} {'XFAIL':>5} {'SKIP':>5}"
    )
    lines = ["", header, "-" * len(header)]

    def row(name: str, title: str, items: Sequence[Result]) -> str:
        def count(*statuses: str) -> int:
            return sum(r.status in statuses for r in items)

        return (
            f"{name:<6} {title:<32} {len(items):>5} {count(PASS, XPASS):>5} "
            f"{count(FAIL):>5} {count(XFAIL):>5} {count(SKIP):>5}"
        )

    for group, items in groups.items():
        lines.append(row(group, GROUP_TITLES.get(group, ""), items))
    lines.append("-" * len(header))
    lines.append(row("total", f"{sum(r.case.must_reject for r in results)} must-reject", results))
    failures = [r for r in results if r.status in (FAIL, XFAIL, XPASS)]
    if failures:
        lines += ["", "Not passing:"]
        lines += [f"  {r.status:<5} {r.case.id} §{r.case.section}: {r.message}" for r in failures]
    return lines


def case_table_markdown(cases: Sequence[Case]) -> str:
    """The case list as a Markdown table (kept in conformance/README.md)."""
    lines = ["| id | § | kind | description |", "| --- | --- | --- | --- |"]
    for entry in cases:
        kind = "must-reject" if entry.must_reject else "must-accept"
        lines.append(f"| {entry.id} | {entry.section} | {kind} | {entry.description} |")
    return "\n".join(lines) + "\n"


def write_junit(path: Path, results: Sequence[Result], seconds: float, target: str) -> None:
    """JUnit XML: one testsuite per group; XFAIL and SKIP as skipped."""
    suites = ET.Element(
        "testsuites",
        name="hfp-conformance",
        tests=str(len(results)),
        failures=str(sum(r.status == FAIL for r in results)),
        skipped=str(sum(r.status in (XFAIL, SKIP) for r in results)),
        time=f"{seconds:.3f}",
    )
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.case.group, []).append(result)
    for group, items in groups.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"hfp-conformance.{group}",
            tests=str(len(items)),
            failures=str(sum(r.status == FAIL for r in items)),
            skipped=str(sum(r.status in (XFAIL, SKIP) for r in items)),
            time=f"{sum(r.seconds for r in items):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="target", value=target)
        ET.SubElement(properties, "property", name="harness_version", value=HARNESS_VERSION)
        for result in items:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{group}",
                name=result.case.title(),
                time=f"{result.seconds:.3f}",
            )
            if result.status == FAIL:
                ET.SubElement(element, "failure", message=result.message).text = result.message
            elif result.status == XFAIL:
                ET.SubElement(element, "skipped", message=f"expected failure: {result.message}")
            elif result.status == SKIP:
                ET.SubElement(element, "skipped", message=result.message)
    ET.indent(suites)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def resolve_target(network: Path | None, target: str | None) -> Target:
    """The node under test: ``target`` is a target file, or (with ``network``)
    a member id of the test network (default: its first hotline node)."""
    try:
        if target is not None and Path(target).is_file():
            return Target.load(Path(target))
        if network is None:
            raise UsageError("give --target FILE (a target file) or --network DIR")
        return Target.from_manifest(Manifest.load(network), target)
    except ManifestError as exc:
        raise UsageError(str(exc)) from exc


def start(target: Target, echo: Callable[[str], None]) -> tuple[Context | None, str]:
    """Set up a context against ``target``; (None, why) when that fails."""
    ctx: Context | None = None
    try:
        ctx = Context(target)
        ctx.setup()
    except (SetupError, ManifestError, OSError) as exc:
        if ctx is not None:
            ctx.close()
        echo(f"setup failed: {exc}")
        return None, str(exc)
    return ctx, ""


def run(
    network: Path | None = None,
    *,
    target: str | None = None,
    only: Sequence[str] = (),
    xfail: Path | None = None,
    junit: Path | None = None,
    reports: ReportPaths | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the selected cases against the target; returns the exit status."""
    started = time.monotonic()
    described = resolve_target(network, target)
    cases = select(all_cases(), only)
    expected = load_xfail(xfail)
    vectors = verify_shipped_vectors()
    ctx, setup_error = start(described, echo)
    run_note = f", run {ctx.run_id}" if ctx else ""
    echo(
        f"HFP v1 conformance {HARNESS_VERSION} (vectors {vectors}): target "
        f"{described.member_id} at {described.endpoint} ({described.source}){run_note}"
    )
    results = []
    try:
        for entry in cases:
            status, message, seconds = run_case(ctx, entry, setup_error)
            status, message = classify(status, message, expected, entry.id)
            result = Result(entry, status, message, seconds)
            results.append(result)
            echo(result.line())
    finally:
        if ctx is not None:
            ctx.close()
    elapsed = time.monotonic() - started
    for text in summary(results):
        echo(text)
    meta = RunInfo(described.member_id, described.endpoint, vectors, elapsed)
    _write_outputs(results, meta, junit, reports, echo)
    expected_failures = sum(r.status == XFAIL for r in results)
    if expected_failures:
        echo(
            f"{expected_failures} of the failures are expected ({xfail}); they do not fail the run"
        )
    echo(f"{len(results)} cases in {elapsed:.1f} s")
    echo(f"{sum(r.passed for r in results)} passed, {sum(r.failed for r in results)} failed")
    return 1 if any(r.status == FAIL for r in results) else 0


def _write_outputs(
    results: Sequence[Result],
    meta: RunInfo,
    junit: Path | None,
    reports: ReportPaths | None,
    echo: Callable[[str], None],
) -> None:
    if junit is not None:
        write_junit(junit, results, meta.seconds, meta.target)
        echo(f"JUnit XML written to {junit}")
    if reports is not None and reports.json is not None:
        write_json_report(reports.json, results, meta)
        echo(f"JSON report written to {reports.json}")
    if reports is not None and reports.markdown is not None:
        write_markdown_report(reports.markdown, results, meta)
        echo(f"Markdown report written to {reports.markdown}")
