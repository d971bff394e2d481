"""Every CSV the clients write is safe to open in a spreadsheet (formula
injection, control characters), and every writer goes through one module."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from federation.cli import import_run
from federation.cli.csv_safe import safe_cell, write_csv
from federation.cli.main import cli
from federation.cli.output import emit

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [
    '=HYPERLINK("http://evil.example/","click")',
    "+1+2",
    "-2+3",
    "@SUM(A1)",
    "\tTAB",
    "\rCR",
    "=cmd|' /C calc'!A0",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_starts_are_neutralised(text: str) -> None:
    assert safe_cell(text) == "'" + text


def test_controls_are_removed_and_numbers_kept() -> None:
    assert safe_cell("a\x00b\x1b[2J\x7fc\x9b") == "ab[2Jc"
    assert safe_cell("two\nlines\r\nand\ttab") == "two\nlines\r\nand\ttab"
    assert safe_cell("=\x00") == "'="
    assert safe_cell("\x00=1") == "'=1"  # removing the NUL must not unmask a formula
    assert safe_cell(-3) == -3 and safe_cell(2.5) == 2.5 and safe_cell(None) is None
    assert safe_cell("plain, é") == "plain, é"


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def test_write_csv_and_excel_bom() -> None:
    out = io.StringIO()
    write_csv(out, ["a", "b"], [{"a": HOSTILE[0], "b": -1}], excel=True)
    assert out.getvalue().startswith("\ufeffa,b\r\n")
    assert _cells(out.getvalue())[1] == ["'" + HOSTILE[0], "-1"]


def test_emit_csv_used_by_every_list(capsys: pytest.CaptureFixture[str]) -> None:
    """case list, stats, audit, liaison list: all write CSV through emit."""
    emit("csv", ["url", "n"], [{"url": text, "n": 1} for text in HOSTILE])
    rows = _cells(capsys.readouterr().out)[1:]
    assert [r[0] for r in rows] == ["'" + t for t in HOSTILE]


def test_results_file_is_safe(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b'url,country\n=HYPERLINK("x"),DK\nhttp://a.example/\x00,DK\n')
    plan = import_run.plan(source, None, None, None, None)

    def submit(rows: list[tuple[str, object]]) -> list[dict[str, str]]:
        return [{"outcome": "REJECTED", "error": "@detail\x00 from the node"} for _ in rows]

    import_run.execute(plan, submit)
    raw = plan.results.read_bytes()
    assert b"\x00" not in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert rows[0]["url"] == '\'=HYPERLINK("x")'
    assert rows[1]["error"] == "'@detail from the node"


def test_excel_flag_on_list_commands() -> None:
    result = CliRunner().invoke(cli, ["case", "list", "--help"])
    assert "--excel" in result.output


def test_no_csv_writer_outside_the_safe_module() -> None:
    """A new CSV writer must use federation/cli/csv_safe.py, not csv directly."""
    writers = re.compile(r"csv\.(writer|DictWriter)\(")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("federation", "peers", "crypto", "conformance", "scripts", "bench")
        if (ROOT / package).is_dir()
        for path in (ROOT / package).rglob("*.py")
        # bench/.work holds the benchmark's scratch (medallion's own venv), as
        # in tests/test_layering.py: not our code.
        if ".work" not in path.parts
        if writers.search(path.read_text(encoding="utf-8")) and path.name != "csv_safe.py"
    ]
    assert offenders == []
