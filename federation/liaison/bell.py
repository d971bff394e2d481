"""Wakes threads waiting for new committed data (liaison streams)."""

from __future__ import annotations

import threading


class Bell:
    """A counter with a condition: waiters sleep until it moves or a timeout."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._rings = 0

    def ring(self) -> None:
        """Something was committed."""
        with self._condition:
            self._rings += 1
            self._condition.notify_all()

    @property
    def rings(self) -> int:
        """How often the bell rang so far (pass to ``wait``)."""
        with self._condition:
            return self._rings

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait until the bell rang after ``seen``; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._rings != seen, timeout)
