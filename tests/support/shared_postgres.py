"""Several node processes of one member on one PostgreSQL database.

A busy member scales out by running its node in several processes with the
same configuration and database, each on its own listen port. Here: point a
test network member's generated node.toml at a PostgreSQL database, write a
second configuration that differs only in its ports, start that second
process (``devnet up`` starts the first), and address calls to either
process. Every wait is bounded; the second process is always stopped.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from federation.devnet import processes
from federation.devnet.create import LOOPBACK, free_ports
from tests.support.net import Network, create_network, small_members, stop, wait_exited
from tests.support.postgres import PostgresCluster

#: Bound of the wait for the second process to serve (seconds).
START_TIMEOUT = 30.0
#: Bound of the wait for it to exit after SIGTERM (seconds).
STOP_TIMEOUT = 20.0


def node_config(
    text: str,
    url: str,
    *,
    listen: int | None = None,
    metrics: int | None = None,
    outbox_batch: int | None = None,
) -> str:
    """A generated node.toml with another database and, optionally, other
    ports and outbox batch size."""
    lines, listens = [], 0
    for original in text.splitlines():
        line = original
        if line.startswith("database_url ="):
            line = f'database_url = "{url}"'
        elif line.startswith("listen =") and listen is not None:
            # The first `listen` is the node's, a later one the metrics endpoint's.
            port = listen if listens == 0 else metrics
            line = f'listen = "{LOOPBACK}:{port}"'
            listens += 1
        lines.append(line)
        if line.strip() == "[outbox]" and outbox_batch is not None:
            lines.append(f"batch_size = {outbox_batch}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SharedMember:
    """A member whose two node processes share one database."""

    member_id: str
    url: str
    #: Configuration of the second process (the first keeps node.toml).
    second_config: Path
    #: Where the second process listens (host:port).
    second_endpoint: str
    second_log: Path


def share_database(
    network: Network, member_id: str, url: str, *, outbox_batch: int | None = None
) -> SharedMember:
    """Rewrite the member's node.toml for database ``url`` and write the
    second process's configuration beside it (nodes not started)."""
    home = network.directory / "members" / member_id
    config = home / "node.toml"
    generated = config.read_text()
    config.write_text(node_config(generated, url, outbox_batch=outbox_batch))
    listen, metrics = free_ports(2)
    second = home / "node-b.toml"
    second.write_text(
        node_config(generated, url, listen=listen, metrics=metrics, outbox_batch=outbox_batch)
    )
    return SharedMember(member_id, url, second, f"{LOOPBACK}:{listen}", home / "node-b.log")


@contextmanager
def second_process(shared: SharedMember) -> Iterator[subprocess.Popen[bytes]]:
    """Start the second node process (not waiting for it to serve); stop it
    (SIGTERM, then SIGKILL) on exit."""
    with shared.second_log.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "federation.cli.main",
                "serve",
                "--config",
                str(shared.second_config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            if not wait_exited(process.pid, STOP_TIMEOUT):
                process.kill()
        process.wait(timeout=10)


def wait_serving(
    network: Network,
    shared: SharedMember,
    process: subprocess.Popen[bytes],
    timeout: float = START_TIMEOUT,
) -> None:
    """Wait (bounded) until the second process answers its health check."""
    entry = dataclasses.replace(network.member(shared.member_id), endpoint=shared.second_endpoint)
    deadline = time.monotonic() + timeout
    while not processes.check_health(network.directory, entry):
        assert process.poll() is None, shared.second_log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "second process never became healthy"
        time.sleep(0.2)


def at_endpoint(network: Network, member_id: str, endpoint: str) -> Network:
    """The network as a client sees it when its calls to ``member_id`` go to
    ``endpoint`` (another process of that member)."""
    members = dict(network.manifest.members)
    members[member_id] = dataclasses.replace(members[member_id], endpoint=endpoint)
    return dataclasses.replace(
        network, manifest=dataclasses.replace(network.manifest, members=members)
    )


@contextmanager
def running_pair(
    directory: Path, postgres: PostgresCluster, member_id: str, *others: str
) -> Iterator[tuple[Network, Network]]:
    """A new network in which ``member_id`` runs as two processes on one fresh
    PostgreSQL database (``others`` run as usual): the network as seen
    through process A and through process B. Everything is stopped after."""
    network = create_network(directory, small_members(member_id, *others))
    url = postgres.create_database("pair")
    shared = share_database(network, member_id, url)
    try:
        upgrade(network, member_id)
        with second_process(shared) as process_b:
            processes.up(network.directory, only=[member_id, *others])
            wait_serving(network, shared, process_b)
            yield network, at_endpoint(network, member_id, shared.second_endpoint)
    finally:
        stop(network.directory)
        postgres.drop_database(url)


def upgrade(network: Network, member_id: str) -> str:
    """``hfed db upgrade`` of the member's (shared) database; what it printed."""
    return upgrade_config(network.directory / "members" / member_id / "node.toml")


def upgrade_config(config: Path) -> str:
    """``hfed db upgrade --config CONFIG``; what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "federation.cli.main", "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
