"""Admission accounting without a server: token bucket, per-member and node-wide
caps, release, the refusal status, and the [admission] settings."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from federation.api.admission import (
    LOG_EVERY_SECONDS,
    PRUNE_AT,
    Admission,
    AdmissionLimits,
    AdmissionRefusedError,
    CallKind,
    Limit,
    TokenBucket,
)
from federation.api.errors import PUSHBACK_METADATA, status_of
from federation.api.liaison import _Sent
from federation.node.config import ConfigError, load_config
from federation.node.server import admission_limits, connection_options
from federation.store import audit

UNARY, STREAM = CallKind.UNARY, CallKind.STREAM


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refused(admission: Admission, member: str, kind: CallKind) -> AdmissionRefusedError:
    with pytest.raises(AdmissionRefusedError) as caught:
        admission.admit(member, kind)
    return caught.value


# --- token bucket ----------------------------------------------------------------


def test_bucket_allows_the_burst_then_says_how_long_to_wait() -> None:
    """Take burst tokens at one instant, expect the next to be refused with the exact wait."""
    bucket = TokenBucket(rate=4.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.25)
    assert bucket.take(0.1) == pytest.approx(0.15)  # partly refilled already
    assert bucket.take(0.25) == 0.0


def test_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    """Idle for a long time, expect only burst tokens; a clock stepping back adds none."""
    bucket = TokenBucket(rate=10.0, burst=5, now=0.0)
    for _ in range(5):
        bucket.take(0.0)
    assert not bucket.full(0.2)
    assert bucket.full(1000.0)
    assert sum(bucket.take(1000.0) == 0.0 for _ in range(8)) == 5
    assert bucket.take(999.0) > 0  # stepping back refills nothing


def test_bucket_rejects_nonsense_settings() -> None:
    """Build a bucket with rate 0 or burst 0, expect ValueError."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0, 1, 0.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0, 0.0)


# --- per-member accounting --------------------------------------------------------


def test_rate_limit_is_per_member_and_refills() -> None:
    """Member X spends its burst, expect X refused with a retry time while Y is admitted,
    and X admitted again once the bucket has refilled."""
    clock = Clock()
    admission = Admission(AdmissionLimits(calls_per_second=2.0, burst=3), clock)
    for _ in range(3):
        admission.admit("x", UNARY).release()
    refusal = refused(admission, "x", UNARY)
    assert refusal.limit is Limit.RATE
    assert refusal.retry_after == pytest.approx(0.5)
    assert "at most 2 per second" in refusal.public_message
    assert "retry in 0.5 s" in refusal.public_message
    admission.admit("y", UNARY).release()
    clock.now += 0.5
    admission.admit("x", UNARY).release()


def test_the_nodes_own_member_is_not_rate_limited_but_still_capped() -> None:
    """The node's own analysts' tools call far beyond the rate, expect every call
    admitted (one at a time), but their concurrency cap still holds."""
    admission = Admission(
        AdmissionLimits(calls_per_second=2.0, burst=3, calls_in_flight_per_member=2),
        Clock(),
        unmetered={"hotline-nl"},
    )
    for _ in range(100):
        admission.admit("hotline-nl", UNARY).release()
    held = [admission.admit("hotline-nl", UNARY) for _ in range(2)]
    assert refused(admission, "hotline-nl", UNARY).limit is Limit.CALLS_IN_FLIGHT
    for ticket in held:
        ticket.release()
    for _ in range(3):
        admission.admit("hotline-dk", UNARY).release()
    assert refused(admission, "hotline-dk", UNARY).limit is Limit.RATE


def test_unary_calls_in_flight_are_capped_per_member() -> None:
    """X holds its cap of unary calls, expect its next refused (no retry time), Y and
    X's streams still admitted; after one release, X is admitted again."""
    admission = Admission(AdmissionLimits(calls_in_flight_per_member=2))
    held = [admission.admit("x", UNARY) for _ in range(2)]
    refusal = refused(admission, "x", UNARY)
    assert refusal.limit is Limit.CALLS_IN_FLIGHT and refusal.retry_after is None
    assert "at most 2 at a time" in refusal.public_message
    admission.admit("y", UNARY).release()
    admission.admit("x", STREAM).release()
    held[0].release()
    admission.admit("x", UNARY)
    assert admission.in_flight("x") == (2, 0)


def test_streams_are_capped_per_member_and_for_the_node() -> None:
    """Two members open streams up to the node-wide cap, expect the per-member cap to
    refuse first for X and the node cap to refuse Y below its own cap; unary calls
    are unaffected."""
    admission = Admission(AdmissionLimits(streams_per_member=2, streams_total=3))
    x = [admission.admit("x", STREAM) for _ in range(2)]
    assert refused(admission, "x", STREAM).limit is Limit.STREAMS
    y = admission.admit("y", STREAM)
    node_full = refused(admission, "y", STREAM)
    assert node_full.limit is Limit.STREAMS_TOTAL
    assert "maximum of 3 streams" in node_full.public_message
    admission.admit("y", UNARY).release()
    assert admission.streams_open == 3
    y.release()
    admission.admit("z", STREAM)
    for ticket in x:
        ticket.release()
    assert admission.streams_open == 1


