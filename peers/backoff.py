"""Retry delays for an unreachable peer: exponential, capped, jittered.

Written here rather than taken from a retry library (tenacity, backoff)
because the schedule must be persisted per peer across restarts, which those
libraries, built around in-process retry loops, do not do; all that is needed
from them is this one formula.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay after the n-th consecutive failure: base * 2^(n-1), capped, jittered."""

    base_seconds: float = 0.5
    cap_seconds: float = 60.0
    #: Each delay is drawn uniformly from [(1 - jitter) * d, d] so that many
    #: nodes recovering together do not retry in lock-step.
    jitter: float = 0.5

    def ceiling(self, failures: int) -> float:
        """The largest delay after ``failures`` consecutive failures."""
        exponent = min(max(failures, 1) - 1, 32)
        return float(min(self.cap_seconds, self.base_seconds * 2**exponent))

    def delay(self, failures: int, rng: random.Random | None = None) -> timedelta:
        """A jittered delay after ``failures`` consecutive failures."""
        top = self.ceiling(failures)
        draw = (rng or random).uniform((1 - self.jitter) * top, top)
        return timedelta(seconds=draw)
