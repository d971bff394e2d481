"""Two node processes of one member share one PostgreSQL database and outbox.

A busy hotline scales out by running several node processes behind a load
balancer. Here hotline-dk runs twice (same configuration and database,
different listen ports) on a fresh PostgreSQL database whose outbox holds
5,000 signed reports for hotline-nl (which stays on SQLite). Both processes
deliver from the one queue; every item must be sent exactly once: delivered
with a verified receipt, stored once at the receiver, and counted once in
the senders' own delivery logs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from federation.devnet import processes
from federation.devnet.create import free_ports
from federation.store import outbox
from federation.store.database import Database
from federation.store.models import OutboxRow
from federation.wire.convert import encode_envelope
from hfp.v1 import envelope_pb2
from tests.support.net import (
    Network,
    create_network,
    make_report,
    sign_report,
    small_members,
    stop,
    verify_receipt,
    wait_exited,
)
from tests.support.postgres import PostgresCluster

#: Items in the shared outbox (HFED_SHARED_OUTBOX_ITEMS overrides, e.g. for profiling).
ITEMS = int(os.environ.get("HFED_SHARED_OUTBOX_ITEMS", "5000"))
#: Small batches, so that the two processes take turns on the queue.
BATCH = 100
DELIVERY_TIMEOUT = 150.0

pytestmark = pytest.mark.timeout(300)


def _rewrite_config(text: str, url: str, listen: int | None, metrics: int | None) -> str:
    """The generated node.toml with our database, batch size and (optionally) ports."""
    lines, listens = [], 0
    for original in text.splitlines():
        line = original
        if line.startswith("database_url ="):
            line = f'database_url = "{url}"'
        elif line.startswith("listen =") and listen is not None:
            # The first `listen` is the node's, a later one the metrics endpoint's.
            port = listen if listens == 0 else metrics
            line = f'listen = "127.0.0.1:{port}"'
            listens += 1
        lines.append(line)
        if line.strip() == "[outbox]":
            lines.append(f"batch_size = {BATCH}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def shared_db_network(
    tmp_path: Path, postgres: PostgresCluster
) -> Iterator[tuple[Network, str, Path, int]]:
    """A network (hotline-dk on PostgreSQL, hotline-nl on SQLite), nodes NOT started."""
    network = create_network(tmp_path / "net", small_members("hotline-dk", "hotline-nl"))
    url = postgres.create_database("shared")
    home = network.directory / "members" / "hotline-dk"
    config = home / "node.toml"
    generated = config.read_text()
    config.write_text(_rewrite_config(generated, url, None, None))
    listen_b, metrics_b = free_ports(2)
    second = home / "node-b.toml"
    second.write_text(_rewrite_config(generated, url, listen_b, metrics_b))
    try:
        yield network, url, second, listen_b
    finally:
        stop(network.directory)
        postgres.drop_database(url)


def _fill_outbox(network: Network, url: str) -> list[str]:
    key = network.signing_key("hotline-dk")
    db = Database(url)
    ids = []
    try:
        with db.write() as session:
            for _ in range(ITEMS):
                report = make_report("hotline-dk", "NL")
                envelope = sign_report(report, key)
                outbox.enqueue(
                    session,
                    "hotline-nl",
                    report.report_id,
                    envelope.payload_type,
                    encode_envelope(envelope),
                    ["hotline-dk"],
                    report.created_at,
                )
                ids.append(report.report_id)
    finally:
        db.dispose()
    return ids


def _delivered_in_logs(log: Path) -> int:
    """Items a node process says it delivered (sum over its 'delivered to peer' lines)."""
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "delivered to peer":
            total += int(entry.get("items", 0))
    return total


def test_two_processes_deliver_a_shared_outbox_exactly_once(
    shared_db_network: tuple[Network, str, Path, int],
) -> None:
    network, url, second_config, listen_b = shared_db_network
    home = network.directory / "members" / "hotline-dk"

    # `hfed db upgrade` migrates the PostgreSQL database.
    command = [sys.executable, "-m", "federation.cli.main", "db", "upgrade"]
    upgraded = subprocess.run(
        [*command, "--config", str(home / "node.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "database at revision" in upgraded.stdout

    started = time.monotonic()
    item_ids = _fill_outbox(network, url)
    filled = time.monotonic() - started

    processes.up(network.directory, only=["hotline-nl"])
    # Process B (our own child), then process A through `devnet up`.
    log_b = home / "node-b.log"
    with log_b.open("ab") as log:
        process_b = subprocess.Popen(
            [sys.executable, "-m", "federation.cli.main", "serve", "--config", str(second_config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        send_started = time.monotonic()
        processes.up(network.directory, only=["hotline-dk"])
        entry_b = dataclasses.replace(
            network.member("hotline-dk"), endpoint=f"127.0.0.1:{listen_b}"
        )
        deadline = time.monotonic() + 30
        while not processes.check_health(network.directory, entry_b):
            assert process_b.poll() is None, log_b.read_text()[-3000:]
            assert time.monotonic() < deadline, "second process never became healthy"
            time.sleep(0.2)

        db = Database(url)
        try:
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            pending = ITEMS
            while pending and time.monotonic() < deadline:
                time.sleep(0.5)
                with db.read() as session:
                    pending = outbox.pending_count(session, "hotline-nl")
            sent_in = time.monotonic() - send_started
            assert pending == 0, f"{pending} items still pending after {DELIVERY_TIMEOUT:.0f}s"

            with db.read() as session:
                rows = session.execute(
                    select(
                        OutboxRow.item_id,
                        OutboxRow.state,
                        OutboxRow.receipt,
                        OutboxRow.attempts,
                        OutboxRow.claimed_by,
                    )
                ).all()
                per_claimant = dict(
                    session.execute(
                        select(OutboxRow.claimed_by, func.count()).group_by(OutboxRow.claimed_by)
                    ).all()
                )
        finally:
            db.dispose()
    finally:
        if process_b.poll() is None:
            process_b.send_signal(signal.SIGTERM)
            if not wait_exited(process_b.pid, 20):
                process_b.kill()
        process_b.wait(timeout=10)

    print(
        f"\n{ITEMS} items: outbox filled in {filled:.1f}s, delivered in {sent_in:.1f}s; "
        f"per process: {sorted(per_claimant.values())}"
    )
    # Every row delivered once, with a receipt from the receiver for that very item.
    assert sorted(r.item_id for r in rows) == sorted(item_ids)
    assert {r.state for r in rows} == {outbox.OutboxState.DELIVERED}
    assert all(r.attempts == 1 for r in rows), "an item was attempted more than once"
    roster = network.bootstrap_roster().roster
    for row in rows:
        assert row.receipt is not None
        receipt = verify_receipt(
            network, envelope_pb2.SignedEnvelope.FromString(row.receipt), roster
        )
        assert receipt.item_id == row.item_id
        assert receipt.receiver_member_id == "hotline-nl"

    # Both processes took part, and between them sent each item exactly once.
    assert len(per_claimant) == 2 and None not in per_claimant, per_claimant
    logged = _delivered_in_logs(home / "node.log") + _delivered_in_logs(log_b)
    assert logged == ITEMS, f"senders logged {logged} deliveries for {ITEMS} items"

    # The receiver stored every item exactly once.
    uri = f"file:{network.db_path('hotline-nl')}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        stored = [r[0] for r in conn.execute("SELECT item_id FROM inbound_items")]
    assert sorted(stored) == sorted(item_ids)
