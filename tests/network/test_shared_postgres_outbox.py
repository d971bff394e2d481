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

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from federation.devnet import processes
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
)
from tests.support.postgres import PostgresCluster
from tests.support.shared_postgres import (
    SharedMember,
    second_process,
    share_database,
    upgrade,
    wait_serving,
)

#: Items in the shared outbox (HFED_SHARED_OUTBOX_ITEMS overrides, e.g. for profiling).
ITEMS = int(os.environ.get("HFED_SHARED_OUTBOX_ITEMS", "5000"))
#: Small batches, so that the two processes take turns on the queue.
BATCH = 100
DELIVERY_TIMEOUT = 150.0

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def shared_db_network(
    tmp_path: Path, postgres: PostgresCluster
) -> Iterator[tuple[Network, SharedMember]]:
    """A network (hotline-dk on PostgreSQL, hotline-nl on SQLite), nodes NOT started."""
    network = create_network(tmp_path / "net", small_members("hotline-dk", "hotline-nl"))
    url = postgres.create_database("shared")
    shared = share_database(network, "hotline-dk", url, outbox_batch=BATCH)
    try:
        yield network, shared
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
    shared_db_network: tuple[Network, SharedMember],
) -> None:
    network, shared = shared_db_network
    url = shared.url
    home = network.directory / "members" / "hotline-dk"

    # `hfed db upgrade` migrates the PostgreSQL database.
    assert "database at revision" in upgrade(network, "hotline-dk")

    started = time.monotonic()
    item_ids = _fill_outbox(network, url)
    filled = time.monotonic() - started

    processes.up(network.directory, only=["hotline-nl"])
    # Process B (our own child), then process A through `devnet up`.
    with second_process(shared) as process_b:
        send_started = time.monotonic()
        processes.up(network.directory, only=["hotline-dk"])
        wait_serving(network, shared, process_b)

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
    logged = _delivered_in_logs(home / "node.log") + _delivered_in_logs(shared.second_log)
    assert logged == ITEMS, f"senders logged {logged} deliveries for {ITEMS} items"

    # The receiver stored every item exactly once.
    uri = f"file:{network.db_path('hotline-nl')}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        stored = [r[0] for r in conn.execute("SELECT item_id FROM inbound_items")]
    assert sorted(stored) == sorted(item_ids)
