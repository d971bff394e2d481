"""A peer refusing for load with a pushback: the outbox waits at least that long.

hotline-nl's node allows hotline-dk one call every two seconds (calls_per_second
0.5, burst 1), so most of hotline-dk's Deliver calls are refused with
RESOURCE_EXHAUSTED, a RetryInfo and a ``grpc-retry-pushback-ms`` trailer.
hotline-dk's outbox (one lane, batches of 5, backoff base 0.1 s, far shorter than
the pushback) must not call again before the pushback has passed, must keep its
connection, and still delivers every item exactly once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from federation.devnet import processes
from tests.support import crashes, hostile
from tests.support import net as netlib

SENDER, RECEIVER, ORIGIN = "hotline-dk", "hotline-nl", "hotline-de"
ITEMS = 30
STINGY = {"HFED_ADMISSION__CALLS_PER_SECOND": "0.5", "HFED_ADMISSION__BURST": "1"}
HASTY = {
    "HFED_OUTBOX__BATCH_SIZE": "5",
    "HFED_OUTBOX__LANES": "1",
    "HFED_OUTBOX__BACKOFF_BASE_SECONDS": "0.1",
    "HFED_OUTBOX__BACKOFF_CAP_SECONDS": "0.2",
}
#: The refusal is logged just after the next attempt was scheduled (one write).
SLACK = timedelta(milliseconds=100)


@pytest.fixture
def pnet(tmp_path: Path) -> Iterator[netlib.Network]:
    """hotline-dk (hasty sender) and hotline-nl (stingy receiver)."""
    with netlib.running_network(
        tmp_path / "net", netlib.small_members(SENDER, RECEIVER)
    ) as network:
        processes.down(network.directory, only=[SENDER, RECEIVER])
        crashes.start_node(network, RECEIVER, STINGY)
        crashes.start_node(network, SENDER, HASTY)
        yield network


def _outbox_events(net: netlib.Network) -> list[dict[str, object]]:
    events = []
    for line in crashes.log_text(net, SENDER).splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("delivery to peer failed", "delivered to peer"):
                events.append(event)
    return events


def _at(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["timestamp"]))


@pytest.mark.timeout(300)
def test_outbox_waits_out_the_pushback_of_a_refusing_peer(pnet: netlib.Network) -> None:
    """Hand hotline-dk 30 reports for a peer that admits one call per 2 s: expect
    every refusal to carry a pushback, the next call no sooner than that, and
    every report delivered exactly once."""
    key = pnet.signing_key(ORIGIN)
    reports = [netlib.make_report(ORIGIN, "NL") for _ in range(ITEMS)]
    receipts = hostile.deliver_many(
        pnet, ORIGIN, SENDER, [netlib.item(netlib.sign_report(r, key)) for r in reports]
    )
    assert all(netlib.outcome_name(r) == "OUTCOME_FORWARDED" for r in receipts)
    assert crashes.wait_until(lambda: crashes.pending_outbox(pnet, SENDER) == 0, 120.0, 0.5)
    ids = [r.report_id for r in reports]
    check = crashes.set_check(ids, crashes.id_counts(pnet, RECEIVER, "inbound_items", "item_id"))
    assert check.ok, check.summary()

    events = _outbox_events(pnet)
    refusals = [e for e in events if "RESOURCE_EXHAUSTED" in str(e.get("error", ""))]
    print(f"\n{len(refusals)} refusals, {len(events) - len(refusals)} other outbox events")
    assert refusals, "the receiver never refused: the test proves nothing"
    assert all(isinstance(e.get("pushback_ms"), int) and e["pushback_ms"] > 0 for e in refusals)
    for earlier, later in itertools.pairwise(events):
        if earlier in refusals:
            waited = _at(later) - _at(earlier)
            asked = timedelta(milliseconds=int(str(earlier["pushback_ms"])))
            assert waited >= asked - SLACK, f"called again after {waited}, asked {asked}"
    # Honouring the pushback, almost every retry is admitted: no refusal storm.
    assert len(refusals) <= 2 * (ITEMS // 5) + 2
