"""``devnet up`` must not keep the node's database open in the process that ran it.

Found while building bench/: ``processes._spawn`` migrated the database with a
``Database`` it never disposed, so its pooled SQLite connection stayed open in
the caller until the cyclic garbage collector happened to free the engine. A
caller that then replaced the node's database file (the benchmark installs
preloaded databases between runs) got "database disk image is malformed" on
the next ``up``: the leaked connection's per-inode WAL state was shared with
the new connection.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from tests.support.net import create_network, small_members, start, stop

NODE = "hotline-nl"


def _handles_on(path: Path) -> list[str]:
    """Files of this process whose path starts with ``path`` (the db, -wal, -shm)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def test_up_leaves_no_open_handle_on_the_node_database(tmp_path: Path) -> None:
    """Start a node with ``devnet up`` in this process, expect no file of its
    database open here afterwards (before any garbage collection), nothing leaked."""
    network = create_network(tmp_path / "net", small_members(NODE))
    gc.disable()  # what matters is the state right after `up`, not after a collection
    try:
        start(network.directory)
        assert _handles_on(network.db_path(NODE)) == []
    finally:
        gc.enable()
        stop(network.directory)
