"""Login sessions and their CSRF tokens, in memory, with idle expiry.

A session is a random token (the cookie's value) naming an account and the
CSRF token its forms carry. Sessions live in the console's memory: a restart
logs everyone out, which is the safe way to fail. Their number is bounded;
past it, the longest idle session ends first.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: A session unused this long ends (seconds).
IDLE_SECONDS = 30 * 60
#: The most sessions held at once.
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class Session:
    """One logged-in browser."""

    token: str
    user: str
    csrf: str
    last_seen: float


class Sessions:
    """Creates, finds (refreshing their idle clock) and ends sessions."""

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_seconds
        self._max = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        #: Least recently used first.
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def start(self, user: str) -> Session:
        """A new session for ``user`` (a fresh token: no fixation across logins)."""
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), self._clock())
        with self._lock:
            self._by_token[session.token] = session
            while len(self._by_token) > self._max:
                self._by_token.popitem(last=False)
        return session

    def find(self, token: str) -> Session | None:
        """The live session of ``token``, its idle clock restarted; None if none."""
        now = self._clock()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if now - session.last_seen > self._idle:
                del self._by_token[token]
                return None
            session.last_seen = now
            self._by_token.move_to_end(token)
            return session

    def end(self, token: str) -> None:
        """End one session (logout)."""
        with self._lock:
            self._by_token.pop(token, None)

    def end_all_of(self, user: str) -> None:
        """End every session of ``user`` (the account was disabled)."""
        with self._lock:
            for token in [t for t, s in self._by_token.items() if s.user == user]:
                del self._by_token[token]
