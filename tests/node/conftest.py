"""Fixtures for tests against real node processes.

The default network (every member of ``hfed devnet init``) is started once
per session; tests that change a node's roster or stop a node start their
own, smaller network in a module-scoped fixture.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # make `tests.support` importable however pytest is run
    sys.path.insert(0, str(ROOT))

from tests.support.net import Network, running_network  # noqa: E402


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """The default test network, running; shared read-mostly by many tests.

    Tests may deliver items to it (each uses fresh report ids) but must not
    change its rosters or stop its nodes.
    """
    with running_network(tmp_path_factory.mktemp("net") / "default") as network:
        yield network
