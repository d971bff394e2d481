"""A peer's Deliver latency while a police liaison floods the node (issue 16, finding 5).

    python -m bench.liaison_flood [--work DIR] [--seconds S]

Starts hotline-nl and hotline-dk (real node processes, as ``hfed devnet up``
starts them, default settings), files 500 NL cases at hotline-nl, then
measures how long hotline-dk's ``Deliver`` of a small batch to hotline-nl
takes, one call after another:

  idle       nothing else runs
  watch      while police-nl opens 2,000 ``WatchReferrals`` streams at once
             (all but two are refused by admission), cancels them and opens
             2,000 more, for S seconds
  refused    while police-nl calls ``ListReferrals`` in a tight loop from
             several threads, far above its rate (nearly all refused), for
             S seconds
  heavy      while police-nl runs 8 ``ListReferrals`` of 500 cases at a time,
             4 rounds

The probe runs alone in this process; each flood runs in a process of its
own (started with ``spawn``), so the probe's figures are the node's latency,
not the flood client's threads competing with the probe for one interpreter.
A control probe (hotline-de delivering to hotline-dk, a node nobody floods)
runs beside it: on a small shared machine the flood client's own CPU slows
every process, and the control shows how much of a ratio that is rather
than the flooded node. Everything talks to 127.0.0.1.

Prints p50 / p95 of each phase, the ratio of each p95 to the idle p95, and
the control's ratio. The figures are printed, never asserted: they depend
on the machine and on what else runs on it. The target (spec section 10.6)
is that a flood leaves a peer within twice its idle p95.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from multiprocessing.connection import Connection
from pathlib import Path

import grpc

from bench import netctl
from bench.netctl import DE, DK, NL, POLICE_NL, BenchNet
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
#: Batches signed before a probe starts (more than a phase needs).
PROBE_CALLS = 1000
#: Cases filed before measuring, so that a page of 500 referrals is full.
CASES = 500
WATCH_CALLS = 2000
FLOOD_THREADS = 6
HEAVY_CALLS = 8
HEAVY_ROUNDS = 4
DEADLINE = 60.0
#: How long the flood process may take to start (imports, TLS handshake).
START_TIMEOUT = 60.0
#: Probe samples kept after a flood ends: the node may still be working off
#: what the flood left (cancelled streams, audit batch).
TAIL = 0.5


def _batch(net: BenchNet, sender: str, hosting: str, count: int) -> fed_pb.DeliverRequest:
    key = net.signing_key(sender)
    items = []
    for _ in range(count):
        report = synthetic_report(sender, hosting)
        envelope = sign_envelope(key, sender, REPORT_TYPE, encode_report(report))
        items.append(fed_pb.ForwardedItem(envelope=envelope_to_proto(envelope)))
    return fed_pb.DeliverRequest(items=items)


def seed(net: BenchNet) -> None:
    """File CASES NL cases at hotline-nl."""
    with net.channel(DK, NL) as channel:
        stub = fed_grpc.FederationServiceStub(channel)
        for start in range(0, CASES, 250):
            stub.Deliver(_batch(net, DK, "NL", min(250, CASES - start)), timeout=DEADLINE)


class Probe:
    """``sender`` delivering small batches to ``target``, one after another, timed."""

    def __init__(self, net: BenchNet, sender: str, target: str, hosting: str) -> None:
        self._net = net
        self._route = (sender, target, hosting)
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self, until: Callable[[], bool]) -> None:
        """Deliver and time batches until ``until()`` is true (or stop())."""
        sender, target, hosting = self._route
        requests = [_batch(self._net, sender, hosting, PROBE_ITEMS) for _ in range(PROBE_CALLS)]
        with self._net.channel(sender, target) as channel:
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


class Probes:
    """The measured probe (hotline-dk to the flooded hotline-nl) and the control
    (hotline-de to hotline-dk, a node nobody floods), each on a thread."""

    def __init__(self, net: BenchNet) -> None:
        self.node = Probe(net, DK, NL, "NL")
        self.control = Probe(net, DE, DK, "DK")
        self._threads = [
            threading.Thread(target=p.run, args=(lambda: False,), daemon=True)
            for p in (self.node, self.control)
        ]

    def start(self) -> None:
        """Start both probes."""
        for thread in self._threads:
            thread.start()

    def clear(self) -> None:
        """Forget the samples taken so far."""
        self.node.latencies.clear()
        self.control.latencies.clear()

    def samples(self) -> Samples:
        """(node, control) latencies so far."""
        return list(self.node.latencies), list(self.control.latencies)

    def stop(self) -> None:
        """Stop both probes and wait for them."""
        self.node.stop()
        self.control.stop()
        for thread in self._threads:
            thread.join(timeout=DEADLINE)


#: Latencies of the probe at the flooded node and of the control.
Samples = tuple[list[float], list[float]]


def idle(net: BenchNet, seconds: float) -> Samples:
    """Probe latencies with nothing else running."""
    probes = Probes(net)
    probes.start()
    time.sleep(seconds)
    probes.stop()
    return probes.samples()


def during_flood(net: BenchNet, phase: str, seconds: float) -> tuple[Samples, str]:
    """Probe latencies while a flood process runs ``phase``; and the flood's note.

    The flood runs in a process of its own, started with ``spawn`` (never
    fork: grpc is loaded here), so that its threads never compete with the
    probes for this interpreter. Only the samples taken between the flood's
    start and its end (plus TAIL seconds, for the node's work still under
    way) are kept: the child's start-up (imports, TLS handshake) is not the
    flood.
    """
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    flood = spawn.Process(
        target=flood_entry, args=(phase, net, seconds, theirs), name=f"flood-{phase}"
    )
    probes = Probes(net)
    probes.start()
    flood.start()
    try:
        _expect(ours, "ready", START_TIMEOUT)
        probes.clear()
        ours.send("go")
        note = _expect(ours, None, seconds + DEADLINE)
        time.sleep(TAIL)
        samples = probes.samples()
    finally:
        probes.stop()
        flood.join(timeout=DEADLINE)
        if flood.is_alive():
            flood.kill()
            flood.join(timeout=5)
    return samples, note


def _expect(conn: Connection, wanted: str | None, timeout: float) -> str:
    """The flood process's next message (``wanted`` exactly, when given)."""
    if not conn.poll(timeout):
        raise RuntimeError(f"the flood process said nothing within {timeout:.0f} s")
    message = conn.recv()
    if not isinstance(message, str) or message.startswith("error:"):
        raise RuntimeError(f"the flood process failed: {message}")
    if wanted is not None and message != wanted:
        raise RuntimeError(f"the flood process said {message!r}, not {wanted!r}")
    return message


