"""A loopback TCP proxy that can lose traffic on purpose.

Sits between a test client and a node (127.0.0.1 only) and forwards bytes
unchanged, so TLS and HTTP/2 pass through it: the client still verifies the
node's certificate (which carries a 127.0.0.1 SAN) end to end. Switches make
it lose what a real network loses:

* ``swallow_replies()``: bytes from the node are read and counted but never
  forwarded, so the client waits for a reply the node already sent;
* ``cut()``: reset every open connection, both sides;
* ``cut_requests_after(n)``: forward only ``n`` more client bytes, then cut,
  so the node never receives the whole request.

Every thread polls with a short timeout and stops when the proxy closes, so a
test can never hang on it.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_POLL = 0.1
_CHUNK = 64 * 1024
_JOIN = 5.0


class _Connection:
    """One proxied client connection and its upstream socket."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()

    def reset(self) -> None:
        """Close both sockets with RST (linger 0), as a dropped connection looks."""
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()


class Proxy:
    """Forwards 127.0.0.1:<port> to one upstream endpoint, with switches to lose traffic."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._swallow = False
        #: Client bytes still allowed through before the connection is cut (None: no limit).
        self._request_budget: int | None = None
        #: Node-to-client bytes read and dropped while swallowing replies.
        self.swallowed = 0
        #: Client connections accepted so far.
        self.accepted = 0

    @property
    def address(self) -> str:
        """host:port for a client channel."""
        return f"127.0.0.1:{self.port}"

    # --- switches --------------------------------------------------------------

    def swallow_replies(self) -> None:
        """From now on, drop every byte the node sends (count them in ``swallowed``)."""
        with self._lock:
            self._swallow = True

    def cut_requests_after(self, budget: int) -> None:
        """Let ``budget`` more client bytes through, then reset the connection."""
        with self._lock:
            self._request_budget = budget

    def pass_through(self) -> None:
        """Forward everything again (already-cut connections stay closed)."""
        with self._lock:
            self._swallow = False
            self._request_budget = None

    def cut(self) -> None:
        """Reset every open connection, both sides."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.reset()

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start accepting connections."""
        self._spawn(self._accept_loop)

    def close(self) -> None:
        """Stop accepting, reset every connection and join every thread (bounded)."""
        self._closing.set()
        self.cut()
        self._listener.close()
        deadline = time.monotonic() + _JOIN
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream, timeout=5.0)
            except OSError:
                client.close()
                continue
            connection = _Connection(client, upstream)
            with self._lock:
                self._connections.append(connection)
                self.accepted += 1
            self._spawn(self._pump, connection, client, upstream, True)
            self._spawn(self._pump, connection, upstream, client, False)

    def _pump(
        self, connection: _Connection, source: socket.socket, sink: socket.socket, request: bool
    ) -> None:
        """Copy one direction until either side closes or the proxy does."""
        while not (self._closing.is_set() or connection.closed.is_set()):
            try:
                readable, _, _ = select.select([source], [], [], _POLL)
                if not readable:
                    continue
                data = source.recv(_CHUNK)
            except (OSError, ValueError):
                break
            if not data:
                break
            with self._lock:
                swallow = self._swallow and not request
                budget = self._request_budget if request else None
                if swallow:
                    self.swallowed += len(data)
                if budget is not None:
                    self._request_budget = max(0, budget - len(data))
            if swallow:
                continue
            try:
                sink.sendall(data if budget is None else data[:budget])
            except OSError:
                break
            if budget is not None and budget <= len(data):
                break
        connection.reset()


@contextmanager
def tcp_proxy(upstream: str) -> Iterator[Proxy]:
    """A running proxy to ``upstream`` (host:port), always closed afterwards."""
    proxy = Proxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