def test_release_is_idempotent() -> None:
    """Release a ticket from both the call's finally and the RPC callback, expect the
    slot given back once, never a negative count or an extra free slot."""
    admission = Admission(AdmissionLimits(streams_per_member=1, streams_total=1))
    ticket = admission.admit("x", STREAM)
    ticket.release()
    ticket.release()
    assert admission.in_flight("x") == (0, 0) and admission.streams_open == 0
    again = admission.admit("x", STREAM)
    ticket.release()  # a stale ticket must not free the new call's slot
    assert refused(admission, "x", STREAM).limit is Limit.STREAMS
    again.release()


def test_a_call_refused_for_concurrency_still_spends_a_token() -> None:
    """X retries a refused call in a tight loop, expect it to run into the rate limit
    (with a retry time) instead of retrying for free."""
    clock = Clock()
    admission = Admission(
        AdmissionLimits(calls_in_flight_per_member=1, calls_per_second=1.0, burst=3), clock
    )
    admission.admit("x", UNARY)
    limits = [refused(admission, "x", UNARY).limit for _ in range(3)]
    assert limits == [Limit.CALLS_IN_FLIGHT, Limit.CALLS_IN_FLIGHT, Limit.RATE]


def test_counters_stay_exact_under_concurrent_use() -> None:
    """8 threads admit and release 2000 calls each against shared caps, expect no
    slot lost or leaked: every counter back to zero, and never above the caps."""
    limits = AdmissionLimits(
        calls_in_flight_per_member=3,
        streams_per_member=2,
        streams_total=3,
        calls_per_second=1e9,
        burst=10**9,
    )
    admission = Admission(limits)
    peaks: list[int] = []
    errors: list[BaseException] = []

    def work(member: str) -> None:
        try:
            for i in range(2000):
                kind = STREAM if i % 3 == 0 else UNARY
                try:
                    ticket = admission.admit(member, kind)
                except AdmissionRefusedError:
                    continue
                unary, streams = admission.in_flight(member)
                peaks.append(max(unary - 3, streams - 2, admission.streams_open - 3))
                ticket.release()
                ticket.release()
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"m{i % 3}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert max(peaks) <= 0, "a cap was exceeded"
    assert admission.streams_open == 0
    assert all(admission.in_flight(f"m{i}") == (0, 0) for i in range(3))


def test_refusals_are_logged_at_most_once_per_interval() -> None:
    """X is refused 50 times in a row, expect one log line at once, then silence, then
    one line carrying the count of the refusals in between."""
    clock = Clock()
    admission = Admission(AdmissionLimits(), clock)
    counts = [admission.note_refusal("x") for _ in range(50)]
    assert counts[0] == 1 and not any(counts[1:])
    clock.now += LOG_EVERY_SECONDS
    assert admission.note_refusal("x") == 50
    assert admission.note_refusal("y") == 1  # another member has its own interval


def test_idle_members_are_forgotten_busy_ones_kept() -> None:
    """Callers with ever new names (dev mode) fill the table, expect idle entries
    dropped while a member with a call in flight keeps its state."""
    clock = Clock()
    admission = Admission(AdmissionLimits(calls_per_second=1.0, burst=2), clock)
    busy = admission.admit("busy", UNARY)
    for i in range(PRUNE_AT + 10):
        admission.admit(f"caller-{i}", UNARY).release()
    assert admission.tracked() > PRUNE_AT  # nobody idle yet: their buckets are not full
    clock.now += 10  # every bucket full again
    for i in range(PRUNE_AT + 10, 2 * PRUNE_AT + 200):
        admission.admit(f"caller-{i}", UNARY).release()
    assert admission.tracked() < 2 * PRUNE_AT + 200
    assert admission.in_flight("busy") == (1, 0)
    busy.release()


# --- the refusal as a gRPC status -----------------------------------------------------


def _details(status: grpc.Status) -> status_pb2.Status:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def test_rate_refusal_status_says_which_limit_and_when_to_retry() -> None:
    """Turn a rate refusal into a status, expect RESOURCE_EXHAUSTED, an ErrorInfo
    naming the limit (reason and setting name), RetryInfo and gRPC's pushback metadata."""
    error = AdmissionRefusedError("too many calls", Limit.RATE, 0.2501)
    status = status_of(error)
    assert status.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.details == "too many calls"
    assert dict(status.trailing_metadata)[PUSHBACK_METADATA] == "251"
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    packed = _details(status).details
    assert packed[0].Unpack(info) and packed[1].Unpack(retry)
    assert (info.reason, info.domain) == ("ADMISSION_RATE", "hfp.v1")
    assert dict(info.metadata) == {"limit": "calls_per_second"}
    assert retry.retry_delay.ToMilliseconds() == 251


