"""Running ``hfed report import``: row keys, the results file, resuming, progress.

Each row has a **row key**: a hash of its normalised values (trimmed; codes in
lower case), written in the results file. ``--resume RESULTS`` skips every row
whose key the file records as submitted, whatever line it is on now, so a file
can be fixed and re-sorted between runs; rows that failed are tried again, and
the new results are appended to the same file. A results file is never
overwritten: the default name gets a number when it exists, and an explicit
``--results`` that exists is refused.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import click

from federation.cli.csv_safe import RowWriter, excel_requested
from federation.cli.import_source import COLUMNS, Record, SourceError, open_source, records
from federation.cli.report_errors import ImportStoppedError, RowError

RESULT_COLUMNS: Final = (
    "row",
    "url",
    "outcome",
    "report_id",
    "case_id",
    "forwarded_to",
    "error",
    "row_key",
)
#: Outcomes after which a row is not sent again by --resume.
NOT_SUBMITTED: Final = frozenset({"ERROR", "REJECTED"})
#: A longer URL is refused anyway (the protocol allows 4096 characters).
_URL_SHOWN: Final = 4096
_FOLDED: Final = frozenset(
    {"country", "hashes", "media_type", "classification", "victim_age_group"}
)

__all__ = ["ImportStoppedError", "RowError", "Submit", "execute", "plan", "row_key"]

#: One row's submission: its result columns, or RowError; raises
#: :class:`ImportStoppedError` when the node cannot be reached at all.
Submit = Callable[[Mapping[str, str]], dict[str, Any]]


def row_key(fields: Mapping[str, str]) -> str:
    """A stable key of a row's values (32 hex digits), independent of the
    row's position, the file's column order and surrounding spaces."""
    parts = []
    for column in COLUMNS:
        value = fields.get(column, "").strip()
        parts.append(f"{column}={value.lower() if column in _FOLDED else value}")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def submitted_keys(path: Path) -> set[str]:
    """Keys of the rows that ``path`` (an earlier results file) shows as
    submitted; the latest line for a key wins."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "row_key" not in (reader.fieldnames or ()):
                raise click.UsageError(
                    f"{path} is not a results file of `report import` (no row_key column)"
                )
            latest = {row["row_key"]: row.get("outcome") or "" for row in reader if row["row_key"]}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise click.UsageError(f"cannot read --resume {path}: {exc}") from exc
    return {key for key, outcome in latest.items() if outcome not in NOT_SUBMITTED}


def results_path(csv_file: Path, results: Path | None, resume: Path | None) -> tuple[Path, str]:
    """Where results go and a note on why there, never over an earlier file."""
    if resume is not None:
        if results is not None and results.resolve() != resume.resolve():
            raise click.UsageError("--resume appends to its own file; leave out --results")
        return resume, f"resuming: skipping rows {resume} shows as submitted, appending to it"
    if results is not None:
        if results.exists():
            raise click.UsageError(
                f"{results} exists; name a new file, or go on with it: --resume {results}"
            )
        return results, ""
    default = csv_file.with_suffix(".results.csv")
    path, number = default, 1
    while path.exists():
        number += 1
        path = default.with_name(f"{csv_file.stem}.results-{number}.csv")
    note = "" if path == default else f"{default} exists (an earlier run); writing {path}"
    return path, note


@dataclass
class Tally:
    """What happened to the rows."""

    submitted: int = 0
    failed: int = 0
    skipped: int = 0

    def summary(self, results: Path) -> str:
        """The closing line."""
        skipped = f", {self.skipped} skipped (submitted before)" if self.skipped else ""
        return (
            f"{self.submitted} submitted, {self.failed} failed{skipped}; "
            f"per-row results in {results}"
        )


