"""Following the referral event stream for ``hfed liaison watch``.

The Follower prints each event, saves its cursor, and reconnects after a
broken stream with backoff until the give-up window runs out; NodeStreams
opens the stream on a fresh channel each time; stop_signals turns Ctrl-C
into a stop between events.
"""

from __future__ import annotations

import enum
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

import grpc

from federation.cli.liaison.profile import CursorStore, LiaisonProfile
from federation.runtime.clock import utc_now
from federation.runtime.tracing import trace_metadata
from hfp.v1 import liaison_service_pb2 as pb
from hfp.v1 import liaison_service_pb2_grpc as pb_grpc
from peers.backoff import Backoff
from peers.channel import client_options, secure_channel, with_metadata


class StreamCall(Protocol):
    """What ``watch`` needs of a server-streaming call: iterate it, cancel it."""

    def __iter__(self) -> Iterator[pb.WatchReferralsResponse]:
        """The responses as they arrive; raises grpc.RpcError when the call fails."""
        ...

    def cancel(self) -> bool:
        """End the call from any thread."""
        ...


class NodeUnreachableError(Exception):
    """No connection to the node could be made (a reason to retry)."""


#: Opens the stream after ``cursor``; returns None if told to stop while connecting.
Opener = Callable[[str, Callable[[], bool]], StreamCall | None]

#: Codes after which the stream is reopened from the saved cursor: the node
#: is restarting or overloaded, or the connection broke. Anything else (a
#: refused certificate, a rejected cursor) will not get better by retrying.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class WatchEnd(enum.Enum):
    """Why a watch ended normally."""

    MAX_EVENTS = "max-events"
    IDLE = "idle"
    INTERRUPTED = "interrupted"


class GaveUpError(Exception):
    """The node stayed unreachable for longer than the watch may wait."""


@dataclass
class WatchOptions:
    """Bounds of one watch."""

    max_events: int | None = None
    idle_exit: float | None = None
    reconnect_for: float = 120.0
    backoff: Backoff = field(default_factory=lambda: Backoff(base_seconds=0.5, cap_seconds=10.0))
    #: A stream that stayed open this long counts as a working connection,
    #: even if no event came, so a later drop starts a fresh outage clock.
    healthy_after: float = 10.0


