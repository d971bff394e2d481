"""Table, CSV and JSON output for people and spreadsheets."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import click

from federation.cli.csv_safe import EXCEL_OPTION, excel_requested, write_csv

F = TypeVar("F", bound=Callable[..., Any])
Format = Literal["table", "json", "csv"]
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table for people, csv for spreadsheets, json for programs.",
)


def format_options(command: F) -> F:
    """``--format`` and ``--excel`` (read by :func:`emit`)."""
    return EXCEL_OPTION(_FORMAT(command))


FORMAT_OPTION = format_options


#: C0 and C1 control characters (and DEL): a member's note or receipt detail
#: could carry terminal escape sequences; they are shown, never obeyed.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def printable(text: str) -> str:
    """``text`` with every control character written as a visible \\xNN escape,
    for a terminal: peers' and clients' strings are hostile input."""
    return text.translate(_CONTROLS)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned columns; empty cells shown as '-'."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else printable(str(value))


def emit(fmt: Format, headers: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Print records as a table, CSV (with header) or a JSON array."""
    if fmt == "json":
        click.echo(json.dumps(list(rows), indent=2, default=str))
    elif fmt == "csv":
        write_csv(sys.stdout, headers, rows, excel=excel_requested())
    else:
        print_table([h.upper() for h in headers], [[r.get(h) for h in headers] for r in rows])


def note_truncated(shown: int, what: str, narrow: str = "") -> None:
    """Say on stderr (stdout stays parseable) that a list stopped at --limit
    while more entries match, and how to see them."""
    how = f"raise --limit{f', or narrow with {narrow}' if narrow else ''}"
    click.echo(f"(the first {shown} {what}; more match: {how})", err=True)
