"""The watch loop against a scripted stream: resume, reconnect, bounds (no server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from federation.cli.liaison.follower import (
    Follower,
    GaveUpError,
    NodeUnreachableError,
    StreamCall,
    WatchEnd,
    WatchOptions,
)
from federation.cli.liaison.profile import CursorStore
from hfp.v1 import case_pb2
from hfp.v1 import liaison_service_pb2 as pb
from peers.backoff import Backoff

FAST = Backoff(base_seconds=0.01, cap_seconds=0.02)


class FakeRpcError(grpc.RpcError):
    """What a failed gRPC call raises, with a code and details."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def response(sequence: int) -> pb.WatchReferralsResponse:
    return pb.WatchReferralsResponse(
        event=case_pb2.CaseEvent(sequence=sequence, case_id=f"case-{sequence}"),
        cursor=f"c{sequence}",
    )


class FakeCall:
    """A stream that yields ``sequences``, then fails, ends, or waits to be cancelled."""

    def __init__(
        self, sequences: Sequence[int], error: Exception | None = None, hang: bool = True
    ) -> None:
        self._sequences = sequences
        self._error = error
        self._hang = hang
        self.cancelled = threading.Event()

    def __iter__(self) -> Iterator[pb.WatchReferralsResponse]:
        for sequence in self._sequences:
            if self.cancelled.is_set():
                break
            yield response(sequence)
        if self._error is not None and not self.cancelled.is_set():
            raise self._error
        if self._hang and not self.cancelled.wait(timeout=10):
            raise AssertionError("the fake stream was never cancelled")
        if self.cancelled.is_set():
            raise FakeRpcError(grpc.StatusCode.CANCELLED, "Locally cancelled by application!")

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


class Script:
    """An opener that plays one step per connection attempt and records cursors."""

    def __init__(self, steps: Sequence[Callable[[str], StreamCall]]) -> None:
        self._steps = list(steps)
        self.cursors: list[str] = []

    def __call__(self, cursor: str, should_stop: Callable[[], bool]) -> StreamCall | None:
        self.cursors.append(cursor)
        if not self._steps:
            raise AssertionError("more connection attempts than scripted")
        return self._steps.pop(0)(cursor)


def after(cursor: str) -> int:
    return int(cursor[1:]) if cursor else 0


def log_from(cursor: str, upto: int, **call: object) -> FakeCall:
    """The event log from right after ``cursor`` up to ``upto``."""
    return FakeCall(range(after(cursor) + 1, upto + 1), **call)  # type: ignore[arg-type]


def unreachable(cursor: str) -> StreamCall:
    raise NodeUnreachableError("cannot connect to hotline-dk (127.0.0.1:1)")


class Recorder:
    def __init__(self, store: CursorStore) -> None:
        self.store = store
        self.shown: list[int] = []
        self.saved_when_shown: list[int | None] = []
        self.notices: list[str] = []

    def show(self, item: pb.WatchReferralsResponse) -> None:
        saved = self.store.load()
        self.saved_when_shown.append(None if saved is None else saved.sequence)
        self.shown.append(item.event.sequence)

    def notice(self, text: str) -> None:
        self.notices.append(text)


def follower(
    tmp_path: Path, script: Script, **options: object
) -> tuple[Follower, Recorder, CursorStore]:
    store = CursorStore(tmp_path, "hotline-dk")
    recorder = Recorder(store)
    opts = WatchOptions(backoff=FAST, **options)  # type: ignore[arg-type]
    return Follower(script, store, recorder.show, recorder.notice, opts), recorder, store


def test_resumes_after_a_disconnect_without_skipping_or_repeating(tmp_path: Path) -> None:
    unavailable = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "the node is shutting down")
    script = Script(
        [
            lambda c: log_from(c, 3, error=unavailable, hang=False),
            lambda c: log_from(c, 5),
        ]
    )
    watch, seen, store = follower(tmp_path, script, max_events=5)
    assert watch.run("") is WatchEnd.MAX_EVENTS
    assert seen.shown == [1, 2, 3, 4, 5]
    assert script.cursors == ["", "c3"]
    saved = store.load()
    assert saved is not None and (saved.cursor, saved.sequence) == ("c5", 5)
    assert any("lost the node (UNAVAILABLE: the node is shutting down)" in n for n in seen.notices)
    assert any("reconnected; resuming after event 3" in n for n in seen.notices)


