"""kill -9 of a SENDING node at the two delicate points of its outbox.

Two senders forward reports to hotline-nl at once, each killed by a crash
point (federation/runtime/faultpoints.py) in its second batch of 100:

* hotline-dk at ``outbox-before-send``: the batch is claimed but never sent;
* hotline-de at ``outbox-after-reply``: hotline-nl stored the batch and
  replied, but the sender died before recording the receipts.

Both restart without the crash point. Expected: exactly-once effect. hotline-nl
stores every item once; each sender's outbox ends with every item DELIVERED,
holding the receipt hotline-nl stored for it, byte for byte.

A restarted SQLite node holds no claim from before (they live in memory), so
the queue drains at once.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from federation.devnet import processes
from federation.runtime import faultpoints
from federation.store.outbox import OutboxState
from peers.outbox import LEASE
from tests.support.crashes import (
    RetryingSender,
    crash_env,
    crashed_at,
    id_counts,
    outbox_rows,
    pending_outbox,
    receipt_envelope,
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
    wait_exited,
)

RECEIVER = "hotline-nl"
#: sender node -> (the member that hands it the reports, its crash point)
SENDERS = {
    "hotline-dk": ("hotline-de", f"{faultpoints.OUTBOX_BEFORE_SEND}:2"),
    "hotline-de": ("hotline-dk", f"{faultpoints.OUTBOX_AFTER_REPLY}:2"),
}
BATCH = 100
ITEMS = 3 * BATCH
#: Claimed items wait for their lease; then the queue drains.
DRAIN_TIMEOUT = LEASE.total_seconds() + 90


def _feed(net: Network, sender: str) -> tuple[RetryingSender, list[str], threading.Thread]:
    """Hand ``sender`` ITEMS reports for NL (signed by their origin) in one batch."""
    origin, _ = SENDERS[sender]
    key = net.signing_key(origin)
    reports = [make_report(origin, "NL") for _ in range(ITEMS)]
    items = [item(sign_report(r, key)) for r in reports]
    ids = [r.report_id for r in reports]
    feeder = RetryingSender(net, origin, sender)
    # In a thread: should the crash beat the reply, the feeder retries after
    # the restart and must get the same FORWARDED receipts.
    thread = threading.Thread(target=feeder.send, args=(0, items, ids), daemon=True)
    thread.start()
    return feeder, ids, thread


def _states(net: Network, sender: str) -> dict[tuple[OutboxState, bool], list[str]]:
    """The sender's outbox items by (state, leased)."""
    grouped: dict[tuple[OutboxState, bool], list[str]] = {}
    for row in outbox_rows(net, sender):
        grouped.setdefault((row.state, row.leased), []).append(row.item_id)
    return grouped


def _held_by_receiver(net: Network, ids: Sequence[str]) -> int:
    stored = id_counts(net, RECEIVER, "inbound_items", "item_id")
    return sum(1 for i in ids if stored[i])


@pytest.mark.timeout(int(DRAIN_TIMEOUT) + 180)
def test_sender_killed_before_send_and_after_reply_delivers_exactly_once(
    tmp_path: Path,
) -> None:
    """Kill -9 one sender between claiming a batch and sending it, another between
    the peer's reply and recording it; restart both: expect every item stored once
    at the peer and every outbox item DELIVERED with the peer's stored receipt,
    nothing lost."""
    members = small_members(RECEIVER, *SENDERS)
    with running_network(tmp_path / "net", members) as net:
        processes.down(net.directory, only=list(SENDERS))
        pids = {}
        for sender, (_, point) in SENDERS.items():
            # One lane: the crash points count arrivals of one batch after another.
            env = {
                **crash_env(point),
                "HFED_OUTBOX__BATCH_SIZE": str(BATCH),
                "HFED_OUTBOX__LANES": "1",
            }
            pids[sender] = start_node(net, sender, env)
        fed = {sender: _feed(net, sender) for sender in SENDERS}

        for sender, (_, point) in SENDERS.items():
            assert wait_exited(pids[sender], 120), f"{sender} did not reach {point}"
            assert crashed_at(net, sender, point.partition(":")[0]), f"{sender}: other death"

        # The crash left each sender with a delivered batch and two pending
        # ones (on SQLite a claim lives in the sender's memory, so nothing is
        # leased): the claimed batch is one hotline-nl does not hold (before
        # send) or already holds (after reply).
        before_send, after_reply = _states(net, "hotline-dk"), _states(net, "hotline-de")
        for states in (before_send, after_reply):
            assert len(states.get((OutboxState.DELIVERED, False), [])) == BATCH, states.keys()
            assert len(states.get((OutboxState.PENDING, False), [])) == 2 * BATCH, states.keys()
            assert (OutboxState.PENDING, True) not in states
        assert _held_by_receiver(net, before_send[OutboxState.PENDING, False]) == 0
        assert _held_by_receiver(net, after_reply[OutboxState.PENDING, False]) == BATCH

        restarted = time.monotonic()
        for sender in SENDERS:
            start_node(net, sender)
        for sender, (feeder, _, thread) in fed.items():
            thread.join(feeder.batch_timeout)
            assert not thread.is_alive(), f"feeding {sender} never got its receipts"
        drained = wait_until(
            lambda: all(pending_outbox(net, s) == 0 for s in SENDERS), DRAIN_TIMEOUT, 1.0
        )
        print(f"\noutboxes drained {time.monotonic() - restarted:.0f}s after the restart")
        assert drained, {s: pending_outbox(net, s) for s in SENDERS}

        stored = stored_receipts(net, RECEIVER)
        expected = [i for _, ids, _ in fed.values() for i in ids]
        check = set_check(
            expected,
            id_counts(net, RECEIVER, "inbound_items", "item_id"),
            id_counts(net, RECEIVER, "case_reports", "report_id"),
        )
        print(check.summary())
        assert check.ok, check.summary()
        roster = net.bootstrap_roster().roster
        for sender, (feeder, ids, _) in fed.items():
            # The feeder holds the sender's FORWARDED receipt for every item.
            assert feeder.receipts.keys() == set(ids), f"feeding {sender} lost receipts"
            for item_id in ids:
                receipt = verify_receipt(net, receipt_envelope(feeder.receipts[item_id]), roster)
                assert outcome_name(receipt) == "OUTCOME_FORWARDED"
            # Every outbox item is retired with the receipt hotline-nl stored.
            rows = outbox_rows(net, sender)
            assert sorted(r.item_id for r in rows) == sorted(ids)
            for row in rows:
                assert row.state is OutboxState.DELIVERED, (sender, row)
                assert row.receipt == stored[row.item_id], f"{sender}: receipt differs"
                assert not row.leased


