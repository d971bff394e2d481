"""Driver-level reads and writes, private to federation/store.

Nothing outside store/ calls these: the repository modules beside this one
(cases, status, outbox...) are the way to a table, and return storage
records (named tuples) rather than driver rows or ORM objects.

Fast multi-row INSERT for the ingest path.

SQLAlchemy's executemany path runs its generic parameter machinery for every
row (about 10 µs a row here); filing one report writes about eight rows, so
that alone would cap ingest near 10,000 reports/s of pure overhead. This
module compiles each INSERT once per dialect and column set, applies the same
per-column bind processors SQLAlchemy would (time zones, JSON, booleans), and
hands the rows straight to the driver's executemany. The SQL and conversions
are SQLAlchemy's own; only the per-row generic dispatch is skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, LargeBinary, Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    #: Column names in the order the driver expects the parameters.
    names: tuple[str, ...]
    processors: tuple[_Processor, ...]
    positional: bool


_cache: dict[tuple[str, str, tuple[str, ...], bool], _Compiled] = {}
_cache_lock = threading.Lock()


def _compile(
    table: Table, names: tuple[str, ...], dialect: Dialect, ignore_duplicates: bool = False
) -> _Compiled:
    key = (dialect.name, table.name, names, ignore_duplicates)
    found = _cache.get(key)
    if found is not None:
        return found
    statement: Any = insert(table)
    if ignore_duplicates:
        # ON CONFLICT DO NOTHING, spelled by each dialect's own insert().
        dialect_insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
        statement = dialect_insert(table).on_conflict_do_nothing()
    compiled = statement.compile(dialect=dialect, column_keys=list(names))
    order = tuple(compiled.positiontup or names) if compiled.positional else names
    processors = tuple(_processor(table, name, dialect) for name in order)
    made = _Compiled(str(compiled), order, processors, compiled.positional)
    with _cache_lock:
        _cache[key] = made
    return made


def _processor(table: Table, name: str, dialect: Dialect) -> _Processor:
    column_type = table.c[name].type
    if isinstance(column_type, LargeBinary):
        # Both drivers (sqlite3, psycopg) bind bytes natively as BLOB/bytea;
        # SQLAlchemy's processor only re-wraps each value.
        return None
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def insert_many(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_duplicates: bool = False,
) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in one executemany.

    Runs on the session's connection, so it is part of the caller's
    transaction. Columns left out get their server-side defaults only (no
    Python-side defaults are applied: give every value the row needs). With
    ``ignore_duplicates`` a row whose key is already stored is skipped.
    """
    if rows:
        names = tuple(rows[0])
        columns = {name: [row[name] for row in rows] for name in names}
        _insert_columns(session, table, names, columns, ignore_duplicates)


def insert_records(
    session: Session, table: Table, records: Sequence[tuple[Any, ...]], upto: int = 0
) -> None:
    """:func:`insert_many` of named tuples whose field names are ``table``'s
    columns: all of them, or only the first ``upto`` (the others get NULL)."""
    if records:
        names: tuple[str, ...] = records[0]._fields[: upto or None]  # type: ignore[attr-defined]
        columns = dict(zip(names, zip(*records, strict=True), strict=False))
        _insert_columns(session, table, names, columns, ignore_duplicates=False)


def _insert_columns(
    session: Session,
    table: Table,
    names: tuple[str, ...],
    columns: Mapping[str, Sequence[Any]],
    ignore_duplicates: bool,
) -> None:
    """INSERT the rows whose values ``columns`` holds column by column."""
    connection = session.connection()
    plan = _compile(table, names, connection.dialect, ignore_duplicates)
    converted = [
        values if p is None else _convert(p, values)
        for values, p in zip((columns[n] for n in plan.names), plan.processors, strict=True)
    ]
    if plan.positional:
        params: list[Any] = list(zip(*converted, strict=True))
    else:
        params = [
            dict(zip(plan.names, values, strict=True)) for values in zip(*converted, strict=True)
        ]
    with _driver_cursor(session, plan.sql) as cursor:
        cursor.executemany(plan.sql, params)


@contextmanager
def _driver_cursor(session: Session, sql: str) -> Iterator[Any]:
    """A cursor of the driver connection under the session's transaction.

    SQLAlchemy's own execution path costs about 0.1 ms of Python per
    statement (events, contexts, result wrapping); a transaction that files
    a single analyst's report runs a dozen statements, so the ingest path
    talks to the driver directly. Same connection, same transaction; driver
    errors are raised as SQLAlchemy's (IntegrityError, OperationalError...),
    which the callers' retry and error mapping expect.
    """
    connection = session.connection()
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
    finally:
        cursor.close()


