"""A peer unreachable for a long time, then back; a sender restarted mid-drain.

hotline-dk's node holds reports for hotline-nl (handed over by hotline-de)
while hotline-nl's node is down. The sender must keep retrying, but no faster
than its backoff curve (peers/backoff.py) allows: after n consecutive failures
it waits at least (1 - jitter) * ceiling(n), so in T seconds at most K
attempts fit, K the largest number with sum_{n<K} (1 - jitter) * ceiling(n) <= T.
The count of failed attempts is read from the sender's persisted schedule
(peer_backoff.failures) and, after the recovery, from the attempts column of
the outbox. When the peer is back, everything is delivered exactly once.

CI runs a short outage with a small curve (base 0.2 s, cap 2 s, set through
HFED_OUTBOX__* variables) and a sender restart in the middle of it, which must
keep the schedule; ``--long`` runs four minutes with the production curve
(base 0.5 s, cap 60 s; a devnet's node.toml lowers the cap to 5 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from federation.devnet import processes
from federation.node.config import OutboxConfig, load_config
from federation.store.outbox import OutboxState
from peers.backoff import Backoff
from tests.support.crashes import (
    id_counts,
    outbox_rows,
    pending_outbox,
    query,
    set_check,
    start_node,
    stored_receipts,
    wait_until,
)
from tests.support.hostile import deliver_many
from tests.support.net import (
    Network,
    item,
    make_report,
    outcome_name,
    running_network,
    sign_report,
    small_members,
)

SENDER, RECEIVER, ORIGIN = "hotline-dk", "hotline-nl", "hotline-de"
ITEMS = 1000
DRAIN_TIMEOUT = 120.0
SMALL_CURVE = {"HFED_OUTBOX__BACKOFF_BASE_SECONDS": "0.2", "HFED_OUTBOX__BACKOFF_CAP_SECONDS": "2"}
#: The production defaults (a devnet's node.toml lowers the cap to 5 s).
DEFAULT_CURVE = {
    "HFED_OUTBOX__BACKOFF_BASE_SECONDS": str(OutboxConfig().backoff_base_seconds),
    "HFED_OUTBOX__BACKOFF_CAP_SECONDS": str(OutboxConfig().backoff_cap_seconds),
}


@pytest.fixture
def onet(tmp_path: Path) -> Iterator[Network]:
    """hotline-dk (sender) and hotline-nl (receiver), both running at first."""
    with running_network(tmp_path / "net", small_members(SENDER, RECEIVER)) as network:
        yield network


def curve_of(net: Network, env: Mapping[str, str]) -> Backoff:
    """The backoff curve the sender runs with: its node.toml plus ``env`` overrides."""
    config = load_config(net.path(net.member(SENDER).config), environ=env)
    return Backoff(config.outbox.backoff_base_seconds, config.outbox.backoff_cap_seconds)


def most_attempts(curve: Backoff, seconds: float) -> int:
    """The most attempts the curve allows in ``seconds`` (the first at time 0)."""
    attempts, spent = 1, 0.0
    while True:
        spent += (1 - curve.jitter) * curve.ceiling(attempts)
        if spent > seconds:
            return attempts
        attempts += 1


def _schedule(net: Network) -> tuple[int, datetime | None]:
    """The sender's persisted (failures, retry_at) for the receiver."""
    rows = query(
        net, SENDER, "SELECT failures, retry_at FROM peer_backoff WHERE destination = ?", [RECEIVER]
    )
    if not rows:
        return 0, None
    return int(rows[0][0]), datetime.fromisoformat(str(rows[0][1])).replace(tzinfo=UTC)


def _hand_over(net: Network, count: int) -> list[str]:
    """hotline-de hands hotline-dk ``count`` reports for NL; their ids."""
    key = net.signing_key(ORIGIN)
    reports = [make_report(ORIGIN, "NL") for _ in range(count)]
    receipts = deliver_many(net, ORIGIN, SENDER, [item(sign_report(r, key)) for r in reports], 500)
    assert all(outcome_name(r) == "OUTCOME_FORWARDED" for r in receipts)
    return [r.report_id for r in reports]


