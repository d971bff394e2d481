"""End to end: submitted at hotline-dk, shown on police-nl's stream at hotline-nl.

hotline-dk and hotline-nl run; police-nl watches hotline-nl's
LiaisonService.WatchReferrals. Reports hosted in NL are submitted to
hotline-dk's HotlineService.SubmitReport (its own analysts' API) at a fixed
offered rate (open loop: each call is started at its scheduled instant, not
after the previous answer), so hotline-dk signs and forwards each to
hotline-nl, which files it into a new case; the case's CASE_OPENED event
reaches the stream.

Each report carries a report id chosen here (allowed by SubmitReport) and a
unique URL; a stream event carries the case with its reports, so every event
is matched to its report by report id. Latency = the instant the event
arrived at the watching client minus the instant the submission started,
both on this process's monotonic clock. The submission's instant is the one
it was scheduled for: if the client has to wait for a free slot (at most
MAX_IN_FLIGHT calls in flight), that wait is part of the latency, as it
would be for a hotline producing reports at that rate. A report not seen
before the drain timeout counts with the timeout as its latency (a lower
bound) and is reported as unseen; a submission the node refused is counted
as an error, not as a latency.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from bench import netctl
from bench.netctl import DK, NL, POLICE_NL, BenchNet
from bench.progress import say
from bench.report import Results
from federation.core.ids import new_uuid7
from hfp.v1 import hotline_service_pb2 as hpb
from hfp.v1 import hotline_service_pb2_grpc as hgrpc
from hfp.v1 import liaison_service_pb2 as lpb
from hfp.v1 import liaison_service_pb2_grpc as lgrpc
from hfp.v1 import report_pb2

TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0
#: CPU per report at each node (issue 21).
TARGET_CPU_MS = 0.5
SUBMIT_DEADLINE = 60.0
#: Submissions in flight before the scheduler waits: the node's default
#: per-member admission limit (calls_in_flight_per_member); more would be
#: refused with RESOURCE_EXHAUSTED.
MAX_IN_FLIGHT = 8
WARMUP_TIMEOUT = 60.0


def submission(tag: str, index: int) -> hpb.SubmitReportRequest:
    """A report hosted in NL with our own report id and a unique URL."""
    report = report_pb2.Report(
        report_id=new_uuid7(),
        url=f"https://e2e.example.test/{tag}/{index}/{os.urandom(6).hex()}",
        hosting_country="NL",
        hashes=[
            report_pb2.ContentHash(algorithm=report_pb2.HASH_ALGORITHM_SHA256, value=os.urandom(32))
        ],
    )
    return hpb.SubmitReportRequest(report=report)


@dataclass
class Watch:
    """Arrival instants of the awaited reports on the liaison stream."""

    wanted: set[str]
    seen: dict[str, float] = field(default_factory=dict)
    all_seen: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self, net: BenchNet, timeout: float) -> None:
        """Read the stream (thread body) until every awaited report showed or timeout."""
        try:
            with net.channel(POLICE_NL, NL) as channel:
                stream = lgrpc.LiaisonServiceStub(channel).WatchReferrals(
                    lpb.WatchReferralsRequest(cursor=""), timeout=timeout
                )
                for response in stream:
                    self._note(response, time.monotonic())
                    if self.all_seen.is_set():
                        stream.cancel()  # type: ignore[no-untyped-call]
                        break
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                self.error = exc

    def _note(self, response: lpb.WatchReferralsResponse, now: float) -> None:
        # An event carries the report that opened or joined its case (never
        # the case's whole list).
        report_id = response.event.report.report_id
        if report_id in self.wanted and report_id not in self.seen:
            self.seen[report_id] = now
        if len(self.seen) == len(self.wanted):
            self.all_seen.set()


@dataclass
class Submitted:
    """When each submission started, and which were refused or failed."""

    started: dict[str, float] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    first_error: str = ""
    offered_seconds: float = 0.0


def _describe(error: BaseException) -> str:
    """A gRPC failure as "CODE: details" (other errors as their text), one line."""
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"[:300]
    return str(error)[:300]


def submit_at_rate(
    net: BenchNet, requests: Sequence[hpb.SubmitReportRequest], rate: float
) -> Submitted:
    """Start each SubmitReport at its scheduled instant (open loop)."""
    result = Submitted()
    slots = threading.Semaphore(MAX_IN_FLIGHT)
    lock = threading.Lock()

    def done(report_id: str, future: grpc.Future[hpb.SubmitReportResponse]) -> None:
        slots.release()
        error = future.exception()
        if error is not None:
            with lock:
                result.failed.add(report_id)
                result.first_error = result.first_error or _describe(error)

    with net.channel(DK, DK) as channel:
        # Connected (and the server's stream limit known) before the first
        # scheduled call, so that no call races the HTTP/2 handshake.
        grpc.channel_ready_future(channel).result(timeout=SUBMIT_DEADLINE)
        call = hgrpc.HotlineServiceStub(channel).SubmitReport
        begin = time.monotonic()
        futures = []
        for index, request in enumerate(requests):
            scheduled = begin + index / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not slots.acquire(timeout=SUBMIT_DEADLINE):
                raise RuntimeError("no submission finished within its deadline")
            report_id = request.report.report_id
            result.started[report_id] = scheduled
            future = call.future(request, timeout=SUBMIT_DEADLINE)
            future.add_done_callback(functools.partial(done, report_id))
            futures.append(future)
        result.offered_seconds = time.monotonic() - begin
        for future in futures:
            future.exception()  # wait for every answer (each has its deadline)
    return result


def _warm_up(net: BenchNet) -> None:
    """One report through the whole path, so that channels and the stream are up."""
    request = submission("warm", 0)
    watch = Watch({request.report.report_id})
    thread = threading.Thread(target=watch.run, args=(net, WARMUP_TIMEOUT), daemon=True)
    thread.start()
    with net.channel(DK, DK) as channel:
        hgrpc.HotlineServiceStub(channel).SubmitReport(request, timeout=SUBMIT_DEADLINE)
    if not watch.all_seen.wait(WARMUP_TIMEOUT):
        raise RuntimeError("the warm-up report never reached police-nl's stream")
    thread.join(timeout=10)


def measure(results: Results, net: BenchNet, rate: float, seconds: float, drain: float) -> None:
    """Submit ``rate`` reports/s for ``seconds``; latency to the liaison stream."""
    _warm_up(net)
    requests = [submission("run", i) for i in range(int(rate * seconds))]
    watch = Watch({r.report.report_id for r in requests})
    thread = threading.Thread(target=watch.run, args=(net, seconds + drain + 30), daemon=True)
    thread.start()
    say(f"e2e: offering {rate:.0f} reports/s for {seconds:.0f}s at {DK}")
    cpu_before = {m: netctl.cpu_seconds(net.pid(m)) for m in (DK, NL)}
    submitted = submit_at_rate(net, requests, rate)
    if len(submitted.failed) == len(requests):
        raise RuntimeError(f"every submission failed, e.g. {submitted.first_error}")
    watch.wanted -= submitted.failed  # refused at hotline-dk: never on the stream
    if len(watch.seen) == len(watch.wanted):
        watch.all_seen.set()
    watch.all_seen.wait(drain)
    thread.join(timeout=5)
    cpu = {m: netctl.cpu_seconds(net.pid(m)) - cpu_before[m] for m in (DK, NL)}
    if watch.error is not None:
        raise RuntimeError(f"the liaison stream failed: {watch.error}")
    latencies = [
        (watch.seen.get(report_id, start + drain) - start) * 1000
        for report_id, start in submitted.started.items()
        if report_id not in submitted.failed
    ]
    unseen = len(watch.wanted) - len(watch.seen)
    p50, p99 = np.percentile(latencies, [50, 99])
    say(
        f"e2e: seen {len(watch.seen):,} of {len(watch.wanted):,} submitted "
        f"({len(submitted.failed):,} submissions failed{', e.g. ' if submitted.failed else ''}"
        f"{submitted.first_error}); p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    results.add("e2e_p50_ms", float(p50), "ms", TARGET_P50_MS, at_most=True)
    results.add("e2e_p99_ms", float(p99), "ms", TARGET_P99_MS, at_most=True)
    results.add("e2e_offered_per_s", len(requests) / submitted.offered_seconds, "reports/s")
    # CPU of each node process over the run and its drain, per report taken in.
    done = max(1, len(requests) - len(submitted.failed))
    for member, key in (
        (DK, "e2e_cpu_ms_per_report_submitting"),
        (NL, "e2e_cpu_ms_per_report_responsible"),
    ):
        results.add(key, cpu[member] * 1000 / done, "ms", TARGET_CPU_MS, at_most=True)
    results.add("e2e_reports", len(requests), "reports")
    results.add("e2e_unseen", unseen, "reports")
    results.add("e2e_submit_errors", len(submitted.failed), "reports")
