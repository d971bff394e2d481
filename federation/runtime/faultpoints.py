"""Crash points: let a reliability test kill a node process at an exact step.

A test starts a node with ``HFED_ENABLE_TEST_FAULTS=1`` and
``HFED_CRASH_AT=<point>`` (or ``<point>:<n>`` for the n-th arrival, default the
first). When the node reaches that point it writes one line to stderr (the
node log) and sends itself SIGKILL: no cleanup, no rollback, no flushing, as
with ``kill -9`` or a power cut after the last fsync. Without both variables
``reach`` does nothing, so production nodes are unaffected; the variable is
excluded from the node's ``HFED_*`` setting overrides.

The points (see peers/outbox.py):

``outbox-before-send``
    An outbox worker has committed its claim (lease) on a batch and is about
    to call Deliver on the peer: the items are claimed but were never sent.

``outbox-after-reply``
    The peer's DeliverResponse has arrived (the peer committed the items and
    signed receipts) but the worker has not yet verified or recorded them:
    the peer holds the items, the sender still has them pending.
"""

from __future__ import annotations

import os
import signal
import threading

#: Names the crash points of the environment variable.
CRASH_ENV = "HFED_CRASH_AT"
#: Must be "1" as well: a stray HFED_CRASH_AT alone never kills a node.
ENABLE_ENV = "HFED_ENABLE_TEST_FAULTS"

OUTBOX_BEFORE_SEND = "outbox-before-send"
OUTBOX_AFTER_REPLY = "outbox-after-reply"
#: Every crash point the code calls ``reach`` with.
POINTS = frozenset({OUTBOX_BEFORE_SEND, OUTBOX_AFTER_REPLY})

_lock = threading.Lock()
_arrivals: dict[str, int] = {}


def parse(spec: str) -> tuple[str, int]:
    """The point and the arrival number of an ``HFED_CRASH_AT`` value.

    Raises ValueError for an unknown point or a bad count, so that a typo
    fails loudly instead of silently never crashing.
    """
    name, sep, count = spec.strip().partition(":")
    if name not in POINTS:
        raise ValueError(f"{CRASH_ENV}={spec!r}: unknown crash point (known: {sorted(POINTS)})")
    nth = int(count) if sep else 1
    if nth < 1:
        raise ValueError(f"{CRASH_ENV}={spec!r}: the arrival number must be 1 or more")
    return name, nth


def reach(name: str) -> None:
    """Mark that execution reached crash point ``name``; SIGKILL this process if asked to."""
    spec = os.environ.get(CRASH_ENV)
    if not spec or os.environ.get(ENABLE_ENV) != "1":
        return
    target, nth = parse(spec)
    if target != name:
        return
    with _lock:
        arrival = _arrivals[name] = _arrivals.get(name, 0) + 1
    if arrival != nth:
        return
    # os.write, not logging: nothing buffered may stand between the line and the kill.
    os.write(2, f"crash point {name} reached (arrival {arrival}): SIGKILL\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
