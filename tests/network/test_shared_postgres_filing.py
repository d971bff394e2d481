"""Two node processes of one member on one PostgreSQL database see each
other's filings: a PDQ hash filed through one process links a near hash
filed through the other within the follow interval, and a liaison stream
served by one process sends the other's new case (within the follow interval
when the follower rings the stream's bell; the stream's own idle re-read, once
a second, is the fallback, so that part is no regression test of the bell).

Each process keeps its own in-memory PDQ index and wakes its own liaison
streams; the filing follower (cases/follower.py, every
``scale_out.follow_seconds``, 0.5 s by default) closes both gaps. Without it
process B's index holds only what was stored when B started.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.devnet import processes
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from hfp.v1 import receipt_pb2, report_pb2
from tests.support.net import DEADLINE, Network, create_network, small_members, stop
from tests.support.postgres import PostgresCluster
from tests.support.shared_postgres import (
    running_pair,
    second_process,
    share_database,
    upgrade,
)

DK, POLICE = "hotline-dk", "police-dk"
#: The default follow interval and the slack a loaded machine needs beside it.
FOLLOW_BOUND = 0.5 + 2.0

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def pair(tmp_path: Path, postgres: PostgresCluster) -> Iterator[tuple[Network, Network]]:
    with running_pair(tmp_path / "net", postgres, DK) as both:
        yield both


def _pdq() -> bytes:
    return os.urandom(32)


def _near(pdq: bytes, bits: int) -> bytes:
    value = int.from_bytes(pdq, "big")
    for bit in range(bits):
        value ^= 1 << (bit * 7)
    return value.to_bytes(32, "big")


def _submit(net: Network, pdq: bytes) -> receipt_pb2.Receipt:
    report = report_pb2.Report(
        url=f"https://pdq-{os.urandom(4).hex()}.example.com/",
        hosting_country="DK",
        hashes=[report_pb2.ContentHash(algorithm=report_pb2.HASH_ALGORITHM_PDQ, value=pdq)],
    )
    with net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        return stub.SubmitReport(hpb.SubmitReportRequest(report=report), timeout=DEADLINE).receipt


def _known_content(net: Network, case_id: str) -> list[str]:
    with net.channel(DK, DK) as channel:
        stub = hgrpc.HotlineServiceStub(channel)
        case = stub.GetCase(hpb.GetCaseRequest(case_id=case_id), timeout=DEADLINE).case
    return list(case.known_content_case_ids)


def test_a_pdq_hash_filed_at_one_process_links_a_near_one_filed_at_the_other(
    pair: tuple[Network, Network],
) -> None:
    via_a, via_b = pair
    first = _submit(via_a, original := _pdq())
    time.sleep(FOLLOW_BOUND)
    second = _submit(via_b, _near(original, 10))  # 10 bits apart: within 31
    assert first.case_id != second.case_id
    assert first.case_id in _known_content(via_b, second.case_id)


def test_a_stream_at_one_process_sends_the_other_process_s_new_case(
    pair: tuple[Network, Network],
) -> None:
    via_a, via_b = pair
    arrived: dict[str, float] = {}
    ready = threading.Event()

    def watch() -> None:
        with via_b.channel(POLICE, DK) as channel:
            stream = lgrpc.LiaisonServiceStub(channel).WatchReferrals(
                lpb.WatchReferralsRequest(), timeout=30
            )
            ready.set()
            for response in stream:
                arrived[response.event.case_id] = time.monotonic()
                if len(arrived) >= 1:
                    stream.cancel()
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)
    time.sleep(0.5)  # the stream is open and idle at process B
    sent = time.monotonic()
    receipt = _submit(via_a, _pdq())
    watcher.join(timeout=20)
    assert receipt.case_id in arrived, "process B's stream never sent A's case"
    assert arrived[receipt.case_id] - sent < FOLLOW_BOUND + 1.0


def _calls_served(metrics_endpoint: str) -> float:
    """hfed_rpc_calls_total of GetOperations at one process (its own metrics port)."""
    with urllib.request.urlopen(f"http://{metrics_endpoint}/metrics", timeout=DEADLINE) as page:
        text = page.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hfed_rpc_calls_total{") and "GetOperations" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_with_reuse_port_both_processes_serve_one_address(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    network = create_network(tmp_path / "net", small_members(DK))
    url = postgres.create_database("reuse")
    shared = share_database(network, DK, url)
    home = network.directory / "members" / DK
    endpoint = network.member(DK).endpoint
    for config in (home / "node.toml", shared.second_config):
        text = config.read_text().replace(
            f'listen = "{shared.second_endpoint}"', f'listen = "{endpoint}"'
        )
        config.write_text(text + "\n[scale_out]\nreuse_port = true\n")
    metrics = [network.member(DK).metrics, _metrics_of(shared.second_config)]
    try:
        upgrade(network, DK)
        with second_process(shared) as process_b:
            time.sleep(1.0)  # B binds first; A must still be able to bind the same port
            # B already answers health checks on the shared port, so `up` returns
            # at once: wait for A's own metrics port to know A serves too.
            processes.up(network.directory, only=[DK])
            _wait_metrics(metrics[0])
            assert process_b.poll() is None, shared.second_log.read_text()[-2000:]
            for _ in range(40):  # a new connection each time: the kernel picks a process
                with network.channel(DK, DK) as channel:
                    hgrpc.HotlineServiceStub(channel).GetOperations(
                        hpb.GetOperationsRequest(), timeout=DEADLINE
                    )
            served = [_calls_served(m) for m in metrics]
            assert sum(served) == 40 and all(n > 0 for n in served), served
    finally:
        stop(network.directory)
        postgres.drop_database(url)


def _wait_metrics(endpoint: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _calls_served(endpoint)
            return
        except OSError:
            assert time.monotonic() < deadline, f"no metrics at {endpoint}"
            time.sleep(0.2)


def _metrics_of(config: Path) -> str:
    """The metrics address a node configuration names (its second `listen`)."""
    listens = [line for line in config.read_text().splitlines() if line.startswith("listen =")]
    return listens[1].split('"')[1]