def _convert(processor: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """Apply a bind processor to a column's values, once per distinct value.

    A batch repeats a few values many times (its timestamp, empty path
    lists), and conversions such as datetime formatting are the costly part.
    """
    done: dict[Any, Any] = {}
    out = []
    for value in values:
        key = tuple(value) if isinstance(value, list) else value
        try:
            out.append(done[key])
        except KeyError:
            out.append(done.setdefault(key, processor(value)))
        except TypeError:  # unhashable: convert every time
            out.append(processor(value))
    return out


#: Values per IN list: far below SQLite's limit on parameters per statement.
IN_CHUNK = 500


def select_in(
    session: Session,
    query: str,
    values: Sequence[Any],
    *,
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Run ``query`` with its ``{in}`` replaced by a list of placeholders, in
    chunks of IN_CHUNK values; the rows of all chunks. Other placeholders in
    ``query`` are written ``?`` (translated for drivers that use ``%s``).

    For the batch lookups of the ingest path, where building an expanding IN
    through SQLAlchemy costs more than the indexed lookups themselves. Values
    must already be in driver form (str, int, bytes); ``before`` and
    ``after`` are parameters that precede and follow the IN list in
    ``query`` (a LIMIT after the list applies per chunk). Rows are plain
    tuples in the order of the query's columns.
    """
    mark = _mark(session)
    rows: list[tuple[Any, ...]] = []
    with _driver_cursor(session, query) as cursor:
        for start in range(0, len(values), IN_CHUNK):
            chunk = values[start : start + IN_CHUNK]
            sql = query.replace("?", mark).replace("{in}", ", ".join([mark] * len(chunk)))
            cursor.execute(sql, (*before, *chunk, *after))
            rows.extend(tuple(row) for row in cursor.fetchall())
    return rows


def _mark(session: Session) -> str:
    """The driver's placeholder: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "?" if session.connection().dialect.paramstyle == "qmark" else "%s"


def bind_value(session: Session, table: Table, column: str, value: Any) -> Any:
    """``value`` as the driver should receive it for ``table.column`` (the
    column type's bind processing, e.g. a UTC datetime on SQLite)."""
    dialect = session.connection().dialect
    processor = _processor(table, column, dialect)
    return value if processor is None or value is None else processor(value)


def fetch(
    session: Session, table: Table, columns: Sequence[str], where: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE where`` on the driver cursor, each value
    converted by its column type's result processing (JSON, UTC datetimes).

    ``where`` may end with ORDER BY / LIMIT; its placeholders are written ``?``
    and its parameters must already be in driver form (see bind_value). For
    the small, frequent reads of the outbox, whose cost through the ORM was
    mostly building and caching the statement.
    """
    sql = _select(table, columns, where).replace("?", _mark(session))
    with _driver_cursor(session, sql) as cursor:
        cursor.execute(sql, tuple(params))
        rows = [tuple(row) for row in cursor.fetchall()]
    return _converted(session, table, columns, rows)


def stream(
    session: Session,
    table: Table,
    columns: Sequence[str],
    where: str,
    params: Sequence[Any],
    chunk: int = 50_000,
) -> Iterator[tuple[Any, ...]]:
    """``fetch`` for reads too large to hold twice (start-up loading), row by
    row from the driver cursor, ``chunk`` rows at a time, unconverted: for
    columns whose driver values are already the wanted ones (text, bytes).
    Through the ORM, 10 M rows took 23 s and a gigabyte more; this, 5 s."""
    sql = _select(table, columns, where).replace("?", _mark(session))
    with _driver_cursor(session, sql) as cursor:
        cursor.execute(sql, tuple(params))
        while rows := cursor.fetchmany(chunk):
            yield from rows


def fetch_in(
    session: Session,
    table: Table,
    columns: Sequence[str],
    where: str,
    values: Sequence[Any],
    *,
    before: Sequence[Any] = (),
    after: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Like :func:`fetch` for a ``where`` holding an ``{in}`` list of ``values``
    (chunked, with ``before`` and ``after`` parameters, as in
    :func:`select_in`); rows of all chunks, converted."""
    rows = select_in(session, _select(table, columns, where), values, before=before, after=after)
    return _converted(session, table, columns, rows)


def _select(table: Table, columns: Sequence[str], where: str) -> str:
    # Identifiers come from the schema (table.c rejects unknown names) and
    # ``where`` from our code; every value travels as a bound parameter.
    names = ", ".join(table.c[name].name for name in columns)
    return f"SELECT {names} FROM {table.name} WHERE {where}"  # noqa: S608


def _converted(
    session: Session, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """``rows`` with each value put through its column type's result processing."""
    dialect = session.connection().dialect
    processors = [
        table.c[name].type.dialect_impl(dialect).result_processor(dialect, None) for name in columns
    ]
    if not any(processors):
        return rows
    return [
        tuple(v if p is None else p(v) for v, p in zip(row, processors, strict=True))
        for row in rows
    ]


def execute_many(session: Session, sql: str, params: Sequence[Sequence[Any]]) -> None:
    """Run one statement (placeholders written ``?``) once per parameter tuple,
    in one executemany on the driver cursor. Parameters in driver form."""
    if not params:
        return
    sql = sql.replace("?", _mark(session))
    with _driver_cursor(session, sql) as cursor:
        cursor.executemany(sql, [tuple(p) for p in params])


def update_many(
    session: Session,
    table: Table,
    names: Sequence[str],
    key: str,
    rows: Sequence[Sequence[Any]],
) -> None:
    """``UPDATE table SET names... WHERE key = ?`` once per row, in one
    executemany; each row holds the new values of ``names`` then its key.

    Values are given as the application holds them (aware datetimes...):
    each column's bind processing is looked up once and applied here.
    """
    if not rows:
        return
    dialect = session.connection().dialect
    columns = [*names, key]
    processors = [_processor(table, name, dialect) for name in columns]
    converted = [
        values if p is None else _convert(p, values)
        for values, p in zip(zip(*rows, strict=True), processors, strict=True)
    ]
    sets = ", ".join(f"{table.c[name].name} = ?" for name in names)
    sql = f"UPDATE {table.name} SET {sets} WHERE {table.c[key].name} = ?"  # noqa: S608
    execute_many(session, sql, list(zip(*converted, strict=True)))


def lock_clause(session: Session) -> str:
    """What makes a SELECT lock the rows it reads until the transaction ends.

    PostgreSQL: FOR UPDATE, as several node processes write one database
    under READ COMMITTED; the rows are read in key order so that two
    transactions lock shared rows in the same order. SQLite: nothing, its
    write transactions take the whole database (BEGIN IMMEDIATE).
    """
    return " FOR UPDATE" if session.connection().dialect.name == "postgresql" else ""