#: Well below the lease (90 s) and well above the time a restarted node needs
#: to resend ten items once nothing holds them.
PROMPT_RESEND = 15.0


@pytest.mark.timeout(180)
def test_restarted_sender_resends_a_dead_claim_promptly(tmp_path: Path) -> None:
    """Kill -9 a sender (SQLite) between claiming a batch of 10 and sending it, then
    restart it: expect the batch resent at once (no claim of the dead process
    survives) and stored once at the peer, nothing lost."""
    sender, origin = "hotline-dk", "hotline-de"
    with running_network(tmp_path / "net", small_members(RECEIVER, sender)) as net:
        processes.down(net.directory, only=[sender])
        pid = start_node(net, sender, crash_env(faultpoints.OUTBOX_BEFORE_SEND))
        key = net.signing_key(origin)
        reports = [make_report(origin, "NL") for _ in range(10)]
        feeder = RetryingSender(net, origin, sender, batch_timeout=60.0)
        thread = threading.Thread(
            target=feeder.send,
            args=(0, [item(sign_report(r, key)) for r in reports], [r.report_id for r in reports]),
            daemon=True,
        )
        thread.start()
        assert wait_exited(pid, 60), "the sender never reached its crash point"
        # The claim died with the process (SQLite claims live in memory).
        rows = outbox_rows(net, sender)
        assert rows and all(r.state is OutboxState.PENDING and not r.leased for r in rows)
        start_node(net, sender)
        thread.join(feeder.batch_timeout)
        resent = wait_until(lambda: pending_outbox(net, sender) == 0, PROMPT_RESEND, 0.5)
        assert resent, f"claimed items still pending {PROMPT_RESEND:.0f}s after the restart"
        assert _held_by_receiver(net, [r.report_id for r in reports]) == len(reports)


def _reach_script(calls: int) -> str:
    return (
        "from federation.runtime.faultpoints import reach\n"
        f"for n in range({calls}):\n"
        "    print(n + 1, flush=True)\n"
        f"    reach({faultpoints.OUTBOX_BEFORE_SEND!r})\n"
        "print('survived', flush=True)\n"
    )


def _run_reach(env: dict[str, str], calls: int = 5) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-c", _reach_script(calls)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_crash_point_kills_on_the_nth_arrival() -> None:
    """Arm outbox-before-send:3 and reach it five times: expect SIGKILL at the third
    arrival, with one line naming the point on stderr."""
    result = _run_reach(crash_env(f"{faultpoints.OUTBOX_BEFORE_SEND}:3"))
    assert result.returncode == -9, result
    assert result.stdout.split() == ["1", "2", "3"]
    assert "crash point outbox-before-send reached (arrival 3)" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {faultpoints.CRASH_ENV: faultpoints.OUTBOX_BEFORE_SEND},
        {**crash_env(faultpoints.OUTBOX_BEFORE_SEND), faultpoints.ENABLE_ENV: "0"},
        crash_env(faultpoints.OUTBOX_AFTER_REPLY),
        crash_env(f"{faultpoints.OUTBOX_BEFORE_SEND}:6"),
    ],
    ids=["not-enabled", "enabled-0", "other-point", "never-the-nth"],
)
def test_crash_point_inert_unless_armed_for_it(env: dict[str, str]) -> None:
    """Reach outbox-before-send five times without being armed for it (no enable flag,
    another point, a later arrival): expect the process to survive."""
    result = _run_reach(env)
    assert result.returncode == 0, result
    assert result.stdout.split()[-1] == "survived"


@pytest.mark.parametrize(
    "spec", ["outbox-befor-send", "outbox-before-send:0", "outbox-before-send:y"]
)
def test_crash_point_typo_is_refused(spec: str) -> None:
    """Arm a misspelt point or a bad count: expect reach to raise ValueError rather
    than silently never crash."""
    result = _run_reach(crash_env(spec), calls=1)
    assert result.returncode == 1, result
    assert "ValueError" in result.stderr
