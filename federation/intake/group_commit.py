"""Group commit: concurrent callers share one write transaction.

SQLite takes one writer at a time and every commit waits for an fsync, so
writes from concurrent calls (many analysts' single SubmitReport calls, or
several peers' Deliver batches) would queue up and pay the transaction's
fixed cost one by one. Here the first caller to arrive becomes the leader:
it takes everything queued by then, runs it as one unit, and hands each
caller its own outcome; callers that arrive meanwhile wait, and the first of
them leads the next group. A caller never waits for more than the group in
progress plus its own.

When a group fails, the error may belong to one caller's items only (a
value the database cannot hold); every other caller of the group would be
told its items were not stored for nothing. So the leader runs each
caller's items again on their own, and each caller gets the outcome of its
own run: only the caller whose items fail alone sees the error. Errors for
which that cannot help (the database is unreachable) are handed to every
caller at once, as ``isolate`` decides.

Written here rather than taken from a library: it is a few lines around one
lock, and the grouping rule (whole requests, a cap in items) is ours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Entry(Generic[T]):
    items: Sequence[T]
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Runs ``work`` over the items of all callers waiting at once."""

    def __init__(
        self,
        work: Callable[[list[T]], None],
        max_items: int = 2000,
        *,
        isolate: Callable[[BaseException], bool] = lambda exc: isinstance(exc, Exception),
    ) -> None:
        self._work = work
        self._max_items = max_items
        #: Whether a group's error is worth running each caller's items alone.
        self._isolate = isolate
        self._lock = threading.Lock()
        self._queue: list[_Entry[T]] = []
        self._busy = False

    def run(self, items: Sequence[T]) -> None:
        """Process ``items`` (in a group with others); re-raises the group's error."""
        entry: _Entry[T] = _Entry(items)
        with self._lock:
            self._queue.append(entry)
            lead = not self._busy
            self._busy = True
        if not lead:
            entry.wake.wait()  # set when done, or when made the next leader
        if not entry.done:
            self._lead()
        if entry.error is not None:
            raise entry.error

    def _lead(self) -> None:
        group = self._take()
        try:
            self._work([item for e in group for item in e.items])
        except BaseException as exc:
            if len(group) > 1 and self._isolate(exc):
                self._each_alone(group)
            else:  # every member of the group gets it
                for e in group:
                    e.error = exc
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._busy = False
        for e in group:
            e.done = True
            e.wake.set()
        if successor is not None:
            successor.wake.set()

    def _each_alone(self, group: list[_Entry[T]]) -> None:
        """After a failed group: each caller's items in a unit of their own."""
        for e in group:
            try:
                self._work(list(e.items))
            except BaseException as exc:
                e.error = exc

    def _take(self) -> list[_Entry[T]]:
        """The queued entries up to the item cap (always at least one)."""
        with self._lock:
            group: list[_Entry[T]] = []
            count = 0
            while self._queue and (
                not group or count + len(self._queue[0].items) <= self._max_items
            ):
                entry = self._queue.pop(0)
                group.append(entry)
                count += len(entry.items)
            return group
