"""Back up a running receiver, lose it to kill -9, restore the backup, redeliver.

hotline-de (this test) keeps handing reports for NL to hotline-dk's node, whose
outbox forwards them to hotline-nl's node. While they flow, hotline-nl is backed
up with ``hfed db backup`` (its node running), keeps receiving, is killed -9,
and is restored from the backup with ``hfed db restore`` (refused while the node
still answered). The reports filed after the backup are gone from hotline-nl, but
hotline-dk's outbox still holds them (as delivered, with receipts): hotline-dk's
operator runs ``hfed outbox redeliver --to hotline-nl --since T`` and the outbox
sends them again. At the end every report is filed exactly once at hotline-nl
(set check: lost = 0, duplicated = 0), and every outbox row at hotline-dk holds
the receipt hotline-nl stored for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from federation.cli.main import cli
from federation.runtime.clock import utc_now
from federation.store.backup import in_use
from federation.store.outbox import OutboxState
from tests.support import crashes, hostile
from tests.support import net as netlib

SENDER, RECEIVER, ORIGIN = "hotline-dk", "hotline-nl", "hotline-de"
BATCH = 50
#: Reports the receiver must have filed before the backup, and after it before the kill.
BEFORE, AFTER = 300, 300
TIMEOUT = 180.0


@pytest.fixture
def bnet(tmp_path: Path) -> Iterator[netlib.Network]:
    """hotline-dk (forwarding) and hotline-nl (responsible for NL), both running."""
    with netlib.running_network(
        tmp_path / "net", netlib.small_members(SENDER, RECEIVER)
    ) as network:
        yield network


class Feeder:
    """Hands hotline-dk batches of NL reports (as hotline-de) until stopped."""

    def __init__(self, net: netlib.Network) -> None:
        self.net = net
        self.sent: list[str] = []
        self.failures: list[BaseException] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def _run(self) -> None:
        key = self.net.signing_key(ORIGIN)
        try:
            while not self.stopping.is_set():
                reports = [netlib.make_report(ORIGIN, "NL") for _ in range(BATCH)]
                items = [netlib.item(netlib.sign_report(r, key)) for r in reports]
                receipts = hostile.deliver_many(self.net, ORIGIN, SENDER, items)
                assert all(netlib.outcome_name(r) == "OUTCOME_FORWARDED" for r in receipts)
                self.sent.extend(r.report_id for r in reports)
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test thread
            self.failures.append(exc)

    def stop(self) -> list[str]:
        """Stop feeding; every report id handed over."""
        self.stopping.set()
        self.thread.join(60.0)
        assert not self.thread.is_alive(), "the feeder did not stop"
        assert not self.failures, self.failures
        return self.sent


def hfed(*args: str) -> Result:
    """Run an ``hfed`` command in this process."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def filed(net: netlib.Network) -> int:
    """Reports filed at the receiver so far."""
    return crashes.scalar(net, RECEIVER, "SELECT COUNT(*) FROM case_reports")


def config(net: netlib.Network, member_id: str) -> str:
    """The node's configuration file."""
    return str(net.path(net.member(member_id).config))


def _backup_while_running(net: netlib.Network, out: Path) -> None:
    assert crashes.wait_until(lambda: filed(net) >= BEFORE, TIMEOUT, 0.2)
    result = hfed("db", "backup", "--config", config(net, RECEIVER), str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file()
    # Restoring over a node that still runs is refused and changes nothing.
    refused = hfed("db", "restore", "--config", config(net, RECEIVER), str(out))
    assert refused.exit_code != 0 and "stop the node first" in refused.output


def _restore_after_kill(net: netlib.Network, out: Path) -> int:
    crashes.kill9(net, RECEIVER)
    # The killed process is reaped thread by thread: its leader can look gone
    # while the last threads still hold its files (and SQLite's lock).
    assert crashes.wait_until(lambda: not in_use(net.db_path(RECEIVER)), 15.0, 0.05)
    had = filed(net)
    result = hfed("db", "restore", "--config", config(net, RECEIVER), str(out))
    assert result.exit_code == 0, result.output
    assert "outbox redeliver" in result.output
    assert list(net.db_path(RECEIVER).parent.glob("node.db.replaced-*")), "nothing kept aside"
    lost = had - filed(net)
    assert lost > 0, "the restore lost nothing: the backup was taken too late"
    crashes.start_node(net, RECEIVER)
    return lost


@pytest.mark.timeout(600)
def test_restored_receiver_gets_back_what_it_lost_exactly_once(
    bnet: netlib.Network, tmp_path: Path
) -> None:
    """Back up hotline-nl while reports flow to it, keep sending, kill it -9, restore
    the backup and restart it, and have hotline-dk redeliver since the backup: expect
    every report filed exactly once at hotline-nl (lost = 0, duplicated = 0)."""
    out = tmp_path / "nl-backup.db"
    feeder = Feeder(bnet)
    feeder.thread.start()
    backed_up_at = utc_now()
    _backup_while_running(bnet, out)
    at_backup = filed(bnet)
    assert crashes.wait_until(lambda: filed(bnet) >= at_backup + AFTER, TIMEOUT, 0.2)
    lost = _restore_after_kill(bnet, out)
    since = (backed_up_at - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    result = hfed(
        "outbox", "redeliver", "--config", config(bnet, SENDER), "--to", RECEIVER, "--since", since
    )
    assert result.exit_code == 0, result.output
    time.sleep(1.0)  # reports keep flowing to the restarted node
    sent = feeder.stop()

    assert crashes.wait_until(lambda: crashes.pending_outbox(bnet, SENDER) == 0, TIMEOUT, 0.5)
    check = crashes.set_check(
        sent,
        crashes.id_counts(bnet, RECEIVER, "inbound_items", "item_id"),
        crashes.id_counts(bnet, RECEIVER, "case_reports", "report_id"),
    )
    print(f"\nlost by the restore: {lost}; {result.output.strip()}; {check.summary()}")
    assert check.ok, check.summary()
    assert crashes.integrity_ok(bnet, RECEIVER)
    stored = crashes.stored_receipts(bnet, RECEIVER)
    rows = crashes.outbox_rows(bnet, SENDER)
    assert sorted(r.item_id for r in rows) == sorted(sent)
    assert all(r.state is OutboxState.DELIVERED and r.receipt == stored[r.item_id] for r in rows)
