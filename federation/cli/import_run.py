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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import click

from federation.cli.csv_safe import RowWriter, excel_requested
from federation.cli.import_source import COLUMNS, Record, SourceError, open_source, records
from federation.cli.report_errors import ImportStoppedError, RowError
from federation.core.ids import is_uuid, new_uuid7

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
#: A row that was in a call the node never answered (the import was
#: interrupted or the node went away): it may or may not be stored there.
#: --resume sends it again under the same report id, so the node answers
#: with the receipt it stored, if it did, instead of filing it twice.
UNCONFIRMED: Final = "UNCONFIRMED"
#: Outcomes after which a row is sent again by --resume.
NOT_SUBMITTED: Final = frozenset({"ERROR", "REJECTED", UNCONFIRMED})
#: A longer URL is refused anyway (the protocol allows 4096 characters).
_URL_SHOWN: Final = 4096
_FOLDED: Final = frozenset(
    {"country", "hashes", "media_type", "classification", "victim_age_group"}
)

__all__ = ["ImportStoppedError", "RowError", "Submit", "execute", "plan", "row_key"]

#: The submission of a chunk of (report id, row) pairs: each row's result
#: columns, in order (a row the node or the client refused gets outcome
#: ERROR and its error); raises :class:`ImportStoppedError` when the node
#: cannot be reached at all.
Submit = Callable[[Sequence[tuple[str, Mapping[str, str]]]], list[dict[str, Any]]]
#: Rows per SubmitReports call: large enough that the call's fixed cost is
#: small beside the rows' (docs: README "Importing reports"), small enough
#: that an interrupted call leaves little to resend.
CHUNK_ROWS: Final = 500


def row_key(fields: Mapping[str, str]) -> str:
    """A stable key of a row's values (32 hex digits), independent of the
    row's position, the file's column order and surrounding spaces."""
    parts = []
    for column in COLUMNS:
        value = fields.get(column, "").strip()
        parts.append(f"{column}={value.lower() if column in _FOLDED else value}")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Earlier:
    """What an earlier results file says: rows done, and the report ids of
    rows whose call was never answered (sent again under the same id)."""

    done: frozenset[str] = frozenset()
    unconfirmed: Mapping[str, str] = field(default_factory=dict)


def earlier_results(path: Path) -> Earlier:
    """Read an earlier results file; the latest line for a row key wins."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if "row_key" not in (reader.fieldnames or ()):
                raise click.UsageError(
                    f"{path} is not a results file of `report import` (no row_key column)"
                )
            latest = {row["row_key"]: row for row in reader if row["row_key"]}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise click.UsageError(f"cannot read --resume {path}: {exc}") from exc
    done = {k for k, row in latest.items() if (row.get("outcome") or "") not in NOT_SUBMITTED}
    unconfirmed = {
        k: row.get("report_id") or ""
        for k, row in latest.items()
        if row.get("outcome") == UNCONFIRMED and is_uuid(row.get("report_id") or "")
    }
    return Earlier(frozenset(done), unconfirmed)


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
    earlier: Earlier


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
    earlier = earlier_results(resume) if resume is not None else Earlier()
    skip = earlier.done
    click.echo(f"reading {csv_file}: {source.describe()}; {len(rows):,} rows", err=True)
    if note:
        click.echo(note, err=True)
    if skip and not any(row_key(r.fields) in skip for r in rows if not r.error):
        click.echo(
            f"warning: no row of {csv_file} is among those {resume} shows as submitted "
            "(the results of another file?)",
            err=True,
        )
    return Plan(rows, path, resume is not None, earlier)


def execute(plan: Plan, submit: Submit) -> Tally:
    """Run ``plan``: every row submitted or skipped, each result written as
    it is known; an interruption keeps what was done and says how to go on."""
    tally, progress = Tally(), Progress(len(plan.rows))
    try:
        with _results_file(plan.results, plan.append) as out:
            run_rows(plan.rows, submit, out, plan.earlier, progress, tally)
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
    earlier: Earlier,
    progress: Progress,
    tally: Tally,
    chunk_rows: int = CHUNK_ROWS,
) -> None:
    """Submit each row not done before, a chunk per call, writing the results
    in row order as each chunk is answered."""
    chunk: list[tuple[Record, str]] = []
    for record in rows:
        key = row_key(record.fields) if not record.error else ""
        if key and key in earlier.done:
            tally.skipped += 1
            progress.step()
            continue
        chunk.append((record, key))
        if len(chunk) >= chunk_rows:
            _send(chunk, submit, out, earlier, progress, tally)
            chunk = []
    if chunk:
        _send(chunk, submit, out, earlier, progress, tally)


def _send(
    chunk: list[tuple[Record, str]],
    submit: Submit,
    out: RowWriter,
    earlier: Earlier,
    progress: Progress,
    tally: Tally,
) -> None:
    """One call for the chunk's readable rows; every row's result written,
    also when the call is interrupted (then as UNCONFIRMED, with its id)."""
    ids = {key: earlier.unconfirmed.get(key) or new_uuid7() for _, key in chunk if key}
    readable = [(ids[key], record.fields) for record, key in chunk if not record.error]
    try:
        answers = iter(submit(readable) if readable else [])
    except (ImportStoppedError, KeyboardInterrupt):
        for record, key in chunk:
            unknown = {"outcome": UNCONFIRMED, "report_id": ids.get(key, ""), "error": _UNKNOWN}
            _write(_result(record, key, None if record.error else unknown), out, progress, tally)
        raise
    for record, key in chunk:
        _write(_result(record, key, None if record.error else next(answers)), out, progress, tally)


_UNKNOWN: Final = "the node did not answer; --resume sends it again under the same report id"


def _write(result: dict[str, Any], out: RowWriter, progress: Progress, tally: Tally) -> None:
    if result["outcome"] in NOT_SUBMITTED:
        tally.failed += 1
    else:
        tally.submitted += 1
    out.row(result)
    progress.step()


def _result(record: Record, key: str, answer: dict[str, Any] | None) -> dict[str, Any]:
    url = record.fields.get("url", "")
    shown = url if len(url) <= _URL_SHOWN else url[:_URL_SHOWN] + "..."
    base = {"row": record.line, "url": shown, "row_key": key}
    if answer is None:
        return {**base, "outcome": "ERROR", "error": record.error}
    return {**base, **answer}
