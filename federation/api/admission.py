"""Admission control: per-member caps on concurrent calls, open streams and call rate.

Every call to the node's own services passes here before its servicer runs.
The caller is identified exactly as the servicers do it (the member named by
the mTLS client certificate, or the dev metadata in insecure mode), and is
refused with RESOURCE_EXHAUSTED when it has

* too many unary calls in flight (``calls_in_flight_per_member``),
* too many streams open (``streams_per_member``), or the node as a whole has
  (``streams_total``, kept below the worker threads so unary calls always
  find one), or
* made calls faster than its token bucket allows (``calls_per_second`` with
  ``burst``).

Limits are per member so one busy or broken peer is refused while the others
are served. A refusal costs the worker thread a dictionary look-up and the
status; nothing waits. Health checks and reflection are not routed through
here: they must answer even when a member is being refused.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import structlog

from federation.api.auth import caller_member_id
from federation.api.errors import abort
from federation.api.interceptors import Behavior, Handler, HandlerWrapper
from federation.core.errors import HfedError, ResourceExhaustedError

log = structlog.get_logger(__name__)

#: Callers the node cannot name (no member in the certificate, or no dev
#: metadata) share one set of limits; their servicer refuses them anyway.
UNIDENTIFIED = "(unidentified)"
#: Test fault ``hold-calls``: milliseconds an admitted call stays in flight.
TEST_HOLD_METADATA = "x-hfed-test-hold-ms"
MAX_TEST_HOLD_SECONDS = 30.0
#: At most one log line per member this often while it is being refused.
LOG_EVERY_SECONDS = 10.0
#: Members tracked before idle ones are forgotten (an idle member's state is
#: the same as a new one's, so forgetting it changes nothing).
PRUNE_AT = 1024


class CallKind(enum.Enum):
    """What a call holds while it runs: a unary call is short, a stream is not."""

    UNARY = "unary"
    STREAM = "stream"


class Limit(enum.Enum):
    """Which limit refused a call; the value is the [admission] setting's name."""

    RATE = "calls_per_second"
    CALLS_IN_FLIGHT = "calls_in_flight_per_member"
    STREAMS = "streams_per_member"
    STREAMS_TOTAL = "streams_total"
    CLIENT_CALLS = "client_calls_total"
    HEAVY_READS = "heavy_reads_total"

    @property
    def reason(self) -> str:
        """The ErrorInfo reason of a refusal at this limit: ADMISSION_RATE, ..."""
        return f"ADMISSION_{self.name}"


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The limits one node enforces (from ``[admission]`` in its config)."""

    calls_in_flight_per_member: int = 8
    streams_per_member: int = 2
    streams_total: int = 8
    calls_per_second: float = 50.0
    burst: int = 100


class AdmissionRefusedError(ResourceExhaustedError):
    """A call refused at admission; RESOURCE_EXHAUSTED like every size or rate limit.

    Its status names the limit (reason ``ADMISSION_<LIMIT>``, ErrorInfo metadata
    ``limit`` = the setting's name) and, when known, when to retry.
    """

    def __init__(self, public_message: str, limit: Limit, retry_after: float | None) -> None:
        super().__init__(limit.reason, public_message)
        self.limit = limit
        #: Seconds after which the same call would be admitted, when known.
        self.retry_after = retry_after

    def metadata(self) -> dict[str, str]:
        """The limit's setting name."""
        return {"limit": self.limit.value}


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per call.

    Written here rather than taken from a library: none is installed, and the
    few lines below are easier to audit than a dependency. Not thread-safe:
    ``Admission`` holds its lock around every use.
    """

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:  # a clock that stands still or steps back adds nothing
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 if one was there, else the seconds until one will be."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def full(self, now: float) -> bool:
        """True when the bucket is as a fresh one would be."""
        self._refill(now)
        return self._tokens >= self.burst


@dataclass(slots=True)
class _Member:
    bucket: TokenBucket
    unary: int = 0
    streams: int = 0
    #: Refusals not yet reported in the log, and when the log last spoke.
    unlogged: int = 0
    logged_at: float = -math.inf

    def idle(self, now: float) -> bool:
        return (
            self.unary == 0 and self.streams == 0 and self.unlogged == 0 and self.bucket.full(now)
        )


class Ticket:
    """One admitted call; ``release`` it when the call ends (more than once is fine)."""

    __slots__ = ("_admission", "kind", "member", "released")

    def __init__(self, admission: Admission, member: str, kind: CallKind) -> None:
        self._admission = admission
        self.member = member
        self.kind = kind
        self.released = False

    def release(self) -> None:
        """Give the call's slot back."""
        self._admission.release(self)


class Admission:
    """The counters and buckets of every member; safe to use from any thread."""

    def __init__(
        self,
        limits: AdmissionLimits,
        clock: Callable[[], float] = time.monotonic,
        *,
        unmetered: Collection[str] = (),
    ) -> None:
        self.limits = limits
        self._clock = clock
        # The node's own member: its analysts' tools (``hfed report import``
        # submits one report per call) are not rate-limited by their own
        # node; the concurrency caps still apply to them.
        self._unmetered = frozenset(unmetered)
        self._lock = threading.Lock()
        self._members: dict[str, _Member] = {}
        self._streams = 0
        self._prune_at = PRUNE_AT

    def admit(self, member: str, kind: CallKind) -> Ticket:
        """Admit one call of ``member``, or raise AdmissionRefusedError.

        The rate is checked first, so every attempt counts against it, also
        one that is then refused for concurrency: a client that retries a
        refused call at once runs out of tokens and is told how long to wait.
        """
        limits = self.limits
        with self._lock:
            now = self._clock()
            state = self._state(member, now)
            wait = 0.0 if member in self._unmetered else state.bucket.take(now)
            if wait > 0:
                raise AdmissionRefusedError(
                    f"too many calls from {member}: at most {limits.calls_per_second:g} per "
                    f"second (bursts of {limits.burst}); retry in {wait:.1f} s",
                    Limit.RATE,
                    wait,
                )
            if kind is CallKind.UNARY:
                if state.unary >= limits.calls_in_flight_per_member:
                    raise AdmissionRefusedError(
                        f"too many calls in flight from {member}: at most "
                        f"{limits.calls_in_flight_per_member} at a time; retry when one "
                        "has finished",
                        Limit.CALLS_IN_FLIGHT,
                        None,
                    )
                state.unary += 1
            else:
                if state.streams >= limits.streams_per_member:
                    raise AdmissionRefusedError(
                        f"too many open streams from {member}: at most "
                        f"{limits.streams_per_member} at a time; close one first",
                        Limit.STREAMS,
                        None,
                    )
                if self._streams >= limits.streams_total:
                    raise AdmissionRefusedError(
                        f"this node has its maximum of {limits.streams_total} streams open; "
                        "retry later",
                        Limit.STREAMS_TOTAL,
                        None,
                    )
                state.streams += 1
                self._streams += 1
        return Ticket(self, member, kind)

    def release(self, ticket: Ticket) -> None:
        """End an admitted call (idempotent: the finally and the RPC callback both call it)."""
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            state = self._members.get(ticket.member)
            if state is None:  # pragma: no cover (a member with calls is never pruned)
                return
            if ticket.kind is CallKind.UNARY:
                state.unary -= 1
            else:
                state.streams -= 1
                self._streams -= 1

    def note_refusal(self, member: str) -> int:
        """Count a refusal; how many to log now (0: stay quiet, one line was logged lately)."""
        with self._lock:
            now = self._clock()
            state = self._state(member, now)
            state.unlogged += 1
            if now - state.logged_at < LOG_EVERY_SECONDS:
                return 0
            count, state.unlogged, state.logged_at = state.unlogged, 0, now
            return count

    def in_flight(self, member: str) -> tuple[int, int]:
        """(unary calls, streams) ``member`` has open now."""
        with self._lock:
            state = self._members.get(member)
            return (state.unary, state.streams) if state else (0, 0)

    @property
    def streams_open(self) -> int:
        """Streams open on the node, all members together."""
        with self._lock:
            return self._streams

    def tracked(self) -> int:
        """How many members have state (for tests of the pruning)."""
        with self._lock:
            return len(self._members)

    def _state(self, member: str, now: float) -> _Member:
        state = self._members.get(member)
        if state is None:
            if len(self._members) >= self._prune_at:
                self._prune(now)
            state = _Member(TokenBucket(self.limits.calls_per_second, self.limits.burst, now))
            self._members[member] = state
        return state

    def _prune(self, now: float) -> None:
        # Dev-mode callers name themselves, so the member set is not bounded
        # by the roster: drop idle entries. If most are busy, wait for twice
        # as many before scanning again, so pruning stays linear overall.
        for name in [n for n, s in self._members.items() if s.idle(now)]:
            del self._members[name]
        self._prune_at = max(PRUNE_AT, 2 * len(self._members))


#: Called for every refused call (the node audits refused liaison calls).
RefusalHook = Callable[[grpc.ServicerContext, str, AdmissionRefusedError], None]

#: The retry delay of a call refused because the client services are full.
CLIENT_RETRY_SECONDS = 1.0


class _CountingPool(futures.ThreadPoolExecutor):
    """A thread pool that knows how many of its calls are running or waiting."""

    def __init__(self, threads: int, name: str) -> None:
        super().__init__(threads, thread_name_prefix=name)
        self._count_lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Calls submitted and not yet finished."""
        return self._pending

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        """Submit a call, counted until it finishes (however it ends)."""
        with self._count_lock:
            self._pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done()
            raise
        future.add_done_callback(lambda _f: self._done())
        return future

    def _done(self) -> None:
        with self._count_lock:
            self._pending -= 1


class ClientLane:
    """The threads of the services other than FederationService, apart from its own.

    gRPC's synchronous server hands every call to one queue of worker
    threads, first come first served, and only then can our admission code
    run. A flood of calls to LiaisonService (even calls refused at once)
    then stood in that queue ahead of the peers' Deliver calls. The calls of
    ``services`` run on a pool of their own instead (gRPC takes a method's
    pool from its behavior's ``experimental_thread_pool``), so the server's
    pool is FederationService's alone; and once ``cap`` of them are running
    or waiting, further ones are refused on the spot, on one thread of their
    own, without queueing and without storage work.
    """

    def __init__(self, services: Collection[str], threads: int, cap: int) -> None:
        self.services = frozenset(services)
        self.cap = cap
        self.pool = _CountingPool(threads, "client")
        self.refusals = futures.ThreadPoolExecutor(1, thread_name_prefix="refuse")

    def full(self) -> bool:
        """True when ``cap`` calls are running or waiting for a thread."""
        return self.pool.pending >= self.cap

    def shutdown(self) -> None:
        """Let the pools' threads end (after the server has stopped)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.refusals.shutdown(wait=True, cancel_futures=True)


class AdmissionInterceptor(HandlerWrapper):
    """Applies an ``Admission`` to the calls of ``services`` (full names).

    A server interceptor cannot see the TLS peer (only the method and the
    metadata), so it wraps the method handler: the check runs first thing in
    the worker thread, with the call's context.
    """

    def __init__(
        self,
        admission: Admission,
        services: Collection[str],
        *,
        dev_plaintext: bool,
        hold_for_tests: bool = False,
        on_refused: RefusalHook | None = None,
        lane: ClientLane | None = None,
    ) -> None:
        super().__init__(services)
        self._admission = admission
        self._dev = dev_plaintext
        self._hold_for_tests = hold_for_tests
        self._on_refused = on_refused
        self._lane = lane
        #: Per lane method: the admitted handler and its refusing twin.
        self._refusing: dict[str, tuple[Handler, Handler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """The wrapped handler; for a lane service whose lane is full, one that
        refuses the call (runs on gRPC's polling thread, so it only decides)."""
        handler = super().intercept_service(continuation, handler_call_details)
        method = handler_call_details.method
        lane = self._lane
        if handler is None or lane is None or not lane.full() or not _in(method, lane.services):
            return handler
        with self._lock:
            cached = self._refusing.get(method)
            if cached is None or cached[0] is not handler:
                cached = (handler, self._refusing_handler(handler, method, lane))
                self._refusing[method] = cached
        return cached[1]

    def _refusing_handler(self, handler: Handler, method: str, lane: ClientLane) -> Handler:
        def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
            refusal = AdmissionRefusedError(
                f"this node is serving its maximum of {lane.cap} calls to its client services; "
                f"retry in {CLIENT_RETRY_SECONDS:g} s",
                Limit.CLIENT_CALLS,
                CLIENT_RETRY_SECONDS,
            )
            self._refuse(context, method, self._caller(context), refusal)

        refuse.experimental_thread_pool = lane.refusals  # type: ignore[attr-defined]
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(refuse, **codec)
        return grpc.unary_unary_rpc_method_handler(refuse, **codec)

    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler with the admission check first."""
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method), **codec
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method), **codec
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method), **codec
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            self._stream(handler.stream_stream, method), **codec
        )

    def _unary(self, behavior: Behavior, method: str) -> Behavior:
        def admitted(request: Any, context: grpc.ServicerContext) -> Any:
            ticket = self._enter(context, method, CallKind.UNARY)
            try:
                self._hold(context)
                return behavior(request, context)
            finally:
                ticket.release()

        return self._on_lane(admitted, method)

    def _on_lane(self, behavior: Behavior, method: str) -> Behavior:
        """``behavior``, marked to run on the lane's pool when its service has one."""
        if self._lane is not None and _in(method, self._lane.services):
            behavior.experimental_thread_pool = self._lane.pool  # type: ignore[attr-defined]
        return behavior

    def _stream(self, behavior: Behavior, method: str) -> Behavior:
        def admitted(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            # Checked before the first response is asked for, so a refusal is
            # the call's status, not an error in the middle of a stream.
            ticket = self._enter(context, method, CallKind.STREAM)
            try:
                responses = behavior(request, context)
            except BaseException:
                ticket.release()
                raise
            return _released_at_end(responses, ticket)

        return self._on_lane(admitted, method)

    def _enter(self, context: grpc.ServicerContext, method: str, kind: CallKind) -> Ticket:
        member = self._caller(context)
        try:
            ticket = self._admission.admit(member, kind)
        except AdmissionRefusedError as refusal:
            self._refuse(context, method, member, refusal)
        # gRPC leaves a cancelled stream's generator suspended (it is closed
        # only when collected), so the end of the RPC releases the slot too.
        if not context.add_callback(ticket.release):
            ticket.release()  # the call is already over
        return ticket

    def _caller(self, context: grpc.ServicerContext) -> str:
        try:
            return caller_member_id(context, dev_plaintext=self._dev)
        except HfedError:
            return UNIDENTIFIED

    def _refuse(
        self,
        context: grpc.ServicerContext,
        method: str,
        member: str,
        refusal: AdmissionRefusedError,
    ) -> NoReturn:
        count = self._admission.note_refusal(member)
        if count:
            log.warning(
                "calls refused at admission",
                member=member,
                rpc=method,
                limit=refusal.limit.value,
                refused=count,
                detail=refusal.public_message,
            )
        if self._on_refused is not None:
            try:
                self._on_refused(context, method, refusal)
            except Exception:
                # The refusal stands even if its bookkeeping failed.
                log.exception("refusal hook failed", member=member, rpc=method)
        abort(context, refusal)

    def _hold(self, context: grpc.ServicerContext) -> None:
        """Test fault ``hold-calls``: keep the admitted call in flight a while."""
        if not self._hold_for_tests:
            return
        wanted = next(
            (v for k, v in context.invocation_metadata() if k == TEST_HOLD_METADATA), None
        )
        if not isinstance(wanted, str) or not wanted.isdigit():
            return
        ended = threading.Event()
        if context.add_callback(ended.set):
            ended.wait(min(int(wanted) / 1000, MAX_TEST_HOLD_SECONDS))
        if not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "cancelled while held")


def _in(method: str, services: frozenset[str]) -> bool:
    """Whether ``method`` (/package.Service/Method) belongs to one of ``services``."""
    return method[1:].partition("/")[0] in services


def _released_at_end(responses: Iterator[Any], ticket: Ticket) -> Iterator[Any]:
    try:
        yield from responses
    finally:
        ticket.release()
