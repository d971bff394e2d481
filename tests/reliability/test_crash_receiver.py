"""kill -9 of the RECEIVING node, again and again, during a 10,000-item stream.

A sender (hotline-dk's identity) streams signed reports to hotline-nl's node
in batches of 250-500 items and retries each batch, unchanged, until it holds
receipts. Meanwhile the test SIGKILLs the node at seeded random points (a
random delay after a chosen batch began: before, during or after its commit)
and restarts it. The seed is printed; RELIABILITY_CRASH_SEED=<seed> replays the same
kill plan (timing on a busy machine still varies).

Afterwards a Jepsen-style set check: every item stored exactly once
(inbound_items, case_reports, one case each), the sender holds a verified
receipt for every item, byte-identical to the one the node stored, and each
retried item the node had already stored was answered with that stored receipt.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfp.v1 import federation_service_pb2 as fed_pb
from tests.support.crashes import (
    RetryingSender,
    holds,
    id_counts,
    integrity_ok,
    kill9,
    receipt_envelope,
    scalar,
    set_check,
    start_node,
    stored_receipts,
    wait_until,
)
from tests.support.net import (
    Network,
    item,
    make_report,
    outcome_name,
    running_network,
    sign_report,
    small_members,
    verify_receipt,
)

SENDER, RECEIVER = "hotline-dk", "hotline-nl"
ITEMS = 10_000
BATCH_SIZES = (250, 500)
#: A timed kill lands this long (uniformly drawn) after its batch began, so
#: kills fall before, during and after commits whatever the ingest speed.
KILL_DELAY = (0.0, 1.5)
#: The whole stream, kills and restarts included, must end within this.
STREAM_TIMEOUT = 600.0


@pytest.fixture
def rnet(tmp_path: Path) -> Iterator[Network]:
    """A network where only the receiver runs a node (the sender is this test)."""
    with running_network(tmp_path / "net", small_members(RECEIVER)) as network:
        yield network


def _seed() -> int:
    text = os.environ.get("RELIABILITY_CRASH_SEED")
    return int(text) if text else random.SystemRandom().randrange(2**32)


def _batches(
    net: Network, rng: random.Random
) -> list[tuple[list[fed_pb.ForwardedItem], list[str]]]:
    key = net.signing_key(SENDER)
    batches = []
    made = 0
    while made < ITEMS:
        size = min(rng.randint(*BATCH_SIZES), ITEMS - made)
        reports = [make_report(SENDER, "NL") for _ in range(size)]
        batches.append(
            ([item(sign_report(r, key)) for r in reports], [r.report_id for r in reports])
        )
        made += size
    return batches


def _stream_with_kills(net: Network, kills: int) -> None:
    seed = _seed()
    print(f"\nkill plan seed: {seed} (replay with RELIABILITY_CRASH_SEED={seed})")
    rng = random.Random(seed)
    batches = _batches(net, rng)
    assert kills < len(batches), "more kills planned than batches to kill during"
    plan = sorted(rng.sample(range(1, len(batches)), kills))
    # A kill waits a random delay, or for the batch's commit (then the reply
    # races the kill: the retry must get the receipts stored at that commit).
    delays = [rng.choice((None, rng.uniform(*KILL_DELAY))) for _ in plan]
    expected = [i for _, ids in batches for i in ids]

    sender = RetryingSender(net, SENDER, RECEIVER)
    failures: list[BaseException] = []

    def stream() -> None:
        try:
            for index, (items, ids) in enumerate(batches):
                sender.send(index, items, ids)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=stream, name="sender", daemon=True)
    thread.start()
    done = 0
    for batch, delay in zip(plan, delays, strict=True):
        if not sender.wait_for_batch(batch, STREAM_TIMEOUT) or failures:
            break
        if delay is None:
            wait_until(holds(net, RECEIVER, batches[batch][1][-1]), 30.0, 0.005)
        else:
            time.sleep(delay)
        kill9(net, RECEIVER)
        start_node(net, RECEIVER)
        done += 1
    thread.join(STREAM_TIMEOUT)
    assert not thread.is_alive(), "the sender did not finish in time"
    assert not failures, failures
    assert done == kills, f"only {done} of {kills} kills happened"
    took = time.monotonic() - began

    # Every item stored exactly once: as an accepted item and as a case report.
    check = set_check(
        expected,
        id_counts(net, RECEIVER, "inbound_items", "item_id"),
        id_counts(net, RECEIVER, "case_reports", "report_id"),
    )
    print(f"{kills} kills, {len(sender.attempts)} calls, {took:.0f}s: {check.summary()}")
    assert check.ok, check.summary()
    assert scalar(net, RECEIVER, "SELECT COUNT(*) FROM cases") == ITEMS
    assert integrity_ok(net, RECEIVER)

    # The sender holds a receipt for each item: the very bytes the node stored.
    stored = stored_receipts(net, RECEIVER)
    assert sender.receipts.keys() == set(expected)
    differ = [i for i in expected if sender.receipts[i] != stored[i]]
    assert not differ, f"{len(differ)} receipts differ from the stored ones, e.g. {differ[0]}"
    roster = net.bootstrap_roster().roster
    for item_id in expected:
        receipt = verify_receipt(net, receipt_envelope(sender.receipts[item_id]), roster)
        assert receipt.item_id == item_id
        assert outcome_name(receipt) == "OUTCOME_ACCEPTED"

    # Retries of items stored before the retry got exactly the stored receipt.
    checked, changed = sender.retried_receipts_match()
    print(f"retried items already stored: {checked}, answered with a different receipt: 0")
    assert not changed, f"retries got new receipts for stored items: {changed[:3]}"


@pytest.mark.timeout(900)
def test_receiver_killed_three_times_during_stream(rnet: Network) -> None:
    """Stream 10,000 items while the receiver is killed -9 three times and restarted:
    expect every item stored exactly once and a matching receipt for each at the
    sender, nothing lost (lost = 0, duplicated = 0)."""
    _stream_with_kills(rnet, kills=3)


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_receiver_killed_twenty_times_during_stream(rnet: Network) -> None:
    """Stream 10,000 items while the receiver is killed -9 twenty times and restarted:
    expect every item stored exactly once and a matching receipt for each at the
    sender, nothing lost (lost = 0, duplicated = 0)."""
    _stream_with_kills(rnet, kills=20)
