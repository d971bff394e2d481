"""Reading a report CSV the way spreadsheets write it, for ``hfed report import``.

Every decision is made by a documented rule and said to the analyst, never
guessed silently:

* **Encoding**: a byte order mark decides (UTF-8, UTF-16); otherwise the file
  is read as strict UTF-8, and if that fails as Windows-1252 (what Excel on
  Windows writes as "CSV"), and if that fails too (bytes 0x81, 0x8D, 0x8F,
  0x90, 0x9D are undefined in it) as ISO-8859-1, which reads any byte. A
  statistical detector (charset-normalizer) was tried and named cp775 or
  cp1006 for short Western European files; spreadsheets write only these
  few encodings, so a fixed order is both simpler and right more often.
* **Delimiter**: the one of ``,`` ``;`` tab that splits the header line into
  the most known column names (ties: the one that occurs most); ``--delimiter``
  overrides it.
  An Excel ``sep=;`` first line names it. A file without a mark whose every
  other byte is NUL is UTF-16 (LE or BE).
* **Line ends**: CRLF, LF and lone CR (old Mac Excel) alike.
* **Header**: names in any case, with surrounding spaces, spaces or hyphens for
  ``_``; an unknown name refuses the whole file (nothing is sent) with the
  nearest known name, as does a header that looks like data or like a file
  read with the wrong delimiter.
* **Rows**: any field size is read; a row whose quoting is broken (a quote
  never closed, or one that runs into the next row) is an error for that row,
  with its line number, and reading goes on at the next line, so no row is
  swallowed into another.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

#: Every column the importer knows (url and country are required).
COLUMNS: Final = (
    "url",
    "country",
    "hashes",
    "media_type",
    "classification",
    "hosting_ip",
    "hosting_asn",
    "site_type",
    "victim_age_group",
    "analyst_note",
)
REQUIRED: Final = ("url", "country")
DELIMITERS: Final = {",": "comma", ";": "semicolon", "\t": "tab"}
#: csv's default limit is 131,072 characters; the protocol's limits are
#: checked per field afterwards (a row error), so the reader takes any size.
FIELD_SIZE_LIMIT: Final = 2**31 - 1
_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_URL_START: Final = re.compile(r"(?i)\s*(https?|ftp)://")


class SourceError(ValueError):
    """The file as a whole cannot be imported; nothing was sent."""


@dataclass(frozen=True)
class Record:
    """One data row: the line it starts on, its fields by column, or why not."""

    line: int
    fields: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class Source:
    """A decoded file, with what was chosen to read it."""

    #: The lines after the header, without their line ends.
    lines: list[str]
    encoding: str
    delimiter: str
    columns: tuple[str, ...]
    #: The header's line number (1 unless blank lines come first).
    header_line: int = 1

    def describe(self) -> str:
        """One line for the analyst: how the file is being read."""
        return (
            f"encoding {self.encoding}, delimiter {DELIMITERS[self.delimiter]}, "
            f"columns {', '.join(c or '(blank)' for c in self.columns)}"
        )


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text of ``data`` and the name of the encoding used (see the module doc)."""
    if encoding:
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except (LookupError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read the file as {encoding}: {exc}") from None
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(name).removeprefix("\ufeff"), f"{name} (byte order mark)"
            except UnicodeDecodeError as exc:
                raise SourceError(f"the file starts with a {name} mark but is not: {exc}") from None
    unmarked = _utf16_without_bom(data)
    if unmarked:
        try:
            return data.decode(
                unmarked
            ), f"{unmarked} (no byte order mark; NUL in every other byte)"
        except UnicodeDecodeError:
            pass
    for name in ("utf-8", "cp1252"):
        try:
            return data.decode(name), name if name == "utf-8" else "cp1252 (not valid UTF-8)"
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1 (neither UTF-8 nor cp1252)"


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when NULs fill every other byte of the start
    (ASCII text saved as UTF-16 without a mark), else None."""
    head = data[:4096]
    if len(head) < 4 or head.count(0) < len(head) // 3:
        return None
    odd, even = head[1::2].count(0), head[0::2].count(0)
    if odd >= len(head) // 2 * 0.8:
        return "utf-16-le"
    if even >= len(head) // 2 * 0.8:
        return "utf-16-be"
    return None


def normal_name(header: str) -> str:
    """A header cell as a column name: trimmed, lower case, '_' for spaces and '-'."""
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def physical_lines(text: str) -> list[str]:
    """The file's lines without their ends, whichever line ends it uses."""
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def choose_delimiter(header_line: str) -> str:
    """The delimiter that splits the header into the most known names."""

    def score(delimiter: str) -> tuple[int, int]:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        known = sum(normal_name(c) in COLUMNS for c in cells)
        return known, header_line.count(delimiter)

    return max(DELIMITERS, key=score)


def open_source(
    data: bytes, *, encoding: str | None = None, delimiter: str | None = None
) -> Source:
    """Decode ``data`` and check its header; :class:`SourceError` if unusable."""
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    text, used = decode(data, encoding)
    lines = physical_lines(text)
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise SourceError("the file is empty; the first line must name the columns")
    chosen, first = _sep_line(lines, first, delimiter)
    chosen = chosen or choose_delimiter(lines[first])
    cells = next(csv.reader([lines[first]], delimiter=chosen), [])
    columns = tuple(normal_name(c) for c in cells)
    check_header(columns, cells, chosen)
    return Source(lines[first + 1 :], used, chosen, columns, first + 1)


def _sep_line(lines: list[str], first: int, delimiter: str | None) -> tuple[str | None, int]:
    """Excel's ``sep=;`` first line names the delimiter; the header follows it."""
    named = re.fullmatch(r"sep=(.)", lines[first].strip(" "))
    if named is None:
        return delimiter, first
    following = next((n for n in range(first + 1, len(lines)) if lines[n].strip()), None)
    if following is None:
        raise SourceError("the file has a sep= line but no header line after it")
    return delimiter or named.group(1), following


def check_header(columns: Sequence[str], cells: Sequence[str], delimiter: str) -> None:
    """Refuse a header with unknown, repeated or missing columns, with a hint."""
    hint = _header_hint(cells, delimiter)
    unknown = [c for c in columns if c and c not in COLUMNS]
    if unknown:
        raise SourceError("; ".join(_unknown(c) for c in unknown) + hint + _known())
    repeated = sorted({c for c in columns if c and columns.count(c) > 1})
    if repeated:
        raise SourceError(f"column(s) named twice: {', '.join(repeated)}")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise SourceError(f"missing column(s) {', '.join(missing)}{hint}{_known()}")


def _unknown(column: str) -> str:
    near = difflib.get_close_matches(column, COLUMNS, n=1, cutoff=0.6)
    shown = column if len(column) <= 40 else column[:40] + "..."
    return f"unknown column {shown!r}" + (f" (did you mean {near[0]!r}?)" if near else "")


def _known() -> str:
    return f"; known columns: {', '.join(COLUMNS)}"


def _header_hint(cells: Sequence[str], delimiter: str) -> str:
    """Why a header may look wrong: data in it, or the wrong delimiter."""
    if any(_URL_START.match(c) for c in cells):
        return (
            " (the first line holds a URL: the file needs a header line naming the columns, "
            "e.g. url,country)"
        )
    others = [d for d in DELIMITERS if d != delimiter and any(d in c for c in cells)]
    if others:
        names = " or ".join(f"{DELIMITERS[d]} ({d!r})" for d in others)
        return f" (the header holds {names}: is that the delimiter? try --delimiter)"
    return ""


class _Lines:
    """The physical lines, handed to csv one at a time from a position that
    can be set back (to read on after a broken row)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.position = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            raise StopIteration
        self.position += 1
        return self.lines[self.position - 1] + "\n"


def records(source: Source) -> Iterator[Record]:
    """Every data row of ``source`` with the number of the line it starts on
    (as an editor counts them), or its error; blank lines are skipped."""
    lines = _Lines(source.lines)
    while lines.position < len(lines.lines):
        start = lines.position
        cells, error = _one_record(lines, source)
        if error:
            lines.position = start + 1  # read on from the next line: swallow nothing
        elif not any(c.strip() for c in cells):
            continue
        yield _record(source.header_line + 1 + start, cells, error, source.columns)


def _one_record(lines: _Lines, source: Source) -> tuple[list[str], str]:
    start = lines.position
    reader = csv.reader(lines, delimiter=source.delimiter, strict=True)
    try:
        cells = next(reader)
    except csv.Error as exc:
        return [], _quote_error(exc, lines.position - start)
    except StopIteration:
        return [], ""
    spanned = lines.position - start
    if spanned > 1 and _swallowed(lines.lines[start + 1 : lines.position], source):
        return [], (
            f"a quoted field opened here runs over {spanned} lines into what looks like the "
            "next row: a quote is probably missing; fix the quoting and import again"
        )
    return cells, ""


def _quote_error(exc: csv.Error, spanned: int) -> str:
    if "unexpected end of data" in str(exc):
        return "a quoted field opened here is never closed (unterminated quote)"
    if spanned > 1:
        return (
            f"a quoted field opened here runs over {spanned} lines and ends badly ({exc}): "
            "a quote is probably missing; fix the quoting and import again"
        )
    return f'broken quoting ({exc}); a field holding quotes must be quoted, with "" inside'


def _swallowed(continuation: Sequence[str], source: Source) -> bool:
    """True when a line inside a multi-line field reads as a row of its own:
    a line break inside a note is fine, a whole next row inside it is not."""
    url_at = source.columns.index("url")
    for line in continuation:
        cells = line.split(source.delimiter)
        fits = len(REQUIRED) <= len(cells) <= len(source.columns)
        if fits and url_at < len(cells) and _URL_START.match(cells[url_at].strip('"')):
            return True
    return False


def _record(line: int, cells: list[str], error: str, columns: tuple[str, ...]) -> Record:
    if error:
        return Record(line, error=f"line {line}: {error}")
    if len(cells) > len(columns):
        return Record(
            line,
            error=(
                f"line {line}: {len(cells)} fields but the header names {len(columns)}: "
                "a stray delimiter, or a field that needs quotes"
            ),
        )
    fields: dict[str, str] = {}
    for column, value in zip(columns, cells, strict=False):
        if column:
            fields[column] = value
        elif value.strip():
            return Record(line, error=f"line {line}: a value in a column without a header")
    return Record(line, fields)