def flood_entry(phase: str, net: BenchNet, seconds: float, conn: Connection) -> None:
    """The flood process: say ready, wait for go, run ``phase``, send its note."""
    try:
        floods: dict[str, Callable[[BenchNet, float, Callable[[], None]], str]] = {
            "watch": watch_flood,
            "refused": refused_flood,
            "heavy": heavy_reads,
        }
        flood = floods[phase]

        def ready() -> None:
            conn.send("ready")
            if not conn.poll(START_TIMEOUT) or conn.recv() != "go":
                raise RuntimeError("no go from the probe")

        conn.send(flood(net, seconds, ready))
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(f"error: {type(exc).__name__}: {exc}")
    finally:
        conn.close()


def watch_flood(net: BenchNet, seconds: float, ready: Callable[[], None]) -> str:
    """police-nl opens WATCH_CALLS streams at once, cancels them, again until ``seconds``."""
    codes: dict[str, int] = {}
    waves = 0
    with net.channel(POLICE_NL, NL) as channel, futures.ThreadPoolExecutor(8) as pool:
        stub = lgrpc.LiaisonServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=DEADLINE)
        ready()
        end = time.monotonic() + seconds
        while waves == 0 or time.monotonic() < end:
            calls = [
                stub.WatchReferrals(lpb.WatchReferralsRequest(), timeout=DEADLINE)
                for _ in range(WATCH_CALLS)
            ]
            outcomes = list(pool.map(_first_answer, calls))
            for call in calls:
                call.cancel()  # type: ignore[no-untyped-call]
            for code in outcomes:
                codes[code] = codes.get(code, 0) + 1
            waves += 1
    counts = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
    return f"{waves} waves of {WATCH_CALLS}: {counts}"


def _first_answer(call: Iterator[lpb.WatchReferralsResponse]) -> str:
    try:
        next(call)
        return "OK"
    except grpc.RpcError as exc:
        return exc.code().name


