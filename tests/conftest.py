"""Fixtures shared by the whole suite: one database fixture per storage backend.

``db`` is parametrized over SQLite and PostgreSQL, so every test that uses it
runs against both (a fresh, fully migrated database per test). PostgreSQL
comes from a throwaway cluster on loopback (tests/support/postgres.py), started
once per session when the first test needs it. Without PostgreSQL installed
those tests are skipped locally; in CI (``CI=true``) they fail instead, so CI
can never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `tests.support` importable however pytest is run
    sys.path.insert(0, str(ROOT))

from federation.store.database import Database  # noqa: E402
from federation.store.migrate import upgrade  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    PostgresCluster,
    PostgresUnavailableError,
    start_cluster,
)

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--long``: also run the long variants (marked ``long``); CI runs the short ones."""
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run the long variants of the reliability and fuzz suites (tests marked 'long')",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``long`` unless ``--long`` (or HFED_LONG_TESTS=1) was given."""
    if config.getoption("--long") or os.environ.get("HFED_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long variant: run with --long (or HFED_LONG_TESTS=1)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def in_ci() -> bool:
    """True on CI, where a missing backend is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the session (skipped or failed without one)."""
    try:
        cluster = start_cluster()
    except PostgresUnavailableError as exc:
        if in_ci():
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_template(postgres: PostgresCluster) -> str:
    """Name of a database migrated to head, cloned for each test (fast)."""
    url = postgres.create_database("template")
    database = Database(url)
    try:
        upgrade(database)
    finally:
        database.dispose()
    return url.rsplit("/", 1)[1]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend a test runs against."""
    return str(request.param)


@pytest.fixture
def new_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], str]]:
    """Makes fresh, EMPTY databases of the test's backend; dropped afterwards."""
    made: list[str] = []
    cluster: PostgresCluster | None = (
        request.getfixturevalue("postgres") if backend == "postgresql" else None
    )

    def make() -> str:
        if cluster is None:
            url = f"sqlite:///{tmp_path / f'db{len(made)}.db'}"
        else:
            url = cluster.create_database()
        made.append(url)
        return url

    yield make
    if cluster is not None:
        for url in made:
            cluster.drop_database(url)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database at the newest migration, on each backend."""
    cluster: PostgresCluster | None = None
    if backend == "postgresql":
        cluster = request.getfixturevalue("postgres")
        template = request.getfixturevalue("pg_template")
        url = cluster.create_database(template=template)
        database = Database(url)
    else:
        database = Database(f"sqlite:///{tmp_path / 'node.db'}")
        upgrade(database)
    try:
        yield database
    finally:
        database.dispose()
        if cluster is not None:
            cluster.drop_database(database.url)
