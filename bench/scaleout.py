"""Scale-out: ingest by one and by two node processes of hotline-nl over one
PostgreSQL database.

A throwaway PostgreSQL cluster (started as the test suite starts one:
``tests.support.postgres``, initdb/pg_ctl on a free loopback port) holds
hotline-nl's database. First one process (``devnet up``) takes pre-signed
Deliver batches from hotline-dk for ``seconds``; then a second process with
the same configuration but its own ports starts, and the same client sends
half the batches to each. Printed: reports/s with one and with two
processes, and the node processes' CPU per report (PostgreSQL's own server
processes are not counted).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bench import ingest, netctl
from bench.ingest import IngestPlan
from bench.netctl import DK, NL, BenchNet
from bench.progress import say
from bench.report import Results
from bench.sender import Sent, send_batches, tally
from bench.workload import Batch
from federation.devnet import processes
from federation.devnet.create import LOOPBACK, free_ports
from peers.channel import secure_channel

# The test suite's throwaway cluster and its node.toml rewriting, reused as they are.
from tests.support.postgres import start_cluster
from tests.support.shared_postgres import (
    SharedMember,
    node_config,
    second_process,
    upgrade_config,
)

#: Reports pre-signed per second of a run and process (above what one takes in).
PER_SECOND = 4000
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Run:
    """One timed run: reports taken in per second and node CPU per report."""

    rate: float
    cpu_ms_per_report: float


def _rewrite(text: str, url: str, listen: int | None = None, metrics: int | None = None) -> str:
    return node_config(text, url, listen=listen, metrics=metrics)


@contextmanager
def _second_process(net: BenchNet, config: Path, url: str, endpoint: str) -> Iterator[int]:
    """The second hotline-nl process (the test suite's helper), once it serves."""
    shared = SharedMember(NL, url, config, endpoint, config.parent / "node-b.log")
    with second_process(shared) as process:
        entry = replace(net.entry(NL), endpoint=endpoint)
        deadline = time.monotonic() + START_TIMEOUT
        while not processes.check_health(net.directory, entry):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the second hotline-nl process did not start")
            time.sleep(0.2)
        yield process.pid


def _send(net: BenchNet, endpoint: str, batches: list[Batch], plan: IngestPlan) -> Sent:
    with secure_channel(endpoint, net.identity(DK)) as channel:
        return send_batches(channel, batches, plan.threads, plan.seconds)


def _timed(
    net: BenchNet, plan: IngestPlan, endpoints: list[str], pids: list[int], rng: random.Random
) -> Run:
    count = int(PER_SECOND * plan.seconds * len(endpoints))
    batches = ingest.presigned(net, plan, count, f"scale{len(endpoints)}", rng)
    shares = [batches[i :: len(endpoints)] for i in range(len(endpoints))]
    sent: list[Sent] = []
    before = sum(netctl.cpu_seconds(pid) for pid in pids)
    threads = [
        threading.Thread(target=lambda e=e, b=b: sent.append(_send(net, e, b, plan)))
        for e, b in zip(endpoints, shares, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = sum(netctl.cpu_seconds(pid) for pid in pids) - before
    roster = net.roster()
    taken = sum(tally(s.replies, roster).taken for s in sent)
    elapsed = max(s.elapsed for s in sent)
    say(f"scaleout: {len(endpoints)} process(es): {taken:,} reports in {elapsed:.1f}s")
    return Run(taken / elapsed, cpu * 1000 / max(1, taken))


def measure(
    results: Results, plan: IngestPlan, work: Path, rng: random.Random, seconds: float
) -> None:
    """Ingest on PostgreSQL by one, then two processes of hotline-nl."""
    plan = replace(plan, seconds=seconds)
    cluster = start_cluster()
    net = netctl.create(work / "scaleout-net")
    try:
        url = cluster.create_database("bench")
        config = net.directory / net.entry(NL).config
        generated = config.read_text()
        config.write_text(_rewrite(generated, url))
        listen, metrics = free_ports(2)
        second = config.with_name("node-b.toml")
        second.write_text(_rewrite(generated, url, listen, metrics))
        upgrade_config(config)
        netctl.start(net, [NL])
        first = net.entry(NL).endpoint
        one = _timed(net, plan, [first], [net.pid(NL)], rng)
        with _second_process(net, second, url, f"{LOOPBACK}:{listen}") as pid_b:
            two = _timed(net, plan, [first, f"{LOOPBACK}:{listen}"], [net.pid(NL), pid_b], rng)
    finally:
        netctl.stop(net, [NL])
        cluster.stop()
    results.add("pg_ingest_1_process_per_s", one.rate, "items/s")
    results.add("pg_ingest_2_processes_per_s", two.rate, "items/s")
    results.add("pg_scaleout_ratio", two.rate / one.rate if one.rate else 0.0, "x")
    results.add("pg_cpu_ms_per_report_1_process", one.cpu_ms_per_report, "ms")
    results.add("pg_cpu_ms_per_report_2_processes", two.cpu_ms_per_report, "ms")