class Progress:
    """Rows done, rate and time left on stderr: one line rewritten on a
    terminal, a new line every ``every`` seconds otherwise (logs, CI)."""

    def __init__(
        self,
        total: int,
        stream: IO[str] | None = None,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total, self._stream, self._clock = total, stream or sys.stderr, clock
        self._tty = self._stream.isatty()
        self._every = 0.2 if self._tty else every
        self._start = self._last = clock()
        self._done = 0

    def step(self) -> None:
        """One more row done; shows progress when it is time to."""
        self._done += 1
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._show(now)

    def finish(self) -> None:
        """The final figures (and the end of a terminal's line)."""
        if self._done:
            self._show(self._clock())
        if self._tty and self._done:
            self._stream.write("\n")

    def line(self, now: float) -> str:
        """The progress text at ``now``."""
        elapsed = max(now - self._start, 1e-9)
        rate = self._done / elapsed
        left = (self._total - self._done) / rate if rate else 0.0
        return (
            f"{self._done:,}/{self._total:,} rows, {rate:,.1f} rows/s, "
            f"elapsed {_duration(elapsed)}, ETA {_duration(left)}"
        )

    def _show(self, now: float) -> None:
        prefix, end = ("\r", "") if self._tty else ("", "\n")
        self._stream.write(f"{prefix}importing: {self.line(now)}{end}")
        self._stream.flush()


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@dataclass(frozen=True)
class Plan:
    """What an import will do, settled before anything is sent."""

    rows: list[Record]
    results: Path
    append: bool
    skip: frozenset[str]


def plan(
    csv_file: Path,
    encoding: str | None,
    delimiter: str | None,
    results: Path | None,
    resume: Path | None,
) -> Plan:
    """Read and check ``csv_file`` and choose the results file; says on
    stderr how the file is read and where results go. Usage errors and
    :class:`click.ClickException` for a file that cannot be imported."""
    try:
        data = csv_file.read_bytes()
        source = open_source(
            data, encoding=encoding, delimiter="\t" if delimiter == "tab" else delimiter
        )
    except OSError as exc:
        raise click.ClickException(f"cannot read {csv_file}: {exc.strerror or exc}") from exc
    except SourceError as exc:
        raise click.ClickException(f"{csv_file}: {exc}") from exc
    rows = list(records(source))
    path, note = results_path(csv_file, results, resume)
    skip = frozenset(submitted_keys(resume)) if resume is not None else frozenset()
    click.echo(f"reading {csv_file}: {source.describe()}; {len(rows):,} rows", err=True)
    if note:
        click.echo(note, err=True)
    if skip and not any(row_key(r.fields) in skip for r in rows if not r.error):
        click.echo(
            f"warning: no row of {csv_file} is among those {resume} shows as submitted "
            "(the results of another file?)",
            err=True,
        )
    return Plan(rows, path, resume is not None, skip)


def execute(plan: Plan, submit: Submit) -> Tally:
    """Run ``plan``: every row submitted or skipped, each result written as
    it is known; an interruption keeps what was done and says how to go on."""
    tally, progress = Tally(), Progress(len(plan.rows))
    try:
        with _results_file(plan.results, plan.append) as out:
            run_rows(plan.rows, submit, out, plan.skip, progress, tally)
    except OSError as exc:
        raise click.ClickException(f"cannot write {plan.results}: {exc.strerror or exc}") from exc
    except (ImportStoppedError, KeyboardInterrupt) as exc:
        raise click.ClickException(
            f"{str(exc) or 'interrupted'}; {tally.summary(plan.results)}; "
            f"go on with: --resume {plan.results}"
        ) from None
    finally:
        progress.finish()
    return tally


@contextmanager
def _results_file(path: Path, append: bool) -> Iterator[RowWriter]:
    """The results file, opened to add to (resume) or new with its header."""
    ends_cleanly = True
    if append and path.stat().st_size:
        with path.open("rb") as existing:
            existing.seek(-1, os.SEEK_END)
            ends_cleanly = existing.read(1) == b"\n"
    with path.open("a" if append else "x", newline="", encoding="utf-8") as handle:
        out = RowWriter(handle, RESULT_COLUMNS)
        if not append:
            out.header(excel=excel_requested())
        elif not ends_cleanly:
            handle.write("\r\n")  # a run killed mid-line: keep that line apart
        yield out


def run_rows(
    rows: Iterable[Record],
    submit: Submit,
    out: RowWriter,
    skip: frozenset[str],
    progress: Progress,
    tally: Tally,
) -> None:
    """Submit each row not in ``skip``, writing its result as it goes."""
    for record in rows:
        key = row_key(record.fields) if not record.error else ""
        if key and key in skip:
            tally.skipped += 1
            progress.step()
            continue
        result = _one_row(record, key, submit)
        if result["outcome"] in NOT_SUBMITTED:
            tally.failed += 1
        else:
            tally.submitted += 1
        out.row(result)
        progress.step()


def _one_row(record: Record, key: str, submit: Submit) -> dict[str, Any]:
    url = record.fields.get("url", "")
    shown = url if len(url) <= _URL_SHOWN else url[:_URL_SHOWN] + "..."
    base = {"row": record.line, "url": shown, "row_key": key}
    if record.error:
        return {**base, "outcome": "ERROR", "error": record.error}
    try:
        return {**base, **submit(record.fields)}
    except RowError as exc:
        return {**base, "outcome": "ERROR", "error": str(exc)}
