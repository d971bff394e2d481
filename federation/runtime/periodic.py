"""A background thread that runs one task every few seconds until stopped.

Written here rather than taken from a library: the standard library's
``threading.Timer`` runs once, and what the node needs is small: a fixed
interval, a task that must survive its own failures (the database may be away
for a while), and a stop that waits for a round in progress.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Periodic:
    """Runs ``task`` every ``interval`` seconds on a daemon thread named ``name``;
    an exception is logged with ``failure`` and the next round comes as usual."""

    def __init__(
        self, name: str, interval: float, task: Callable[[], object], failure: str
    ) -> None:
        self._interval = interval
        self._task = task
        self._failure = failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the rounds (the first one after ``interval``)."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """End the rounds, waiting up to ``timeout`` seconds for one in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._task()
            except Exception:
                log.exception(self._failure)
