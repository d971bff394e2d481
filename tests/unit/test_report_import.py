"""``hfed report import`` over generated files: every class of what spreadsheets
write, each row's outcome asserted (the node is replaced by a recorder here;
tests/network/test_report_import_network.py sends to real nodes)."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.cli import import_run
from federation.cli.import_run import ImportStoppedError, Progress, RowError, row_key
from federation.cli.import_source import SourceError, open_source, records
from federation.cli.reports import build_report

DK = "http://dk.example/"


@dataclass
class Recorder:
    """Stands in for the node: builds each report as the real import does."""

    sent: list[Any] = field(default_factory=list)
    stop_after: int | None = None

    calls: int = 0

    def __call__(self, rows: Sequence[tuple[str, Mapping[str, str]]]) -> list[dict[str, Any]]:
        """One SubmitReports call: the node stops answering when this chunk
        would take it past ``stop_after`` reports."""
        if self.stop_after is not None and len(self.sent) + len(rows) > self.stop_after:
            raise ImportStoppedError("node at 127.0.0.1:1 is not reachable")
        self.calls += 1
        results: list[dict[str, Any]] = []
        for report_id, fields in rows:
            try:
                report = build_report(fields)
            except RowError as exc:  # as the real submitter: refused before sending
                results.append({"outcome": "ERROR", "error": str(exc)})
                continue
            report.report_id = report_id
            self.sent.append(report)
            results.append({"outcome": "ACCEPTED", "report_id": report_id, "error": ""})
        return results


def run(tmp_path: Path, data: bytes, **options: Any) -> tuple[list[dict[str, str]], Recorder]:
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    recorder = Recorder()
    plan = import_run.plan(
        source,
        options.get("encoding"),
        options.get("delimiter"),
        None,
        None,
    )
    import_run.execute(plan, recorder)
    with plan.results.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle)), recorder


def outcomes(rows: list[dict[str, str]]) -> list[tuple[int, str]]:
    return [(int(r["row"]), r["outcome"]) for r in rows]


LONG_NOTE = "n" * 200_000
CASES: list[tuple[str, bytes, dict[str, Any], list[tuple[int, str]], list[str]]] = [
    # name, file, options, (line, outcome) per row, text each error must hold (in order)
    (
        "utf-8, comma, LF",
        f"url,country\n{DK}1,DK\n{DK}2,NL\n".encode(),
        {},
        [(2, "ACCEPTED"), (3, "ACCEPTED")],
        [],
    ),
    (
        "utf-8 BOM, semicolon, CRLF, headers in caps with spaces",
        f"\ufeff URL ; Country ;Analyst Note\r\n{DK}1;dk;Grüße\r\n".encode(),
        {},
        [(2, "ACCEPTED")],
        [],
    ),
    (
        "cp1252 (Excel on Windows), tab, CR line ends",
        f"url\tcountry\tanalyst_note\r{DK}1\tDK\tCafé \u2013 \u201cquoted\u201d €5\r".encode(
            "cp1252"
        ),
        {},
        [(2, "ACCEPTED")],
        [],
    ),
    (
        "latin-1 (not cp1252: byte 0x81)",
        b"url,country,site_type\n" + DK.encode() + b"1,DK,a\x81b\xe9\n",
        {},
        [(2, "ACCEPTED")],
        [],
    ),
    (
        "utf-16 with BOM (Excel 'Unicode text'), tab",
        f"url\tcountry\n{DK}1\tDE\n".encode("utf-16"),
        {},
        [(2, "ACCEPTED")],
        [],
    ),
    (
        "utf-16 without a byte order mark",
        f"url,country\n{DK}1,DE\n".encode("utf-16-le"),
        {},
        [(2, "ACCEPTED")],
        [],
    ),
    (
        "Excel's sep= line names the delimiter",
        f"sep=;\nurl;country\n{DK}1;DE\n".encode(),
        {},
        [(3, "ACCEPTED")],
        [],
    ),
    (
        "control characters in a field",
        f'url,country,analyst_note\n{DK}1,DE,a\x00b\n{DK}2,DE,"tab\there"\n'.encode(),
        {},
        [(2, "ERROR"), (3, "ACCEPTED")],
        ["analyst_note holds the control character '\\x00'"],
    ),
    (
        "huge fields: over csv's 131,072 limit and over the protocol's",
        (
            f"url,country,analyst_note\n{DK}1,DK,{LONG_NOTE}\n{DK}{'u' * 5000},DK,\n{DK}3,DK,ok\n"
        ).encode(),
        {},
        [(2, "ERROR"), (3, "ERROR"), (4, "ACCEPTED")],
        ["analyst_note is 200,000 characters; at most 2,000", "url is 5,0"],
    ),
    (
        "unterminated quote in the middle: the next row is not swallowed",
        (
            f'url,country,analyst_note\n{DK}1,DK,"open\n{DK}2,NL,next row\n{DK}3,DE,"closed"\n'
        ).encode(),
        {},
        [(2, "ERROR"), (3, "ACCEPTED"), (4, "ACCEPTED")],
        ["line 2: a quoted field opened here runs over"],
    ),
    (
        "unterminated quote on the last row",
        f'url,country,analyst_note\n{DK}1,DK,fine\n{DK}2,DK,"never closed\n'.encode(),
        {},
        [(2, "ACCEPTED"), (3, "ERROR")],
        ["line 3: a quoted field opened here is never closed"],
    ),
    (
        "quote that runs into the next row and closes there",
        f'url,country,analyst_note\n{DK}1,DK,"open\n{DK}2,NL,"quoted"\n'.encode(),
        {},
        [(2, "ERROR"), (3, "ACCEPTED")],
        ["line 2: a quoted field opened here runs over 2 lines"],
    ),
    (
        "a line break inside a quoted note is kept; line numbers count it",
        f'url,country,analyst_note\n{DK}1,DK,"two\nlines"\n{DK}2,DK,x\n'.encode(),
        {},
        [(2, "ACCEPTED"), (4, "ACCEPTED")],
        [],
    ),
    (
        "blank lines skipped, numbering kept",
        f"\nurl,country\n\n{DK}1,DK\n\n{DK}2,DK\n".encode(),
        {},
        [(4, "ACCEPTED"), (6, "ACCEPTED")],
        [],
    ),
    (
        "too many fields",
        f"url,country\n{DK}1,DK,extra\n".encode(),
        {},
        [(2, "ERROR")],
        ["3 fields but the header names 2"],
    ),
    (
        "ASN as 64500 or AS64500",
        (
            f"url,country,hosting_asn\n{DK}1,DK,64500\n{DK}2,DK,AS64500\n{DK}3,DK,as 7\n"
            f"{DK}4,DK,AS-1\n{DK}5,DK,4294967296\n"
        ).encode(),
        {},
        [(2, "ACCEPTED"), (3, "ACCEPTED"), (4, "ACCEPTED"), (5, "ERROR"), (6, "ERROR")],
        ["hosting_asn 'AS-1'", "hosting_asn '4294967296'"],
    ),
    (
        "countries: the usual mistakes refused with the code meant; ZZ and XA valid",
        (
            f"url,country\n{DK}1,UK\n{DK}2,EL\n{DK}3,usa\n{DK}4,ZZ\n{DK}5,XA\n{DK}6,XX\n{DK}7,gb\n"
        ).encode(),
        {},
        [
            (2, "ERROR"),
            (3, "ERROR"),
            (4, "ERROR"),
            (5, "ACCEPTED"),
            (6, "ACCEPTED"),
            (7, "ERROR"),
            (8, "ACCEPTED"),
        ],
        ["did you mean GB?", "did you mean GR?", "did you mean US?", "not an assigned"],
    ),
    (
        "bad values per row (hash, choice, missing)",
        f"url,country,hashes,media_type\n{DK}1,DK,md5:zz,\n{DK}2,DK,,photo\n,DK,,\n".encode(),
        {},
        [(2, "ERROR"), (3, "ERROR"), (4, "ERROR")],
        ["not hexadecimal", "media_type 'photo'", "url and country are required"],
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "options", "expected", "errors"), CASES, ids=[c[0] for c in CASES]
)
def test_import_file_classes(
    tmp_path: Path,
    name: str,
    data: bytes,
    options: dict[str, Any],
    expected: list[tuple[int, str]],
    errors: list[str],
) -> None:
    rows, recorder = run(tmp_path, data, **options)
    assert outcomes(rows) == expected, name
    messages = [r["error"] for r in rows if r["outcome"] == "ERROR"]
    assert len(messages) == len(errors) or not errors
    for message, wanted in zip(messages, errors, strict=False):
        assert wanted in message
    assert len(recorder.sent) == sum(1 for _, o in expected if o == "ACCEPTED")


def test_decoded_text_is_right(tmp_path: Path) -> None:
    data = f"url\tcountry\tanalyst_note\r{DK}1\tDK\tCafé \u2013 \u201cquoted\u201d €5\r".encode(
        "cp1252"
    )
    _, recorder = run(tmp_path, data)
    assert recorder.sent[0].analyst_note == "Café \u2013 \u201cquoted\u201d €5"
    data = f'url,country,analyst_note\n{DK}1,DK,"two\r\nlines"\n'.encode()
    (tmp_path / "second").mkdir()
    _, recorder = run(tmp_path / "second", data)
    assert recorder.sent[0].analyst_note == "two\nlines"
    assert recorder.sent[0].hosting_asn == 0


@pytest.mark.parametrize(
    ("data", "options", "wanted"),
    [
        (b"url,hashs,country\n", {}, "unknown column 'hashs' (did you mean 'hashes'?)"),
        (b"url,country,analyst_notes\n", {}, "did you mean 'analyst_note'?"),
        (b"url;country;hashes\nhttp://a/;DE;\n", {"delimiter": ","}, "try --delimiter"),
        (b"http://a.example/,DE\n", {}, "the first line holds a URL"),
        (b"URL,Land\n", {}, "unknown column 'land'"),
        (b"url,url,country\n", {}, "named twice: url"),
        (b"url,hashes\n", {}, "missing column(s) country"),
        (b"", {}, "the file is empty"),
        (b"\xff\xfeu\x00", {"encoding": "utf-8"}, "cannot read the file as utf-8"),
        (b"url,country\n", {"encoding": "no-such-codec"}, "cannot read the file as no-such-codec"),
    ],
)
def test_files_refused_whole(
    tmp_path: Path, data: bytes, options: dict[str, Any], wanted: str
) -> None:
    with pytest.raises(click.ClickException) as caught:
        run(tmp_path, data, **options)
    assert wanted in caught.value.message


def test_how_the_file_is_read_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(tmp_path, f"url;country\r\n{DK};DK\r\n".encode("cp1252") + b"\r\n")
    said = capsys.readouterr().err
    assert "encoding utf-8, delimiter semicolon" in said
    run(tmp_path, "url\tcountry\n€\tDK\n".encode("cp1252"))
    assert "encoding cp1252 (not valid UTF-8), delimiter tab" in capsys.readouterr().err


def test_results_are_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = f"url,country\n{DK}1,DK\n".encode()
    run(tmp_path, data)
    run(tmp_path, data)
    assert (tmp_path / "in.results.csv").exists() and (tmp_path / "in.results-2.csv").exists()
    assert "in.results.csv exists (an earlier run); writing" in capsys.readouterr().err
    with pytest.raises(click.UsageError, match="exists; name a new file"):
        import_run.plan(tmp_path / "in.csv", None, None, tmp_path / "in.results.csv", None)


def test_interrupted_import_resumes_by_row_key(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    lines = ["url,country,hosting_asn"]
    lines += [f"{DK}{n},DK,{'AS' if n % 2 else ''}{n}" for n in range(10_000)]
    lines[5000] = f"{DK}bad,UK,"  # fails in both runs: retried on resume
    source.write_text("\r\n".join(lines) + "\r\n")
    first = Recorder(stop_after=6_000)
    plan = import_run.plan(source, None, None, None, None)
    with pytest.raises(click.ClickException, match="go on with: --resume"):
        import_run.execute(plan, first)
    second = Recorder()
    resumed = import_run.plan(source, None, None, None, plan.results)
    tally = import_run.execute(resumed, second)
    # Twelve chunks of 500 were answered (row 5001 refused among them); the
    # thirteenth would pass 6,000 and found the node gone: written as nothing.
    assert (len(first.sent), first.calls) == (5_999, 12)
    assert (tally.skipped, tally.submitted, tally.failed) == (5_999, 4_000, 1)
    assert len(first.sent) + len(second.sent) == 9_999
    assert second.calls == 9  # 4,001 rows left: 8 full chunks and one of 1
    # The chunk the node never answered was written as UNCONFIRMED with the
    # ids it carried; the resumed run sent those rows under the same ids.
    with plan.results.open(newline="") as handle:
        unconfirmed = {r["row_key"]: r["report_id"] for r in csv.DictReader(handle)
                       if r["outcome"] == "UNCONFIRMED"}  # fmt: skip
    assert len(unconfirmed) == 500
    resent = {r.report_id for r in second.sent}
    assert set(unconfirmed.values()) <= resent
    assert {r.url for r in first.sent}.isdisjoint({r.url for r in second.sent})
    with plan.results.open(newline="") as handle:
        latest = {r["row_key"]: r for r in csv.DictReader(handle)}
    assert len(latest) == 10_000
    assert sorted(int(r["row"]) for r in latest.values()) == list(range(2, 10_002))
    bad = [r for r in latest.values() if r["outcome"] != "ACCEPTED"]
    assert [(r["row"], r["outcome"]) for r in bad] == [("5001", "ERROR")]


def test_row_key_is_stable() -> None:
    one = row_key({"url": " http://a/ ", "country": "de", "analyst_note": "x"})
    assert one == row_key({"analyst_note": "x", "country": "DE ", "url": "http://a/"})
    assert one != row_key({"url": "http://a/", "country": "DE", "analyst_note": "y"})


def test_resume_refuses_a_file_that_is_not_results(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("url,country\n")
    with pytest.raises(click.UsageError, match="no row_key column"):
        import_run.plan(other, None, None, None, other)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_in_a_log() -> None:
    now = [0.0]
    log = io.StringIO()
    progress = Progress(100, log, every=10.0, clock=lambda: now[0])
    for _ in range(50):
        now[0] += 0.5
        progress.step()
    progress.finish()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3  # at 10 s, 20 s, and the final line
    assert lines[0] == "importing: 20/100 rows, 2.0 rows/s, elapsed 0m10s, ETA 0m40s"
    terminal = _Terminal()
    progress = Progress(10, terminal, clock=lambda: now[0])
    now[0] += 1.0
    progress.step()
    progress.finish()
    assert terminal.getvalue().startswith(
        "\rimporting: 1/10 rows"
    ) and terminal.getvalue().endswith("\n")


def _no_traceback(data: bytes) -> None:
    try:
        source = open_source(data)
    except SourceError:
        return
    for record in records(source):
        if not record.error:
            with contextlib.suppress(RowError):
                build_report(record.fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    _no_traceback(data)


_PIECES = st.sampled_from(
    [
        "url",
        "country",
        "URL",
        "hashes",
        "analyst_note",
        "hosting_asn",
        DK,
        "DK",
        "uk",
        '"',
        '""',
        ",",
        ";",
        "\t",
        "\r",
        "\n",
        "\r\n",
        " ",
        "é",
        "\x00",
        "=1+1",
        "AS1",
        "sha256:00",
        "\ufeff",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join), st.sampled_from(["utf-8", "cp1252", "utf-16"]))
def test_csv_like_text_never_crashes(text: str, encoding: str) -> None:
    _no_traceback(("url,country,analyst_note,hosting_asn\n" + text).encode(encoding, "replace"))


def test_resume_with_results_of_another_file_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(tmp_path, f"url,country\n{DK}1,DK\n".encode())
    other = tmp_path / "other.csv"
    other.write_text(f"url,country\n{DK}2,DK\n")
    capsys.readouterr()
    import_run.plan(other, None, None, None, tmp_path / "in.results.csv")
    assert "no row of" in capsys.readouterr().err
