"""Login throttling per account and per client address, in bounded memory.

Each key (an account name, an address) counts failed logins in a window;
past the limit it is locked until the window since its first failure ends.
A success clears the account's count. The table of keys is bounded: when
full, the oldest entry goes, so a flood of invented names cannot grow it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 15 * 60
PER_ACCOUNT = 5
PER_ADDRESS = 20
MAX_KEYS = 10_000


@dataclass(slots=True)
class _Count:
    first: float
    failures: int


class LoginThrottle:
    """Says how long a login attempt must wait (0: it may try now)."""

    def __init__(
        self,
        per_account: int = PER_ACCOUNT,
        per_address: int = PER_ADDRESS,
        window: float = WINDOW_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"account": per_account, "address": per_address}
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple[str, str], _Count] = OrderedDict()

    def wait(self, account: str, address: str) -> float:
        """Seconds before this account, from this address, may try again."""
        now = self._clock()
        with self._lock:
            return max(self._wait(("account", account), now), self._wait(("address", address), now))

    def failed(self, account: str, address: str) -> None:
        """Count one failed login."""
        now = self._clock()
        with self._lock:
            for key in (("account", account), ("address", address)):
                count = self._counts.get(key)
                if count is None or now - count.first > self._window:
                    count = self._counts[key] = _Count(now, 0)
                count.failures += 1
                self._counts.move_to_end(key)
            while len(self._counts) > self._max_keys:
                self._counts.popitem(last=False)

    def succeeded(self, account: str) -> None:
        """Forget the account's failures."""
        with self._lock:
            self._counts.pop(("account", account), None)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        count = self._counts.get(key)
        if count is None or count.failures < self._limits[key[0]]:
            return 0.0
        return max(0.0, count.first + self._window - now)
