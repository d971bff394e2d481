"""Reading and writing the small TOML files operators exchange.

The standard library reads TOML but does not write it; the files here hold
only strings, integers, booleans, datetimes, lists of strings and arrays of
tables, which this writer covers.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from federation.network.errors import OperationsError

Table = Mapping[str, Any]
M = TypeVar("M", bound=BaseModel)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, refusing an unreadable or invalid one."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OperationsError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OperationsError(f"{path} is not valid TOML: {exc}") from exc


def validate(model: type[M], raw: object, where: Path | str) -> M:
    """``raw`` (read from ``where``) as ``model``; the first problem, named by its field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise OperationsError(f"{where}: {field}: {message}{more}") from exc


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_tables(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _lines(table: Table, prefix: str) -> list[str]:
    lines = [f"{k} = {_value(v)}" for k, v in table.items() if v is not None and not _is_tables(v)]
    for key, value in table.items():
        if _is_tables(value):
            for item in value:
                lines += ["", f"[[{prefix}{key}]]", *_lines(item, f"{prefix}{key}.")]
    return lines


def dumps(table: Table, header: str = "") -> str:
    """TOML text for ``table`` (None values left out), with a comment header."""
    comment = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*comment, *_lines(table, "")]) + "\n"