def test_each_cursor_is_saved_after_its_event_is_shown(tmp_path: Path) -> None:
    watch, seen, _ = follower(tmp_path, Script([lambda c: log_from(c, 4)]), max_events=4)
    watch.run("")
    # When event n is shown, the saved position is still n-1: print first,
    # then save, so a crash can repeat one event but never lose one.
    assert seen.saved_when_shown == [None, 1, 2, 3]


def test_starts_from_the_given_cursor(tmp_path: Path) -> None:
    script = Script([lambda c: log_from(c, 9)])
    watch, seen, _ = follower(tmp_path, script, max_events=2)
    watch.run("c7")
    assert script.cursors == ["c7"]
    assert seen.shown == [8, 9]


def test_a_stream_the_node_ends_is_reopened(tmp_path: Path) -> None:
    script = Script([lambda c: log_from(c, 1, hang=False), lambda c: log_from(c, 2)])
    watch, seen, _ = follower(tmp_path, script, max_events=2)
    assert watch.run("") is WatchEnd.MAX_EVENTS
    assert seen.shown == [1, 2] and script.cursors == ["", "c1"]


def test_retries_while_unreachable_then_resumes(tmp_path: Path) -> None:
    script = Script(
        [
            lambda c: log_from(c, 1, error=FakeRpcError(grpc.StatusCode.UNAVAILABLE), hang=False),
            unreachable,
            unreachable,
            lambda c: log_from(c, 2),
        ]
    )
    watch, seen, _ = follower(tmp_path, script, max_events=2)
    assert watch.run("") is WatchEnd.MAX_EVENTS
    assert seen.shown == [1, 2]
    assert script.cursors == ["", "c1", "c1", "c1"]
    assert sum("cannot reach the node" in n for n in seen.notices) == 2


def test_gives_up_after_the_reconnect_window(tmp_path: Path) -> None:
    script = Script([unreachable] * 1000)
    watch, _, _ = follower(tmp_path, script, reconnect_for=0.3)
    started = time.monotonic()
    with pytest.raises(GaveUpError, match=r"no connection for .* \(last: cannot connect"):
        watch.run("c4")
    assert time.monotonic() - started < 3.0
    assert set(script.cursors) == {"c4"} and len(script.cursors) >= 2
    assert watch.in_outage


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    denied = FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "not responsible for DK")
    script = Script([lambda c: log_from(c, 1, error=denied, hang=False)])
    watch, seen, _ = follower(tmp_path, script)
    with pytest.raises(grpc.RpcError) as caught:
        watch.run("")
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert seen.shown == [1]


def test_idle_exit(tmp_path: Path) -> None:
    call = FakeCall([1])
    watch, seen, store = follower(tmp_path, Script([lambda c: call]), idle_exit=0.3)
    started = time.monotonic()
    assert watch.run("") is WatchEnd.IDLE
    assert 0.25 < time.monotonic() - started < 3.0
    assert call.cancelled.is_set() and not watch.in_outage
    saved = store.load()
    assert seen.shown == [1] and saved is not None and saved.sequence == 1


def test_interrupt_stops_between_events(tmp_path: Path) -> None:
    call = FakeCall([1, 2])
    watch, seen, store = follower(tmp_path, Script([lambda c: call]))
    timer = threading.Timer(0.3, lambda: setattr(watch, "interrupted", True))
    timer.start()
    try:
        assert watch.run("") is WatchEnd.INTERRUPTED
    finally:
        timer.cancel()
    assert call.cancelled.is_set()
    saved = store.load()
    assert seen.shown == [1, 2] and saved is not None and saved.sequence == 2


def test_interrupt_during_an_outage(tmp_path: Path) -> None:
    script = Script([unreachable] * 1000)
    watch, _, _ = follower(tmp_path, script, reconnect_for=60.0)
    timer = threading.Timer(0.3, lambda: setattr(watch, "interrupted", True))
    timer.start()
    try:
        assert watch.run("") is WatchEnd.INTERRUPTED
    finally:
        timer.cancel()