def refused_flood(net: BenchNet, seconds: float, ready: Callable[[], None]) -> str:
    """police-nl calls ListReferrals from FLOOD_THREADS threads, far above its rate."""
    counts = {"OK": 0, "refused": 0, "other": 0}
    lock = threading.Lock()
    go = threading.Event()
    end = [0.0]

    def flood(stub: lgrpc.LiaisonServiceStub) -> None:
        go.wait(START_TIMEOUT)
        while time.monotonic() < end[0]:
            try:
                stub.ListReferrals(lpb.ListReferralsRequest(page_size=1), timeout=DEADLINE)
                key = "OK"
            except grpc.RpcError as exc:
                key = "refused" if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED else "other"
            with lock:
                counts[key] += 1

    with net.channel(POLICE_NL, NL) as channel:
        grpc.channel_ready_future(channel).result(timeout=DEADLINE)
        stub = lgrpc.LiaisonServiceStub(channel)
        threads = [
            threading.Thread(target=flood, args=(stub,), daemon=True) for _ in range(FLOOD_THREADS)
        ]
        for thread in threads:
            thread.start()
        ready()
        end[0] = time.monotonic() + seconds
        go.set()
        for thread in threads:
            thread.join(timeout=seconds + DEADLINE)
    rate = sum(counts.values()) / seconds
    return ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; {rate:.0f} calls/s"


def heavy_reads(net: BenchNet, seconds: float, ready: Callable[[], None]) -> str:
    """police-nl runs HEAVY_CALLS ListReferrals of 500 at a time, HEAVY_ROUNDS times."""
    del seconds  # the rounds, not a duration, bound this phase
    codes: dict[str, int] = {}
    with net.channel(POLICE_NL, NL) as channel:
        grpc.channel_ready_future(channel).result(timeout=DEADLINE)
        stub = lgrpc.LiaisonServiceStub(channel)
        ready()
        for _ in range(HEAVY_ROUNDS):
            calls = [
                stub.ListReferrals.future(lpb.ListReferralsRequest(page_size=500), timeout=DEADLINE)
                for _ in range(HEAVY_CALLS)
            ]
            for call in calls:
                error = call.exception()
                code = "OK" if error is None else error.code().name  # type: ignore[attr-defined]
                codes[code] = codes.get(code, 0) + 1
            time.sleep(1.0)  # the liaison's rate (50/s, bursts of 100) is never the limit
    return ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))


def _cuts(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) in ms."""
    return statistics.median(samples) * 1000, statistics.quantiles(samples, n=100)[94] * 1000


def _row(name: str, samples: Samples, base: Samples | None, note: str = "") -> str:
    node, control = samples
    if len(node) < 2 or len(control) < 2:
        return f"{name:8} too few samples ({len(node)}, {len(control)}) {note}"
    p50, p95 = _cuts(node)
    _, control_p95 = _cuts(control)
    line = f"{name:8} n={len(node):4}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
    if base is not None:
        base_p95, base_control = _cuts(base[0])[1], _cuts(base[1])[1]
        line += f"  {p95 / base_p95:5.2f}x idle  control {control_p95 / base_control:5.2f}x"
    else:
        line += f"  control p95 {control_p95:6.1f} ms"
    return line + (f"  ({note})" if note else "")


def main(argv: list[str] | None = None) -> int:
    """Start the nodes, measure, print the figures."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.liaison_flood",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="length of the idle, watch and refused phases"
    )
    args = parser.parse_args(argv)
    if not 1.0 <= args.seconds <= 60.0:
        parser.error("--seconds must be between 1 and 60")
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        net = netctl.create(Path(scratch) / "net")
        try:
            netctl.start(net, [NL, DK])
            say("hotline-nl and hotline-dk serving; filing cases")
            seed(net)
            say("idle")
            base = idle(net, args.seconds)
            lines = [_row("idle", base, None)]
            for phase, title in PHASES:
                say(title)
                samples, note = during_flood(net, phase, args.seconds)
                lines.append(_row(phase, samples, base, note))
        finally:
            netctl.stop_all()
    print("\n".join(lines))
    return 0


#: The flood phases, in order, with their progress line.
PHASES = (
    ("watch", f"{WATCH_CALLS:,} WatchReferrals at once, in waves"),
    ("refused", "refused ListReferrals flood"),
    ("heavy", f"{HEAVY_CALLS} ListReferrals of 500 at a time"),
)


if __name__ == "__main__":
    sys.exit(main())
