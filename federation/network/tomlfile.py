"""Reading and writing the small TOML files operators exchange.

The standard library reads TOML (tomllib); tomli-w, by the same author,
writes it, so every value is escaped the way the reader expects.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
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


def _table_without_none(table: Table) -> dict[str, Any]:
    return {k: _without_none(v) for k, v in table.items() if v is not None}


def _without_none(value: object) -> object:
    """``value`` with None left out of every table (TOML has no null)."""
    if isinstance(value, Mapping):
        return _table_without_none(value)
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value]
    return value


def dumps(table: Table, header: str = "") -> str:
    """TOML text for ``table`` (None values left out), with a comment header."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    body = tomli_w.dumps(_table_without_none(table))
    return comment + body
