"""A peer's Deliver latency while a police liaison floods the node (issue 16, finding 5).

    python -m bench.liaison_flood [--work DIR] [--seconds S]

Starts hotline-nl (a real node process, as ``hfed devnet up`` starts it,
default settings), files 500 NL cases, then measures how long hotline-dk's
``Deliver`` of a small batch takes, one call after another:

  idle       nothing else runs
  watch      while police-nl opens 2,000 ``WatchReferrals`` streams at once
             (all but two are refused by admission)
  refused    while police-nl calls ``ListReferrals`` in a tight loop from
             several threads, far above its rate (nearly all refused)
  heavy      while police-nl runs 8 ``ListReferrals`` of 500 cases at a time

and prints p50 / p95 of each and the ratio of each p95 to the idle p95. The
figures are printed, never asserted: they depend on the machine. The target
(spec section 10.6) is that a flood leaves a peer within twice its idle p95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc

from bench import netctl
from bench.netctl import DK, NL, POLICE_NL, BenchNet
from bench.progress import say
from crypto.dsse import sign_envelope
from federation.core.reasons import REPORT_TYPE
from federation.devnet.smoke import synthetic_report
from federation.wire.convert import encode_report, envelope_to_proto
from hfp.v1 import federation_service_pb2 as fed_pb
from hfp.v1 import federation_service_pb2_grpc as fed_grpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc

#: Items in each measured Deliver (a small batch, as a peer's outbox sends
#: when traffic is light).
PROBE_ITEMS = 5
#: Pause between two measured Deliver calls: well inside the sender's rate
#: limit (50 calls/s), so that the probe itself is never refused.
PROBE_PAUSE = 0.05
#: Cases filed before measuring, so that a page of 500 referrals is full.
CASES = 500
WATCH_CALLS = 2000
FLOOD_THREADS = 6
HEAVY_CALLS = 8
DEADLINE = 60.0


def _batch(net: BenchNet, count: int) -> fed_pb.DeliverRequest:
    key = net.signing_key(DK)
    items = []
    for _ in range(count):
        report = synthetic_report(DK, "NL")
        envelope = sign_envelope(key, DK, REPORT_TYPE, encode_report(report))
        items.append(fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope)))
    return fed_pb.DeliverRequest(items=items)


def seed(net: BenchNet) -> None:
    """File CASES NL cases at hotline-nl."""
    with net.channel(DK, NL) as channel:
        stub = fed_grpc.FederationServiceStub(channel)
        for start in range(0, CASES, 250):
            stub.Deliver(_batch(net, min(250, CASES - start)), timeout=DEADLINE)


class Probe:
    """hotline-dk delivering small batches to hotline-nl, one after another, timed."""

    def __init__(self, net: BenchNet) -> None:
        self._net = net
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self, until: Callable[[], bool]) -> None:
        """Deliver and time batches until ``until()`` is true (or stop())."""
        requests = [_batch(self._net, PROBE_ITEMS) for _ in range(400)]
        with self._net.channel(DK, NL) as channel:
            stub = fed_grpc.FederationServiceStub(channel)
            stub.Deliver(requests[0], timeout=DEADLINE)  # warm the channel
            for request in requests[1:]:
                if until() or self._stop.is_set():
                    return
                began = time.perf_counter()
                try:
                    stub.Deliver(request, timeout=DEADLINE)
                    self.latencies.append(time.perf_counter() - began)
                except grpc.RpcError:
                    self.failures += 1
                time.sleep(PROBE_PAUSE)

    def stop(self) -> None:
        """End run() after its current call."""
        self._stop.set()


@contextmanager
def probing(net: BenchNet) -> Iterator[Probe]:
    """A probe running in a thread for the duration of the block."""
    probe = Probe(net)
    thread = threading.Thread(target=probe.run, args=(lambda: False,), daemon=True)
    thread.start()
    try:
        yield probe
    finally:
        probe.stop()
        thread.join(timeout=DEADLINE)


def idle(net: BenchNet, seconds: float) -> list[float]:
    """Probe latencies with nothing else running."""
    end = time.monotonic() + seconds
    probe = Probe(net)
    probe.run(lambda: time.monotonic() > end)
    return probe.latencies


def watch_flood(net: BenchNet) -> tuple[list[float], str]:
    """Probe latencies while police-nl opens WATCH_CALLS streams at once."""
    codes: dict[str, int] = {}
    with probing(net) as probe, net.channel(POLICE_NL, NL) as channel:
        time.sleep(0.5)  # a few idle-time samples are not what we measure
        probe.latencies.clear()
        stub = lgrpc.LiaisonServiceStub(channel)
        calls = [
            stub.WatchReferrals(lpb.WatchReferralsRequest(), timeout=DEADLINE)
            for _ in range(WATCH_CALLS)
        ]
        with futures.ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(_first_answer, calls))
        for call in calls:
            call.cancel()
        for code in outcomes:
            codes[code] = codes.get(code, 0) + 1
        time.sleep(0.5)
    return probe.latencies, ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))


def _first_answer(call: Iterator[lpb.WatchReferralsResponse]) -> str:
    try:
        next(call)
        return "OK"
    except grpc.RpcError as exc:
        return exc.code().name


def refused_flood(net: BenchNet, seconds: float) -> tuple[list[float], str]:
    """Probe latencies while police-nl calls ListReferrals far above its rate."""
    end = time.monotonic() + seconds
    counts = {"OK": 0, "refused": 0, "other": 0}
    lock = threading.Lock()

    def flood() -> None:
        with net.channel(POLICE_NL, NL) as channel:
            stub = lgrpc.LiaisonServiceStub(channel)
            while time.monotonic() < end:
                try:
                    stub.ListReferrals(lpb.ListReferralsRequest(page_size=1), timeout=DEADLINE)
                    key = "OK"
                except grpc.RpcError as exc:
                    key = "refused" if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED else "other"
                with lock:
                    counts[key] += 1

    with probing(net) as probe:
        threads = [threading.Thread(target=flood, daemon=True) for _ in range(FLOOD_THREADS)]
        time.sleep(0.5)
        probe.latencies.clear()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + DEADLINE)
        samples = list(probe.latencies)
    return samples, ", ".join(f"{k} {v}" for k, v in counts.items())


def heavy_reads(net: BenchNet, rounds: int) -> tuple[list[float], str]:
    """Probe latencies while police-nl runs HEAVY_CALLS ListReferrals of 500 at a time."""
    codes: dict[str, int] = {}
    with probing(net) as probe, net.channel(POLICE_NL, NL) as channel:
        time.sleep(0.5)
        probe.latencies.clear()
        stub = lgrpc.LiaisonServiceStub(channel)
        for _ in range(rounds):
            calls = [
                stub.ListReferrals.future(lpb.ListReferralsRequest(page_size=500), timeout=DEADLINE)
                for _ in range(HEAVY_CALLS)
            ]
            for call in calls:
                error = call.exception()
                code = "OK" if error is None else error.code().name  # type: ignore[attr-defined]
                codes[code] = codes.get(code, 0) + 1
            time.sleep(1.0)  # the liaison's rate (50/s, bursts of 100) is never the limit
        samples = list(probe.latencies)
    return samples, ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))


def _summary(name: str, samples: list[float], base_p95: float | None, note: str = "") -> str:
    if len(samples) < 2:
        return f"{name:8} too few samples ({len(samples)}) {note}"
    cuts = statistics.quantiles(samples, n=100)
    p50, p95 = statistics.median(samples), cuts[94]
    ratio = f"  p95/idle p95 {p95 / base_p95:5.2f}x" if base_p95 else ""
    extra = f"  ({note})" if note else ""
    return (
        f"{name:8} n={len(samples):4}  p50 {p50 * 1000:8.1f} ms  "
        f"p95 {p95 * 1000:8.1f} ms{ratio}{extra}"
    )


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94]


def main(argv: list[str] | None = None) -> int:
    """Start the node, measure, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.liaison_flood", description=__doc__)
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        net = netctl.create(Path(scratch) / "net")
        try:
            netctl.start(net, [NL])
            say("hotline-nl serving; filing cases")
            seed(net)
            say("idle")
            base = idle(net, args.seconds)
            base_p95 = _p95(base)
            lines = [_summary("idle", base, None)]
            say("2,000 WatchReferrals")
            samples, note = watch_flood(net)
            lines.append(_summary("watch", samples, base_p95, note))
            say("refused ListReferrals flood")
            samples, note = refused_flood(net, args.seconds)
            lines.append(_summary("refused", samples, base_p95, note))
            say("8 ListReferrals of 500 at a time")
            samples, note = heavy_reads(net, 4)
            lines.append(_summary("heavy", samples, base_p95, note))
        finally:
            netctl.stop_all()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
