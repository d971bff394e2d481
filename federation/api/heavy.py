"""A node-wide cap on concurrent heavy reads (pages of up to 500 cases).

One page of 500 referrals is hundreds of milliseconds of Python work: reports
decoded, case views and their protobuf built. Python runs one thread at a
time, so eight such pages at once took most of the interpreter from the
peers' Deliver calls (their p50 went from 8 to about 450 ms). Heavy reads
therefore take one of a few slots; a call waits a moment for one, and is
refused with RESOURCE_EXHAUSTED and a retry delay when none comes, before it
has read anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from federation.api.admission import AdmissionRefusedError, Limit

#: Heavy reads at once, node-wide, unless configured.
HEAVY_READS_DEFAULT = 2
#: How long a heavy read waits for a slot before it is refused.
WAIT_SECONDS = 5.0
#: The retry delay a refused heavy read is given.
RETRY_SECONDS = 1.0


class HeavyReads:
    """``total`` slots for heavy reads."""

    def __init__(self, total: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.total = total
        self._wait = wait_seconds
        self._slots = threading.BoundedSemaphore(total)

    @contextmanager
    def slot(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Hold a slot for the block; AdmissionRefusedError when none frees in time."""
        remaining = context.time_remaining()
        wait = self._wait if remaining is None else max(0.0, min(self._wait, remaining))
        if not self._slots.acquire(timeout=wait):
            raise AdmissionRefusedError(
                f"this node serves at most {self.total} large reads at a time; "
                f"retry in {RETRY_SECONDS:g} s",
                Limit.HEAVY_READS,
                RETRY_SECONDS,
            )
        try:
            yield
        finally:
            self._slots.release()
