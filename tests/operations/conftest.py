"""Fixtures for the operator commands: a network formed by separate parties."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # make `tests.operations` importable however pytest is run
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from federation.devnet.create import free_ports  # noqa: E402
from tests.operations.parties import Formation, form  # noqa: E402

NODES = ("secretariat", "hotline-dk", "hotline-nl")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Formation:
    """A network formed from nothing by separate parties (no node running yet)."""
    endpoints = {m: f"127.0.0.1:{p}" for m, p in zip(NODES, free_ports(len(NODES)), strict=True)}
    return form(tmp_path_factory.mktemp("ops"), endpoints)
