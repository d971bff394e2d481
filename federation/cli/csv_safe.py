"""The one CSV writer of the clients: cells a spreadsheet can open without running them.

Every CSV the project writes (``report import`` results, ``liaison export``,
``--format csv`` of every list) goes through :func:`write_csv`. The values
come from other members, their analysts and the reporters behind them, so a
cell is hostile input:

* a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is a formula to Excel, LibreOffice and Google Sheets (``=HYPERLINK``
  to an attacker's site, ``=cmd|...`` DDE); it gets a leading ``'``, as the
  OWASP "CSV Injection" page advises, so that it shows as the text it is;
* control characters (NUL and the other C0 and C1 codes except tab and line
  breaks, which a quoted cell may hold) are removed: they corrupt imports
  and terminals and never belong in a report.

Numbers stay numbers (an ``int`` of -3 is written as ``-3``): only text is
neutralised. ``excel=True`` starts the output with a UTF-8 byte order mark,
which Excel needs to read UTF-8 rather than the Windows code page.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Final

import click

#: What a spreadsheet treats as the start of a formula (OWASP's list).
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
#: C0 controls but tab, LF and CR; DEL; C1 controls.
_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
BOM: Final = "\ufeff"


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet may show it: text without controls and never
    a formula; numbers and ``None`` unchanged (``None`` is an empty cell)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = _CONTROLS.sub("", str(value))
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_csv(
    handle: IO[str],
    headers: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    excel: bool = False,
    header: bool = True,
    lineterminator: str = "\r\n",
) -> None:
    """Write ``rows`` (keys beyond ``headers`` ignored) as CSV to ``handle``;
    ``header=False`` appends rows to a file that has its header already."""
    if excel:
        handle.write(BOM)
    writer = csv.writer(handle, lineterminator=lineterminator)
    if header:
        writer.writerow([safe_cell(h) for h in headers])
    for row in rows:
        writer.writerow([safe_cell(row.get(h)) for h in headers])


class RowWriter:
    """A CSV file written one row at a time (the import's results), each row
    flushed so that an interrupted run keeps every row it finished."""

    def __init__(self, handle: IO[str], headers: Sequence[str]) -> None:
        self._handle = handle
        self._headers = tuple(headers)

    def header(self, *, excel: bool = False) -> None:
        """Write the header line (and the BOM for ``excel``)."""
        write_csv(self._handle, self._headers, (), excel=excel)

    def row(self, row: Mapping[str, Any]) -> None:
        """Write one row and flush it."""
        write_csv(self._handle, self._headers, (row,), header=False)
        self._handle.flush()


def _remember_excel(context: click.Context, _param: click.Parameter, value: bool) -> bool:
    context.meta["hfed.csv_excel"] = value
    return value


#: ``--excel``: kept on the click context so that commands need no extra
#: parameter; :func:`excel_requested` reads it where the CSV is written.
EXCEL_OPTION = click.option(
    "--excel",
    is_flag=True,
    default=False,
    expose_value=False,
    callback=_remember_excel,
    help="With CSV: start with a UTF-8 byte order mark, so that Excel reads UTF-8.",
)


def excel_requested() -> bool:
    """True when the running command was given ``--excel``."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.meta.get("hfed.csv_excel"))