class Follower:
    """Follows the event stream: print, save the cursor, reconnect, repeat.

    Each event is printed first and its cursor saved right after, so a
    restart resumes after the last printed event. (Printing before saving
    means a hard kill between the two repeats one event on the next run,
    whereas the other order could lose one; a repeat is the safer mistake.)
    Ctrl-C, --max-events and --idle-exit only take effect between events,
    never between the print and the save.
    """

    def __init__(
        self,
        opener: Opener,
        store: CursorStore,
        show: Callable[[pb.WatchReferralsResponse], None],
        notice: Callable[[str], None],
        options: WatchOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener
        self._store = store
        self._show = show
        self._notice = notice
        self._options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._call: StreamCall | None = None
        self._idle_deadline: float | None = None
        self._done = threading.Event()
        #: Set from a signal handler: a plain assignment, safe there.
        self.interrupted = False
        self.events = 0
        self.sequence: int | None = None
        #: True while the node is unreachable (between a failure and a reconnect).
        self.in_outage = False
        self._connected_once = False
        self._failures = 0
        self._outage_since: float | None = None
        self._opened_at: float | None = None

    def _stop_reason(self) -> WatchEnd | None:
        # Read by the main loop and the watchdog thread: plain attributes
        # only, so no lock is needed (and none is taken in a signal handler).
        if self.interrupted:
            return WatchEnd.INTERRUPTED
        deadline = self._idle_deadline
        if deadline is not None and self._clock() >= deadline:
            return WatchEnd.IDLE
        return None

    def _touch(self) -> None:
        if self._options.idle_exit is not None:
            self._idle_deadline = self._clock() + self._options.idle_exit

    def _attach(self, call: StreamCall | None) -> None:
        with self._lock:
            self._call = call

    def _watchdog(self) -> None:
        # The blocking iteration of a gRPC stream has no timeout, so a helper
        # thread ends it when the user interrupts or the idle time runs out.
        while not self._done.wait(0.1):
            if self._stop_reason() is not None:
                with self._lock:
                    if self._call is not None:
                        self._call.cancel()

    def run(self, cursor: str) -> WatchEnd:
        """Follow from ``cursor`` until a bound is reached; raises GaveUpError."""
        self._touch()
        thread = threading.Thread(target=self._watchdog, name="watch-watchdog", daemon=True)
        thread.start()
        try:
            return self._follow(cursor)
        finally:
            self._done.set()
            thread.join(timeout=2.0)

    def _follow(self, cursor: str) -> WatchEnd:
        while True:
            stop = self._stop_reason()
            if stop is not None:
                return stop
            started = self._clock()
            self._opened_at = None
            try:
                end, cursor, problem = self._session(cursor)
            finally:
                self._attach(None)
            if end is not None:
                return end
            self._recover(started, problem)

    def _session(self, cursor: str) -> tuple[WatchEnd | None, str, str]:
        """One connection: (why the watch ended or None, cursor, why the stream broke)."""
        try:
            call = self._opener(cursor, lambda: self._stop_reason() is not None)
            if call is None:  # told to stop while connecting
                return self._stop_reason() or WatchEnd.INTERRUPTED, cursor, ""
            self._connected_once = True
            self._opened_at = self._clock()
            if self.in_outage:
                self._notice("reconnected; resuming " + self.position())
                self.in_outage = False
            self._attach(call)
            for response in call:
                self._show(response)
                cursor = response.cursor
                self._store.save(cursor, response.event.sequence)
                self.events += 1
                self.sequence = response.event.sequence
                self._touch()
                self._failures, self._outage_since = 0, None
                end = self._stop_reason()
                if self._options.max_events and self.events >= self._options.max_events:
                    end = WatchEnd.MAX_EVENTS
                if end is not None:
                    call.cancel()
                    return end, cursor, ""
            return None, cursor, "the node closed the stream"
        except grpc.RpcError as exc:
            stop = self._stop_reason()
            if stop is not None:  # our own cancel
                return stop, cursor, ""
            code: grpc.StatusCode = exc.code()
            if code not in RETRYABLE:
                raise
            return None, cursor, f"{code.name}: {exc.details() or 'no details'}"
        except NodeUnreachableError as exc:
            return None, cursor, str(exc)

    def _recover(self, started: float, problem: str) -> None:
        """After a broken stream: give up, or say so and wait before the next attempt."""
        now = self._clock()
        opened = self._opened_at
        if opened is not None and now - opened >= self._options.healthy_after:
            self._failures, self._outage_since = 0, None
        self._failures += 1
        if self._outage_since is None:
            # After a working stream the outage begins now; if this attempt
            # never connected, it began when the attempt did.
            self._outage_since = now if opened is not None else started
        self.in_outage = True
        waited = now - self._outage_since
        if waited >= self._options.reconnect_for:
            raise GaveUpError(
                f"no connection for {waited:.0f} s after {self._failures} attempts "
                f"(last: {problem})"
            )
        delay = self._options.backoff.delay(self._failures).total_seconds()
        delay = min(delay, self._options.reconnect_for - waited)
        lost = self._failures == 1 and self._connected_once
        lead = "lost the node" if lost else "cannot reach the node"
        self._notice(f"{lead} ({problem}); reconnecting in {delay:.1f} s")
        self._pause(delay)  # the loop in _follow ends the watch if told to stop meanwhile

    def _pause(self, seconds: float) -> None:
        """Sleep, waking early when told to stop."""
        end = self._clock() + seconds
        while self._clock() < end and self._stop_reason() is None:
            time.sleep(min(0.1, max(end - self._clock(), 0.0)))

    def position(self) -> str:
        """Where the watch stands, in words."""
        return "from the start" if self.sequence is None else f"after event {self.sequence}"


class NodeStreams:
    """Opens WatchReferrals on a fresh channel each time.

    A fresh channel per attempt because a gRPC channel that failed backs off
    on its own schedule (up to minutes) and fails new calls at once meanwhile;
    a new channel connects immediately, so reconnects follow our backoff.
    """

    #: How long to wait for the TCP/TLS connection before counting a failure.
    CONNECT_TIMEOUT = 10.0

    def __init__(self, profile: LiaisonProfile) -> None:
        self._profile = profile
        self._channel: grpc.Channel | None = None

    def open(self, cursor: str, should_stop: Callable[[], bool]) -> StreamCall | None:
        """Connect, then start the stream after ``cursor``."""
        self.close()
        # A long watch can outlive its certificate; say so rather than
        # retrying a TLS handshake the node will never accept.
        self._profile.check_certificate(utc_now())
        channel = secure_channel(self._profile.node, self._profile.identity(), client_options())
        self._channel = channel
        states: queue.SimpleQueue[grpc.ChannelConnectivity] = queue.SimpleQueue()
        channel.subscribe(states.put, try_to_connect=True)
        try:
            if not self._connected(states, should_stop):
                return None
        finally:
            channel.unsubscribe(states.put)
        stub = pb_grpc.LiaisonServiceStub(with_metadata(channel, trace_metadata(os.environ)))
        call: StreamCall = stub.WatchReferrals(pb.WatchReferralsRequest(cursor=cursor))
        return call

    def _connected(
        self, states: queue.SimpleQueue[grpc.ChannelConnectivity], should_stop: Callable[[], bool]
    ) -> bool:
        """Wait for the connection: True when up, False when told to stop.

        A refused or failed connection ends the wait at once (rather than
        letting gRPC retry on its own schedule), so the watch's own backoff
        and give-up window decide how often and how long to try.
        """
        end = time.monotonic() + self.CONNECT_TIMEOUT
        while time.monotonic() < end:
            if should_stop():
                return False
            try:
                state = states.get(timeout=0.1)
            except queue.Empty:
                continue
            if state is grpc.ChannelConnectivity.READY:
                return True
            if state in (
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                grpc.ChannelConnectivity.SHUTDOWN,
            ):
                raise NodeUnreachableError(f"cannot connect to {self._profile.node_label}")
        raise NodeUnreachableError(
            f"no connection to {self._profile.node_label} within {self.CONNECT_TIMEOUT:.0f} s"
        )

    def close(self) -> None:
        """Close the current channel, if any."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None


#: A second Ctrl-C this long after the first forces the exit. Sooner ones are
#: ignored: wrappers such as timeout(1) deliver one signal twice, and a forced
#: exit could fall between printing an event and saving its cursor.
FORCE_AFTER_SECONDS = 1.0


@contextmanager
def stop_signals(follower: Follower) -> Iterator[None]:
    """Ctrl-C (and SIGTERM) ask the follower to stop between events."""
    first: list[float] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not first:
            first.append(time.monotonic())
            follower.interrupted = True
        elif signum == signal.SIGINT and time.monotonic() - first[0] > FORCE_AFTER_SECONDS:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