def test_concurrency_refusal_status_has_no_retry_time() -> None:
    """Turn a stream-cap refusal into a status, expect no RetryInfo and no pushback:
    only the client knows when one of its streams ends."""
    status = status_of(AdmissionRefusedError("too many streams", Limit.STREAMS, None))
    assert PUSHBACK_METADATA not in dict(status.trailing_metadata)
    packed = _details(status).details
    info = error_details_pb2.ErrorInfo()
    assert len(packed) == 1 and packed[0].Unpack(info)
    assert dict(info.metadata) == {"limit": "streams_per_member"}
    assert info.reason == "ADMISSION_STREAMS"


# --- a stream's record for its audit entry ------------------------------------------


def test_a_long_stream_keeps_a_bounded_record_for_its_audit_entry() -> None:
    """Send three times as many events as an audit entry lists cases, expect the
    distinct cases kept only up to that bound, the count exact and the overflow said."""
    sent = _Sent()
    for i in range(3 * audit.MAX_CASES):
        sent.add(f"case-{i % (2 * audit.MAX_CASES)}")
    assert len(sent.cases) == audit.MAX_CASES
    assert next(iter(sent.cases)) == "case-0"
    assert sent.summary() == (
        f"{3 * audit.MAX_CASES} events sent; first {audit.MAX_CASES} of more cases listed"
    )
    small = _Sent()
    for case_id in ("a", "b", "a"):
        small.add(case_id)
    assert list(small.cases) == ["a", "b"] and small.summary() == "3 events sent"


# --- settings -------------------------------------------------------------------------

CONFIG = """
member_id = "hotline-dk"
database_url = "sqlite:///data/node.db"
insecure_plaintext = true
[signing]
key = "signing.pem"
[trust]
root_public_keys = ["aa"]
threshold = 1
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(CONFIG.replace("[signing]", extra + "\n[signing]", 1))
    return path


def test_admission_defaults_leave_half_the_threads_to_unary_calls(tmp_path: Path) -> None:
    """Load a config without [admission], expect the documented defaults: streams
    capped at half the worker threads, metadata at 16 KiB exactly, and a silent
    peer dropped after a 60 s ping and 20 s without an answer."""
    config = load_config(_config(tmp_path), environ={})
    limits = admission_limits(config)
    assert limits == AdmissionLimits(8, 2, 8, 50.0, 100)
    options = dict(connection_options(config.admission))
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"]
    assert options["grpc.max_metadata_size"] == 16 * 1024
    # gRPC waits ping_timeout_ms for a keepalive answer, whatever keepalive_timeout_ms says.
    assert options["grpc.keepalive_time_ms"] == 60_000
    assert options["grpc.http2.ping_timeout_ms"] == options["grpc.keepalive_timeout_ms"] == 20_000
    small = load_config(_config(tmp_path, "worker_threads = 3"), environ={})
    assert admission_limits(small).streams_total == 1


def test_admission_settings_come_from_the_environment(tmp_path: Path) -> None:
    """Override [admission] keys with HFED_ADMISSION__* variables, expect them applied."""
    environ = {
        "HFED_ADMISSION__STREAMS_PER_MEMBER": "1",
        "HFED_ADMISSION__CALLS_PER_SECOND": "2.5",
        "HFED_ADMISSION__STREAMS_TOTAL": "3",
    }
    limits = admission_limits(load_config(_config(tmp_path), environ=environ))
    assert (limits.streams_per_member, limits.calls_per_second, limits.streams_total) == (
        1,
        2.5,
        3,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "[admission]\nstreams_total = 16",
            "streams_total .16. must be below admission.client_threads .16; unset: worker_threads",
        ),
        (
            "worker_threads = 4\n[admission]\nstreams_total = 4",
            "must be below admission.client_threads .4",
        ),
        (
            "[admission]\nclient_threads = 4\nstreams_total = 4",
            "must be below admission.client_threads .4",
        ),
        ("[admission]\ncalls_per_second = 0", "admission.calls_per_second"),
        ("[admission]\nburst = 0", "admission.burst"),
        ("[admission]\nmax_metadata_bytes = 100", "admission.max_metadata_bytes"),
        ("[admission]\nstreams_per_mmber = 1", "admission.streams_per_mmber"),
    ],
)
def test_bad_admission_settings_are_refused_by_name(
    tmp_path: Path, extra: str, message: str
) -> None:
    """Configure impossible or misspelt limits, expect the node to refuse to start
    with a message naming the setting."""
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, extra), environ={})
