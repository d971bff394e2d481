"""Fixtures for the harness tests (helpers live in ``support.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.support import devnet


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh default test network of our node, shared by a module's tests."""
    with devnet(tmp_path_factory.mktemp("conformance-net") / "net") as directory:
        yield directory