def _delivered_once(net: Network, ids: list[str]) -> None:
    """Everything left the sender's outbox with the receiver's stored receipt, once."""
    assert wait_until(lambda: pending_outbox(net, SENDER) == 0, DRAIN_TIMEOUT, 0.5), (
        f"{pending_outbox(net, SENDER)} items still pending"
    )
    check = set_check(
        ids,
        id_counts(net, RECEIVER, "inbound_items", "item_id"),
        id_counts(net, RECEIVER, "case_reports", "report_id"),
    )
    print(check.summary())
    assert check.ok, check.summary()
    stored = stored_receipts(net, RECEIVER)
    rows = outbox_rows(net, SENDER)
    assert sorted(r.item_id for r in rows) == sorted(ids)
    assert all(r.state is OutboxState.DELIVERED and r.receipt == stored[r.item_id] for r in rows)


def _outage(net: Network, seconds: float, env: Mapping[str, str], restart_sender: bool) -> None:
    curve = curve_of(net, env)
    processes.down(net.directory, only=[RECEIVER, SENDER])
    start_node(net, SENDER, env)
    began = time.monotonic()
    ids = _hand_over(net, ITEMS)

    # Sample the schedule through the outage: failures only grow, never reset,
    # and the next retry is never further off than the cap.
    seen: list[int] = []
    restarted = not restart_sender
    while time.monotonic() - began < seconds:
        failures, retry_at = _schedule(net)
        if retry_at is not None:
            assert (retry_at - datetime.now(UTC)).total_seconds() <= curve.cap_seconds + 1.0
        assert not seen or failures >= seen[-1], f"failures went back: {seen[-1]} -> {failures}"
        seen.append(failures)
        if not restarted and time.monotonic() - began > seconds / 2:
            stop_sender = processes.down(net.directory, only=[SENDER])
            assert stop_sender == [SENDER]
            start_node(net, SENDER, env)
            restarted = True
        time.sleep(1.0)
    failures, _ = _schedule(net)
    elapsed = time.monotonic() - began
    allowed = most_attempts(curve, elapsed) + 1  # +1: the two clocks' reading moments
    print(f"\n{failures} failed attempts in {elapsed:.0f}s; the curve allows at most {allowed}")
    assert 2 <= failures <= allowed

    start_node(net, RECEIVER)
    _delivered_once(net, ids)
    # The first batch carries every failed attempt plus the successful one.
    retries = max(r.attempts for r in outbox_rows(net, SENDER)) - 1
    total = time.monotonic() - began
    assert failures <= retries <= most_attempts(curve, total) + 1, (retries, total)
    assert _schedule(net) == (0, None), "a delivery did not clear the backoff"


@pytest.mark.timeout(300)
def test_peer_down_half_a_minute_retries_bounded_then_delivered(onet: Network) -> None:
    """Take the receiver down for ~20 s with 1,000 items queued for it (and restart the
    sender halfway): expect retries no faster than the backoff curve, the schedule kept
    across the restart, then every item delivered exactly once, nothing lost."""
    _outage(onet, 20.0, SMALL_CURVE, restart_sender=True)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_peer_down_minutes_default_curve_then_delivered(onet: Network) -> None:
    """Take the receiver down for four minutes with 1,000 items queued, production curve:
    expect retries no faster than the curve, then every item delivered exactly once,
    nothing lost."""
    _outage(onet, 240.0, DEFAULT_CURVE, restart_sender=False)


@pytest.mark.timeout(300)
def test_sender_restarted_mid_drain_delivers_exactly_once(onet: Network) -> None:
    """Queue 1,000 items while the receiver is down, bring it back and SIGTERM the
    sender while it drains them in batches of 5, then restart it: expect no claim
    left behind and every item delivered exactly once with the receiver's stored
    receipt, nothing lost."""
    processes.down(onet.directory, only=[RECEIVER, SENDER])
    # Small batches make the drain a long series of calls to stop in the middle of.
    start_node(onet, SENDER, {**SMALL_CURVE, "HFED_OUTBOX__BATCH_SIZE": "5"})
    ids = _hand_over(onet, ITEMS)
    start_node(onet, RECEIVER)
    assert wait_until(lambda: pending_outbox(onet, SENDER) < ITEMS, DRAIN_TIMEOUT, 0.05)
    processes.down(onet.directory, only=[SENDER])
    left = pending_outbox(onet, SENDER)
    print(f"\nsender stopped with {left} of {ITEMS} items pending")
    assert 0 < left < ITEMS, "the sender was not stopped in the middle of its drain"
    assert not any(r.leased for r in outbox_rows(onet, SENDER)), "a stopped sender kept a claim"
    start_node(onet, SENDER)
    _delivered_once(onet, ids)
